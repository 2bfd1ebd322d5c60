package announce

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/heraldlb/herald/speaker/netif"
)

// Interface is what the default choice needs to know about a network
// interface.
type Interface struct {
	Name string
	// Up: administratively up and with carrier (IFF_UP and IFF_RUNNING): a
	// link whose cable, switch port or veth peer is down cannot answer.
	Up        bool
	Loopback  bool
	Broadcast bool           // broadcast-capable Ethernet with ARP on: ARP and NDP make sense on it
	Prefixes  []netip.Prefix // the interface's addresses with their prefix length
}

// usable reports whether ARP/NDP answers may be sent on the interface.
func (i Interface) usable() bool { return i.Up && !i.Loopback && i.Broadcast }

// DefaultInterface returns the interface on which ip is announced when the
// configuration names none: the usable (up, not loopback, broadcast-capable)
// interface with the most specific subnet holding ip, ties going to the first
// name; if no subnet holds it, routed (the interface the kernel would send
// toward ip, "" if unknown) when that one is usable; otherwise "" (announce
// nowhere, rather than on an interface the LAN of ip does not reach).
func DefaultInterface(ip netip.Addr, ifaces []Interface, routed string) string {
	ip = ip.Unmap()
	best, bestBits := "", -1
	for _, ifc := range ifaces {
		if !ifc.usable() {
			continue
		}
		for _, p := range ifc.Prefixes {
			if p.Addr().Unmap().Is4() != ip.Is4() || !p.Contains(ip) {
				continue
			}
			if p.Bits() > bestBits || (p.Bits() == bestBits && ifc.Name < best) {
				best, bestBits = ifc.Name, p.Bits()
			}
		}
	}
	if best != "" {
		return best
	}
	for _, ifc := range ifaces {
		if ifc.Name == routed && ifc.usable() {
			return routed
		}
	}
	return ""
}

// explicitInterfaces keeps the named interfaces that exist and are usable,
// sorted and without duplicates.
func explicitInterfaces(names []string, ifaces []Interface) []string {
	var out []string
	for _, ifc := range ifaces {
		if ifc.usable() && slices.Contains(names, ifc.Name) {
			out = append(out, ifc.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// systemInterfaces lists the interfaces of the calling thread's network
// namespace as the default choice sees them, sorted by name. Broadcast
// needs IFF_NOARP clear: interfaces such as kube-ipvs0 (a dummy holding
// service IPs in kube-proxy's IPVS mode) look broadcast-capable but must
// never answer.
func systemInterfaces() ([]Interface, error) {
	list, err := netif.List()
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(list))
	for _, i := range list {
		out = append(out, Interface{
			Name:      i.Name,
			Up:        i.Flags&syscall.IFF_UP != 0 && i.Flags&syscall.IFF_RUNNING != 0,
			Loopback:  i.Flags&syscall.IFF_LOOPBACK != 0,
			Broadcast: i.Flags&syscall.IFF_BROADCAST != 0 && i.Flags&syscall.IFF_NOARP == 0 && len(i.MAC) == 6,
			Prefixes:  i.Prefixes,
		})
	}
	slices.SortFunc(out, func(a, b Interface) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// routedInterface is the interface the kernel would send toward ip from,
// found by "connecting" a UDP socket (no packet is sent) and looking up which
// interface holds the local address the kernel picked.
func routedInterface(ip netip.Addr, ifaces []Interface) string {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 9)))
	if err != nil {
		return ""
	}
	defer c.Close() //nolint:errcheck // nothing is sent: only its local address is read
	local := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	for _, ifc := range ifaces {
		for _, p := range ifc.Prefixes {
			if p.Addr() == local {
				return ifc.Name
			}
		}
	}
	return ""
}
