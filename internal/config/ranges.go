package config

import (
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
)

// ParseRange parses one pool block: a CIDR or "first-last" (spaces allowed
// around the dash). The API server already checks this with CEL; Build checks
// again so objects stored before a rule existed cannot slip through.
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("%q is not a valid CIDR: %w", s, err)
		}
		if p.Addr().Is4In6() {
			// The API server refuses these too (CEL's cidr()).
			return Range{}, fmt.Errorf("CIDR %q: IPv4-mapped IPv6 addresses are not allowed", s)
		}
		if p.Masked() != p {
			return Range{}, fmt.Errorf("CIDR %q has host bits set: write %s", s, p.Masked())
		}
		return notMapped(s, Range{First: p.Addr(), Last: lastOf(p)})
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return Range{}, fmt.Errorf("%q is neither a CIDR nor a range first-last", s)
	}
	first, err := netip.ParseAddr(strings.TrimSpace(a))
	if err != nil {
		return Range{}, fmt.Errorf("range %q: %w", s, err)
	}
	last, err := netip.ParseAddr(strings.TrimSpace(b))
	if err != nil {
		return Range{}, fmt.Errorf("range %q: %w", s, err)
	}
	if first.Zone() != "" || last.Zone() != "" || first.Is4In6() || last.Is4In6() {
		return Range{}, fmt.Errorf("range %q: zones and IPv4-mapped IPv6 addresses are not allowed", s)
	}
	if first.Is4() != last.Is4() {
		return Range{}, fmt.Errorf("range %q mixes IPv4 and IPv6", s)
	}
	if last.Less(first) {
		return Range{}, fmt.Errorf("range %q starts above its end", s)
	}
	return notMapped(s, Range{First: first, Last: last})
}

// mappedFirst and mappedLast bound the IPv4-mapped block ::ffff:0:0/96.
var (
	mappedFirst = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff})
	mappedLast  = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})
)

// notMapped refuses an IPv6 range that overlaps ::ffff:0:0/96: its
// addresses stand for IPv4 ones on the wire and in the kernel, so none can
// be a Service IP (a pool "::/80" ends in it).
func notMapped(s string, r Range) (Range, error) {
	if r.First.Is6() && !mappedLast.Less(r.First) && !r.Last.Less(mappedFirst) {
		return Range{}, fmt.Errorf("%q overlaps ::ffff:0:0/96, the IPv4-mapped IPv6 addresses, which cannot be Service IPs", s)
	}
	return r, nil
}

// lastOf returns the last address of a prefix.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - uint(i%8))
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Prefixes returns the smallest list of CIDRs that covers the range exactly.
func (r Range) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	cur := r.First
	total := cur.BitLen()
	for {
		// The largest aligned block that starts at cur and ends at or before Last.
		size := total - trailingZeros(cur)
		for size < total {
			p := netip.PrefixFrom(cur, size)
			if lastOf(p).Compare(r.Last) <= 0 {
				break
			}
			size++
		}
		p := netip.PrefixFrom(cur, size)
		out = append(out, p)
		end := lastOf(p)
		if end.Compare(r.Last) >= 0 {
			return out
		}
		cur = end.Next()
	}
}

func trailingZeros(a netip.Addr) int {
	b := a.AsSlice()
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == 0 {
			n += 8
			continue
		}
		return n + bits.TrailingZeros8(b[i])
	}
	return n
}
