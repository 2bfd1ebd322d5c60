package bgp

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/heraldlb/herald/speaker/netif"
)

// ifaceWith is an interface named name with the addresses prefixes.
func ifaceWith(name string, prefixes ...string) netif.Interface {
	i := netif.Interface{Name: name}
	for _, p := range prefixes {
		i.Prefixes = append(i.Prefixes, netip.MustParsePrefix(p))
	}
	return i
}

func TestPickNextHop(t *testing.T) {
	a := netip.MustParseAddr
	ifaces := []netif.Interface{
		ifaceWith("lo", "127.0.0.1/8", "::1/128"),
		ifaceWith("eth0", "10.0.0.2/24", "fe80::2/64", "2001:db8::2/64"),
		ifaceWith("eth1", "10.1.0.2/24", "fe80::3/64"),
		ifaceWith("eth2", "2001:db8:2::2/64", "fe80::4/64"),
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
