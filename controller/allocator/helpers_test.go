package allocator

import (
	"net/netip"

	"k8s.io/apimachinery/pkg/labels"
)

var (
	v4       = []Family{IPv4}
	v6       = []Family{IPv6}
	dual     = []Family{IPv4, IPv6}
	dualV6v4 = []Family{IPv6, IPv4}
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func addrs(ss ...string) []netip.Addr {
	if ss == nil {
		return nil
	}
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = addr(s)
	}
	return out
}

func iprange(first, last string) Range { return Range{addr(first), addr(last)} }

func cidr(s string) Range {
	p := netip.MustParsePrefix(s).Masked()
	last := p.Addr().As16()
	bitsTotal := p.Addr().BitLen()
	off := 16 - bitsTotal/8
	for i := p.Bits(); i < bitsTotal; i++ {
		last[off+i/8] |= 1 << (7 - i%8)
	}
	l := netip.AddrFrom16(last)
	if p.Addr().Is4() {
		l = l.Unmap()
	}
	return Range{p.Addr(), l}
}

func sel(s string) labels.Selector {
	selector, err := labels.Parse(s)
	if err != nil {
		panic(err)
	}
	return selector
}

func tcp(ports ...int32) []Port {
	out := make([]Port, len(ports))
	for i, p := range ports {
		out[i] = Port{Protocol: "TCP", Port: p}
	}
	return out
}

func strs(ips []netip.Addr) []string {
	if ips == nil {
		return nil
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
