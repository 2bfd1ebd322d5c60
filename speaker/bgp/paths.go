package bgp

import (
	"cmp"
	"net/netip"
	"slices"
)

// pathSet is one peer's paths by prefix, normalized so that equal
// attributes compare equal.
type pathSet map[netip.Prefix]Path

// normalizePaths masks prefixes, sorts and dedupes communities and lets a
// later entry for a prefix replace an earlier one. Invalid prefixes are dropped.
func normalizePaths(paths []Path) pathSet {
	set := make(pathSet, len(paths))
	for _, p := range paths {
		if !p.Prefix.IsValid() {
			continue
		}
		n := Path{Prefix: p.Prefix.Masked()}
		if len(p.Communities) > 0 {
			n.Communities = slices.Compact(slices.Sorted(slices.Values(p.Communities)))
		}
		if len(p.LargeCommunities) > 0 {
			n.LargeCommunities = slices.Compact(slices.SortedFunc(slices.Values(p.LargeCommunities), compareLarge))
		}
		if p.LocalPref != nil {
			v := *p.LocalPref
			n.LocalPref = &v
		}
		set[n.Prefix] = n
	}
	return set
}

// update applies u to the set in place.
func (s pathSet) update(u PathUpdate) {
	for _, prefix := range u.Withdraw {
		delete(s, prefix.Masked())
	}
	for prefix, p := range normalizePaths(u.Set) {
		s[prefix] = p
	}
}

func compareLarge(a, b LargeCommunity) int {
	for i := range a {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// sameAttrs compares two normalized paths of the same prefix.
func sameAttrs(a, b Path) bool {
	if (a.LocalPref == nil) != (b.LocalPref == nil) || a.LocalPref != nil && *a.LocalPref != *b.LocalPref {
		return false
	}
	return slices.Equal(a.Communities, b.Communities) && slices.Equal(a.LargeCommunities, b.LargeCommunities)
}

// pathDiff is what turns old into new: paths to announce (new or changed
// attributes, which BGP sends as an implicit replace) and prefixes to withdraw.
type pathDiff struct {
	announce []Path
	withdraw []netip.Prefix
}

func (d pathDiff) empty() bool { return len(d.announce) == 0 && len(d.withdraw) == 0 }

// diffPaths compares two normalized sets; the result is sorted for stable
// logs and tests. Work is proportional to the size of the sets, never to
// other peers.
func diffPaths(prev, next pathSet) pathDiff {
	var d pathDiff
	for prefix, p := range next {
		if o, ok := prev[prefix]; !ok || !sameAttrs(o, p) {
			d.announce = append(d.announce, p)
		}
	}
	for prefix := range prev {
		if _, ok := next[prefix]; !ok {
			d.withdraw = append(d.withdraw, prefix)
		}
	}
	slices.SortFunc(d.announce, func(a, b Path) int { return comparePrefix(a.Prefix, b.Prefix) })
	slices.SortFunc(d.withdraw, comparePrefix)
	return d
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}
