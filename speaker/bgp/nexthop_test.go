package bgp

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPickNextHop(t *testing.T) {
	a := netip.MustParseAddr
	ifaces := []ifaceAddrs{
		{name: "lo", addrs: []netip.Addr{a("127.0.0.1"), a("::1")}},
		{name: "eth0", addrs: []netip.Addr{a("10.0.0.2"), a("fe80::2"), a("2001:db8::2")}},
		{name: "eth1", addrs: []netip.Addr{a("10.1.0.2"), a("fe80::3")}},
		{name: "eth2", addrs: []netip.Addr{a("2001:db8:2::2"), a("fe80::4")}},
	}
	tests := []struct {
		local   string
		v6      bool
		want    string
		wantErr error
	}{
		{local: "10.0.0.2", v6: true, want: "2001:db8::2"},
		{local: "::ffff:10.0.0.2", v6: true, want: "2001:db8::2"},
		{local: "10.1.0.2", v6: true, want: "::ffff:10.1.0.2"}, // link-local only: IPv4-mapped
		{local: "2001:db8::2", v6: false, want: "10.0.0.2"},
		{local: "2001:db8:2::2", v6: false, wantErr: errNoNextHop},
		{local: "10.9.9.9", v6: true, want: "::ffff:10.9.9.9"}, // unknown interface
	}
	for _, tc := range tests {
		got, err := pickNextHop(a(tc.local), tc.v6, ifaces)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && got != a(tc.want)) {
			t.Errorf("pickNextHop(%s, v6=%v) = %v, %v; want %s, %v", tc.local, tc.v6, got, err, tc.want, tc.wantErr)
		}
	}
}
