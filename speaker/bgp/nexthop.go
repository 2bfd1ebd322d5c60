package bgp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// errNoNextHop: IPv4 paths on an IPv6 session need an IPv4 address on the link.
var errNoNextHop = errors.New("no IPv4 address on the interface toward the peer for IPv4 prefixes")

// ifaceAddrs is one interface and its addresses.
type ifaceAddrs struct {
	name  string
	addrs []netip.Addr
}

// pickNextHop chooses the next hop of family v6 for a session whose local
// address is local: this node's address of that family on the interface
// that holds local (never a link-local one); for IPv6
// with none, local as an IPv4-mapped IPv6 address, which routers resolve
// through IPv4. It is pure.
func pickNextHop(local netip.Addr, v6 bool, ifaces []ifaceAddrs) (netip.Addr, error) {
	local = local.Unmap()
	for _, ifc := range ifaces {
		holds := false
		for _, a := range ifc.addrs {
			holds = holds || a.Unmap() == local
		}
		if !holds {
			continue
		}
		for _, a := range ifc.addrs {
			a = a.Unmap()
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

// systemInterfaces lists the interfaces of the network namespace the
// process runs in.
func systemInterfaces() ([]ifaceAddrs, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]ifaceAddrs, 0, len(ifs))
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		ia := ifaceAddrs{name: ifc.Name}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if addr, ok := netip.AddrFromSlice(ipn.IP); ok {
					ia.addrs = append(ia.addrs, addr.Unmap())
				}
			}
		}
		out = append(out, ia)
	}
	return out, nil
}
