package migrate

import (
	"fmt"
	"net/netip"
	"strings"
)

// addressRange rewrites one entry of a MetalLB pool as Herald writes it.
// MetalLB takes a CIDR with host bits as its network ("198.51.100.7/24"
// is the /24) and trims spaces around a range's ends; Herald asks for
// both written plainly, so changed is true when the text differs. It is
// pure.
func addressRange(s string) (out string, changed bool, err error) {
	s = strings.TrimSpace(s)
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, err := netip.ParseAddr(strings.TrimSpace(first))
		if err != nil {
			return "", false, fmt.Errorf("range %q: start: %w", s, err)
		}
		b, err := netip.ParseAddr(strings.TrimSpace(last))
		if err != nil {
			return "", false, fmt.Errorf("range %q: end: %w", s, err)
		}
		a, b = a.Unmap(), b.Unmap()
		switch {
		case a.Is4() != b.Is4():
			return "", false, fmt.Errorf("range %q mixes IPv4 and IPv6", s)
		case a.Zone() != "" || b.Zone() != "":
			return "", false, fmt.Errorf("range %q has a zone", s)
		case b.Less(a):
			return "", false, fmt.Errorf("range %q starts after its end", s)
		}
		out = a.String() + "-" + b.String()
		return out, out != s, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "", false, fmt.Errorf("%q is neither a CIDR nor a range of two addresses", s)
	}
	out = p.Masked().String()
	return out, out != s, nil
}
