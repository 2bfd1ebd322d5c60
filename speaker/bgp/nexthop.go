package bgp

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/heraldlb/herald/speaker/netif"
)

// errNoNextHop: IPv4 paths on an IPv6 session need an IPv4 address on the link.
var errNoNextHop = errors.New("no IPv4 address on the interface toward the peer for IPv4 prefixes")

// pickNextHop chooses the next hop of family v6 for a session whose local
// address is local: this node's address of that family on the interface
// that holds local (never a link-local one); for IPv6
// with none, local as an IPv4-mapped IPv6 address, which routers resolve
// through IPv4. It is pure.
func pickNextHop(local netip.Addr, v6 bool, ifaces []netif.Interface) (netip.Addr, error) {
	local = local.Unmap()
	for _, ifc := range ifaces {
		holds := false
		for _, p := range ifc.Prefixes {
			holds = holds || p.Addr() == local
		}
		if !holds {
			continue
		}
		for _, p := range ifc.Prefixes {
			a := p.Addr()
			if a.IsLoopback() || a.IsLinkLocalUnicast() {
				continue
			}
			if a.Is6() == v6 {
				return a, nil
			}
		}
		break
	}
	if v6 {
		return netip.AddrFrom16(local.As16()), nil
	}
	return netip.Addr{}, fmt.Errorf("%w (local address %v)", errNoNextHop, local)
}
