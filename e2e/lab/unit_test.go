package lab

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testenv"
)

func TestAddressPlanReadsAlikeInBothFamilies(t *testing.T) {
	cases := []struct{ got, want string }{
		{hostAddr(LANv4, hostNode0+1).String(), "10.0.0.11"},
		{hostAddr(LANv6, hostNode0+1).String(), "fd00:10::11"},
		{hostAddr(LANv6, hostClient).String(), "fd00:10::100"},
		{hostAddr(ExtFRRv6, hostExt).String(), "fd00:11::2"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
	v4, v6 := podCIDRs(12)
	if v4.String() != "10.244.12.0/24" || v6.String() != "fd00:244:12::/64" {
		t.Errorf("node 12 pod CIDRs %s %s, want 10.244.12.0/24 fd00:244:12::/64", v4, v6)
	}
	if !ClusterCIDRv6.Contains(v6.Addr()) || !ClusterCIDRv4.Contains(v4.Addr()) {
		t.Errorf("pod CIDRs %s %s outside the cluster CIDRs", v4, v6)
	}
}

func TestFaultRulesDropPartitionsAndLoss(t *testing.T) {
	rules := faultRules([][2]string{{"node1", "node2"}, {"node2", "node1"}}, map[string]int{"node3": 30, "client": 100})
	for _, want := range []string{
		`iifname "node1" oifname "node2" drop`,
		`iifname "node2" oifname "node1" drop`,
		`iifname "node3" numgen random mod 100 < 30 drop`,
		`oifname "node3" numgen random mod 100 < 30 drop`,
		`iifname "client" drop`,
		"delete table bridge " + faultTable,
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("rules lack %q:\n%s", want, rules)
		}
	}
	if empty := faultRules(nil, nil); strings.Contains(empty, "drop") {
		t.Errorf("no faults should give no drop rule:\n%s", empty)
	}
}

func TestExpandReplacesPlaceholders(t *testing.T) {
	got := expand([]string{"--node-name={node}", "--kubeconfig={kubeconfig}", "x"}, map[string]string{"node": "node2", "kubeconfig": "/k"})
	if strings.Join(got, " ") != "--node-name=node2 --kubeconfig=/k x" {
		t.Errorf("expand = %q", got)
	}
}

func TestSummarizeFindsTheLongestOutage(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(ms int, node, err string) Sample {
		return Sample{Sent: t0.Add(time.Duration(ms) * time.Millisecond), Node: node, Err: err}
	}
	s := Summarize([]Sample{
		at(0, "node1", ""), at(10, "node1", ""), at(20, "", "timeout"), at(30, "", "timeout"),
		at(40, "node2", ""), at(50, "", "refused"), at(60, "node2", ""),
	})
	if s.Total != 7 || s.Failed != 3 || s.ByNode["node1"] != 2 || s.ByNode["node2"] != 2 {
		t.Errorf("summary %+v", s)
	}
	if s.LongestOutage != 30*time.Millisecond {
		t.Errorf("longest outage %v, want 30ms (last answer at 10ms, next at 40ms)", s.LongestOutage)
	}
}

func TestProcUsageReadsCPUAndMemory(t *testing.T) {
	// Burn some CPU so the count moves off zero (USER_HZ is 100).
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); { //nolint:revive // empty on purpose: a busy loop
	}
	u, err := procUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.CPU <= 0 || u.RSS <= 0 || u.PeakRSS < u.RSS {
		t.Errorf("usage of this test process: %+v", u)
	}
}

func TestParseL2Message(t *testing.T) {
	for _, tc := range []struct {
		line, ip, mac string
		gratuitous    bool
	}{
		{"1700000000.250000 02:aa:bb:cc:dd:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.10 tell 198.51.100.10, length 28", "198.51.100.10", "02:aa:bb:cc:dd:01", true},
		{"1700000000.250000 02:aa:bb:cc:dd:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.10 tell 10.0.0.100, length 28", "", "", false},
		{"1700000000.250000 02:aa:bb:cc:dd:02 > 02:aa:bb:cc:dd:01, ethertype ARP (0x0806), length 42: Reply 198.51.100.10 is-at 02:aa:bb:cc:dd:02, length 28", "198.51.100.10", "02:aa:bb:cc:dd:02", false},
		{"1700000001.000001 02:aa:bb:cc:dd:03 > 33:33:00:00:00:01, ethertype IPv6 (0x86dd), length 86: 2001:db8:100::10 > ff02::1: ICMP6, neighbor advertisement, tgt is 2001:db8:100::10, length 32", "2001:db8:100::10", "02:aa:bb:cc:dd:03", true},
		{"1700000001.000001 02:aa:bb:cc:dd:03 > 02:aa:bb:cc:dd:09, ethertype IPv6 (0x86dd), length 86: 2001:db8:100::10 > fd00:10::100: ICMP6, neighbor advertisement, tgt is 2001:db8:100::10, length 32", "2001:db8:100::10", "02:aa:bb:cc:dd:03", false},
		{"listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes", "", "", false},
	} {
		a, ok := ParseL2Message(tc.line)
		if ok != (tc.ip != "") || a.IP != tc.ip || a.MAC != tc.mac || a.Gratuitous != tc.gratuitous {
			t.Errorf("%q: %+v %v, want ip %q mac %q", tc.line, a, ok, tc.ip, tc.mac)
		}
	}
}

// The lab's speakers keep exactly the capabilities the shipped DaemonSet
// adds: the process-mode suites then fail where a DaemonSet pod would.
func TestSpeakerSpecKeepsOnlyTheShippedCapabilities(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	caps, err := shippedSpeakerCapabilities(root)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(caps, ",") != "NET_RAW,NET_BIND_SERVICE" {
		t.Errorf("the DaemonSet adds %v; this test expects NET_RAW and NET_BIND_SERVICE (update it with the DaemonSet)", caps)
	}
	b := Binaries{Speaker: "/bin/herald-speaker", SpeakerCapabilities: caps}
	spec := b.SpeakerSpec("--lb-class=x")
	want := "setpriv --bounding-set=-all,+net_raw,+net_bind_service --inh-caps=-all --no-new-privs -- /bin/herald-speaker --kubeconfig={kubeconfig} --node-name={node} --lb-class=x"
	if got := spec.Binary + " " + strings.Join(spec.Args, " "); got != want {
		t.Errorf("speaker runs as\n%s\nwant\n%s", got, want)
	}
}
