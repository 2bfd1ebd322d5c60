package l2

import "testing"

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
