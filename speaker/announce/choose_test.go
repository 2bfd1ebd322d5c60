package announce

import (
	"net/netip"
	"testing"
)

func TestDefaultInterface(t *testing.T) {
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	eth0 := Interface{Name: "eth0", Up: true, Broadcast: true, Prefixes: pfx("10.70.0.1/24", "2001:db8:70::1/64", "fe80::1/64")}
	eth1 := Interface{Name: "eth1", Up: true, Broadcast: true, Prefixes: pfx("198.51.100.1/24", "2001:db8:100::1/64")}
	narrow := Interface{Name: "eth2", Up: true, Broadcast: true, Prefixes: pfx("198.51.100.33/28")}
	down := Interface{Name: "eth3", Up: false, Broadcast: true, Prefixes: pfx("203.0.113.1/24")}
	lo := Interface{Name: "lo", Up: true, Loopback: true, Prefixes: pfx("127.0.0.1/8", "203.0.113.0/24")}
	tun := Interface{Name: "wg0", Up: true, Prefixes: pfx("203.0.113.129/25")}
	all := []Interface{eth0, eth1, narrow, down, lo, tun}

	for _, tc := range []struct {
		name   string
		ip     string
		ifaces []Interface
		routed string
		want   string
	}{
		{"subnet of an interface", "198.51.100.5", all, "eth0", "eth1"},
		{"most specific subnet wins", "198.51.100.40", all, "", "eth2"},
		{"ipv6 subnet", "2001:db8:100::5", all, "eth0", "eth1"},
		{"no subnet: the routed interface", "192.0.2.200", all, "eth0", "eth0"},
		{"no subnet, no route", "192.0.2.200", all, "", ""},
		{"subnet on a down interface: routed instead", "203.0.113.5", all, "eth0", "eth0"},
		{"loopback never", "203.0.113.5", all, "lo", ""},
		{"point-to-point never", "203.0.113.200", all, "wg0", ""},
		{"an IPv4-mapped address is IPv4", "::ffff:10.70.0.9", all, "", "eth0"},
		{"equal prefixes: first name", "10.70.0.9", []Interface{{Name: "b", Up: true, Broadcast: true, Prefixes: pfx("10.70.0.2/24")}, eth0}, "", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DefaultInterface(netip.MustParseAddr(tc.ip), tc.ifaces, tc.routed); got != tc.want {
				t.Fatalf("DefaultInterface(%s, routed %q) = %q, want %q", tc.ip, tc.routed, got, tc.want)
			}
		})
	}
}
