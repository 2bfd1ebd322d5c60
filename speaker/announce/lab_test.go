package announce_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/child"
	"github.com/heraldlb/herald/speaker/announce"
	"github.com/heraldlb/herald/speaker/announce/lantest"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) {
	if child.Name() == "announcer" {
		os.Exit(child.Main(announcerHelper))
	}
	os.Exit(m.Run())
}

// announcerHelper runs a Layer2 announcer in the namespace it was started in,
// as the speaker would, and takes commands:
//
//	set 198.51.100.5 2001:db8:100::5@eth0,eth1   -> ok
//	status                                       -> JSON []announce.Status
//	metrics                                      -> JSON {"name{labels}": value}
func announcerHelper(ctx context.Context) (func(string) string, func() error, error) {
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := announce.New(announce.Options{
		Logger:     log,
		Registerer: reg,
		OnChange:   func(s announce.Status) { child.Emit("change %s %v", s.IP, s.Interfaces) },
	})
	if err != nil {
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	handle := func(cmd string) string {
		verb, args, _ := strings.Cut(cmd, " ")
		switch verb {
		case "set":
			var desired []announce.Announcement
			for _, f := range strings.Fields(args) {
				ip, ifs, _ := strings.Cut(f, "@")
				a := announce.Announcement{IP: netip.MustParseAddr(ip)}
				if ifs != "" {
					a.Interfaces = strings.Split(ifs, ",")
				}
				desired = append(desired, a)
			}
			l.Set(desired)
			return "ok"
		case "status":
			b, _ := json.Marshal(l.Status())
			return string(b)
		case "metrics":
			mfs, _ := reg.Gather()
			out := map[string]float64{}
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					var labels []string
					for _, lp := range m.GetLabel() {
						labels = append(labels, lp.GetName()+"="+lp.GetValue())
					}
					v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
					out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
				}
			}
			b, _ := json.Marshal(out)
			return string(b)
		}
		return "unknown command " + verb
	}
	return handle, func() error { return <-done }, nil
}

// onlyFrom reports whether advertisements came, all from mac. (An
// announcement burst may still be running: ndisc6 counts its unsolicited
// advertisements too, so senders are compared, not numbers.)
func onlyFrom(macs []string, mac string) bool {
	return len(macs) > 0 && !slices.ContainsFunc(macs, func(m string) bool { return m != mac })
}

type node struct {
	h *child.Process
}

func (n node) set(t *testing.T, announcements ...string) {
	t.Helper()
	if got := n.h.Call(t, "set "+strings.Join(announcements, " ")); got != "ok" {
		t.Fatalf("set: %s", got)
	}
}

