// Package netif lists the network interfaces of the calling thread's
// network namespace with their flags, link-layer address and addresses.
// It reads them in one link dump and one address dump from rtnetlink,
// whatever the number of interfaces: a node may have hundreds of pod veths,
// and per-interface lookups would dump the address table once each.
package netif

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"unsafe"
)

// Interface is one network interface as the kernel lists it.
type Interface struct {
	Index int
	Name  string
	// Flags are the kernel's IFF_* flags (syscall.IFF_UP, IFF_RUNNING,
	// IFF_NOARP, ...); the net package hides some of them, IFF_NOARP
	// among them.
	Flags uint32
	// MAC is the link-layer address as the kernel has it (six zero bytes
	// on loopback), nil for interfaces without one (tunnels, say).
	MAC net.HardwareAddr
	// Prefixes are the interface's own addresses with their prefix length.
	Prefixes []netip.Prefix
}

// List returns the interfaces, sorted by index.
func List() ([]Interface, error) {
	msgs, err := dump(syscall.RTM_GETLINK, "links")
	if err != nil {
		return nil, err
	}
	prefixes, err := prefixesByIndex()
	if err != nil {
		return nil, err
	}
	var out []Interface
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWLINK || len(m.Data) < syscall.SizeofIfInfomsg {
			continue
		}
		ifi := (*syscall.IfInfomsg)(unsafe.Pointer(&m.Data[0]))
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			continue
		}
		i := Interface{Index: int(ifi.Index), Flags: ifi.Flags, Prefixes: prefixes[int(ifi.Index)]}
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.IFLA_IFNAME:
				i.Name = string(bytes.TrimRight(a.Value, "\x00"))
			case syscall.IFLA_ADDRESS:
				i.MAC = net.HardwareAddr(bytes.Clone(a.Value))
			}
		}
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b Interface) int { return cmp.Compare(a.Index, b.Index) })
	return out, nil
}

// prefixesByIndex reads every interface address once.
func prefixesByIndex() (map[int][]netip.Prefix, error) {
	msgs, err := dump(syscall.RTM_GETADDR, "addresses")
	if err != nil {
		return nil, err
	}
	out := map[int][]netip.Prefix{}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWADDR || len(m.Data) < syscall.SizeofIfAddrmsg {
			continue
		}
		ifa := (*syscall.IfAddrmsg)(unsafe.Pointer(&m.Data[0]))
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			continue
		}
		// IFA_LOCAL is the interface's own address; IFA_ADDRESS is the
		// same, except on point-to-point links, where it is the peer's and
		// IFA_LOCAL comes too.
		var local, address []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.IFA_LOCAL:
				local = a.Value
			case syscall.IFA_ADDRESS:
				address = a.Value
			}
		}
		if local == nil {
			local = address
		}
		if ip, ok := netip.AddrFromSlice(local); ok {
			out[int(ifa.Index)] = append(out[int(ifa.Index)], netip.PrefixFrom(ip.Unmap(), int(ifa.Prefixlen)))
		}
	}
	return out, nil
}

func dump(request int, what string) ([]syscall.NetlinkMessage, error) {
	rib, err := syscall.NetlinkRIB(request, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("netif: dump %s: %w", what, err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return nil, fmt.Errorf("netif: parse %s: %w", what, err)
	}
	return msgs, nil
}
