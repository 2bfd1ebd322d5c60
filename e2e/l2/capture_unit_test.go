package l2

import (
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
)

func TestParseAnnouncement(t *testing.T) {
	for _, tc := range []struct {
		line, ip, mac string
	}{
		{"1700000000.250000 02:aa:bb:cc:dd:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.10 tell 198.51.100.10, length 28", "198.51.100.10", "02:aa:bb:cc:dd:01"},
		{"1700000000.250000 02:aa:bb:cc:dd:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.51.100.10 tell 10.0.0.100, length 28", "", ""},
		{"1700000000.250000 02:aa:bb:cc:dd:02 > 02:aa:bb:cc:dd:01, ethertype ARP (0x0806), length 42: Reply 198.51.100.10 is-at 02:aa:bb:cc:dd:02, length 28", "", ""},
		{"1700000001.000001 02:aa:bb:cc:dd:03 > 33:33:00:00:00:01, ethertype IPv6 (0x86dd), length 86: 2001:db8:100::10 > ff02::1: ICMP6, neighbor advertisement, tgt is 2001:db8:100::10, length 32", "2001:db8:100::10", "02:aa:bb:cc:dd:03"},
		{"1700000001.000001 02:aa:bb:cc:dd:03 > 02:aa:bb:cc:dd:09, ethertype IPv6 (0x86dd), length 86: 2001:db8:100::10 > fd00:10::100: ICMP6, neighbor advertisement, tgt is 2001:db8:100::10, length 32", "", ""},
		{"listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes", "", ""},
	} {
		a, ok := parseAnnouncement(tc.line)
		if ok != (tc.ip != "") || a.ip != tc.ip || a.mac != tc.mac {
			t.Errorf("%q: %+v %v, want ip %q mac %q", tc.line, a, ok, tc.ip, tc.mac)
		}
	}
}

func TestChangesOf(t *testing.T) {
	t1 := time.Unix(100, 0)
	at := func(ms int, node string, lat int) lab.Sample {
		return lab.Sample{Sent: t1.Add(time.Duration(ms) * time.Millisecond), Latency: time.Duration(lat) * time.Millisecond, Node: node}
	}
	var samples []lab.Sample
	for i := range 10 {
		samples = append(samples, at(i*10, "a", 1))
	}
	// Stamped before the move, answered after it by the new node: in
	// arrival order it comes after the old node's last answer.
	samples = append(samples, at(95, "b", 30), at(100, "a", 1))
	for i := 11; i < 20; i++ {
		samples = append(samples, at(i*10, "b", 1))
	}
	samples = append(samples, lab.Sample{Sent: t1.Add(205 * time.Millisecond), Err: "reset"})
	if n, last := changesOf(samples, t1); n != 1 || last != 111*time.Millisecond {
		t.Fatalf("one move: %d changes, last at %v", n, last)
	}
	// A real flap: runs of several answers each.
	for i := 20; i < 30; i++ {
		samples = append(samples, at(i*10, "a", 1))
	}
	if n, _ := changesOf(samples, t1); n != 2 {
		t.Fatalf("a move back: %d changes, want 2", n)
	}
}