func (n node) status(t *testing.T) string {
	t.Helper()
	var st []announce.Status
	if err := json.Unmarshal([]byte(n.h.Call(t, "status")), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(st)
}

func (n node) metric(t *testing.T, series string) float64 {
	t.Helper()
	var m map[string]float64
	if err := json.Unmarshal([]byte(n.h.Call(t, "metrics")), &m); err != nil {
		t.Fatal(err)
	}
	return m[series]
}

func TestLayer2AnnouncementOnALAN(t *testing.T) {
	lan := lantest.New(t)
	a := node{child.Start(t, lan.Reg, lan.NodeA, "announcer")}
	b := node{child.Start(t, lan.Reg, lan.NodeB, "announcer")}
	macA, macA1, macB := lantest.MAC(t, lan.NodeA, "eth0"), lantest.MAC(t, lan.NodeA, "eth1"), lantest.MAC(t, lan.NodeB, "eth0")
	t.Logf("MACs: node A eth0 %s, eth1 %s; node B eth0 %s", macA, macA1, macB)

	// Node A owns both IPs; the default interface is eth0, the one the
	// kernel routes toward them (no interface holds their subnets).
	a.set(t, lantest.VIP4, lantest.VIP6)
	b.set(t)
	if got, want := a.status(t), "[{198.51.100.5 [eth0]} {2001:db8:100::5 [eth0]}]"; got != want {
		t.Fatalf("node A status %s, want %s", got, want)
	}
	testkit.For(t, 3*time.Second, "condition", func() error {
		if got := lan.Arping(t, lantest.VIP4, 1); !slices.Equal(got, []string{macA}) {
			return fmt.Errorf("arping %s: replies from %v, want one from node A eth0 (%s)", lantest.VIP4, got, macA)
		}
		return nil
	})
	if got := lan.Arping(t, lantest.VIP4, 3); !slices.Equal(got, []string{macA, macA, macA}) {
		t.Fatalf("arping -c3: replies from %v; want 3 from node A eth0 %s, none from A eth1 %s or B %s", got, macA, macA1, macB)
	}
	if got := lan.Ndisc(t, lantest.VIP6); !onlyFrom(got, macA) {
		t.Fatalf("ndisc6: %v, want node A eth0 (%s)", got, macA)
	}

	// Named interfaces replace the default: only eth1 answers now.
	a.set(t, lantest.VIP4+"@eth1", lantest.VIP6)
	if got := lan.Arping(t, lantest.VIP4, 2); !slices.Equal(got, []string{macA1, macA1}) {
		t.Fatalf("with eth1 named: replies from %v, want two from A eth1 (%s)", got, macA1)
	}
	a.set(t, lantest.VIP4, lantest.VIP6)

	// The client talks to both IPs through node A ...
	testkit.For(t, 3*time.Second, "condition", func() error {
		lan.Resolve(lantest.VIP4)
		lan.Resolve(lantest.VIP6)
		for _, ip := range []string{lantest.VIP4, lantest.VIP6} {
			if mac, state := lan.Neigh(t, ip); mac != macA {
				return fmt.Errorf("client entry for %s: %s %s, want node A eth0 %s", ip, mac, state, macA)
			}
		}
		return nil
	})
	// ... until node B takes over: the client follows without resolving.
	b.set(t, lantest.VIP4, lantest.VIP6)
	start := time.Now()
	a.set(t)
	for _, ip := range []string{lantest.VIP4, lantest.VIP6} {
		testkit.For(t, time.Second, "condition", func() error {
			if mac, state := lan.Neigh(t, ip); mac != macB {
				return fmt.Errorf("client entry for %s: %s %s, want node B %s", ip, mac, state, macB)
			}
			return nil
		})
	}
	t.Logf("client moved to node B %v after node A dropped the IPs", time.Since(start).Round(time.Millisecond))

	answeredA := a.metric(t, "herald_l2_requests_answered_total{interface=eth0,protocol=arp}")
	if got := lan.Arping(t, lantest.VIP4, 2); !slices.Equal(got, []string{macB, macB}) {
		t.Fatalf("after the takeover: replies from %v, want node B only (%s)", got, macB)
	}
	if got := lan.Ndisc(t, lantest.VIP6); !onlyFrom(got, macB) {
		t.Fatalf("after the takeover: ndisc6 %v, want node B only (%s)", got, macB)
	}
	if got := a.metric(t, "herald_l2_requests_answered_total{interface=eth0,protocol=arp}"); got != answeredA || got == 0 {
		t.Fatalf("node A answered-ARP counter went from %v to %v after it dropped the IP", answeredA, got)
	}
	// The takeover burst: at least 4 announcements per IP within ~1 s.
	testkit.For(t, 3*time.Second, "condition", func() error {
		for _, p := range []string{"arp", "ndp"} {
			if n := b.metric(t, "herald_l2_gratuitous_sent_total{interface=eth0,protocol="+p+"}"); n < 4 {
				return fmt.Errorf("node B sent %v %s announcements, want the burst of 4", n, p)
			}
		}
		return nil
	})
	if n := b.metric(t, "herald_l2_owned_ips{family=ipv4}"); n != 1 {
		t.Fatalf("node B owned_ips{ipv4} = %v, want 1", n)
	}
	events := fmt.Sprint(b.h.Events())
	if !strings.Contains(events, "change 198.51.100.5 [eth0]") {
		t.Fatalf("node B reported no change for %s: %s", lantest.VIP4, events)
	}
	for _, ns := range []*netns.NS{lan.NodeA, lan.NodeB} {
		if out := ns.MustRun(context.Background(), "ip", "addr"); strings.Contains(out, "198.51.100.") || strings.Contains(out, "2001:db8:100:") {
			t.Fatalf("a service address was configured in %s:\n%s", ns.Name, out)
		}
	}
}
