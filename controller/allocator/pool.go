package allocator

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
)

// pool is a configured pool with its address spans, merged and sorted by
// family (IPv4 first) then address, and the Services it has assigned.
type pool struct {
	def     Pool
	spans   []*span
	holders map[string]*holding
}

// subject is what AllocateTo looks at.
type subject struct {
	namespace string
	nsLabels  map[string]string
	svcLabels map[string]string
}

func buildPool(def Pool) *pool {
	p := &pool{def: def, holders: map[string]*holding{}}
	type block struct {
		f           Family
		first, last u128
	}
	var blocks []block
	for _, r := range def.Ranges {
		if r, ok := cleanRange(r); ok {
			blocks = append(blocks, block{familyOf(r.First), addrBits(r.First), addrBits(r.Last)})
		}
	}
	slices.SortFunc(blocks, func(x, y block) int {
		return cmp.Or(cmp.Compare(x.f, y.f), x.first.cmp(y.first))
	})
	for _, b := range blocks {
		if n := len(p.spans); n > 0 {
			last := p.spans[n-1]
			// Merge overlapping and adjacent blocks.
			if last.family == b.f && (!last.last.less(b.first) || last.last.inc() == b.first) {
				if last.last.less(b.last) {
					p.spans[n-1] = newSpan(b.f, last.first, b.last, def.AvoidBuggyIPs)
				}
				continue
			}
		}
		p.spans = append(p.spans, newSpan(b.f, b.first, b.last, def.AvoidBuggyIPs))
	}
	def.AllocateTo.NamespaceSelectors = slices.DeleteFunc(slices.Clone(def.AllocateTo.NamespaceSelectors), isNilSelector)
	def.AllocateTo.ServiceSelectors = slices.DeleteFunc(slices.Clone(def.AllocateTo.ServiceSelectors), isNilSelector)
	p.def = def
	return p
}

func isNilSelector(s labels.Selector) bool { return s == nil }

// cleanRange drops zones and IPv4-in-IPv6 mapping; it refuses invalid ranges.
func cleanRange(r Range) (Range, bool) {
	if !r.First.IsValid() || !r.Last.IsValid() {
		return r, false
	}
	r = Range{r.First.Unmap().WithZone(""), r.Last.Unmap().WithZone("")}
	return r, r.First.BitLen() == r.Last.BitLen() && !r.Last.Less(r.First)
}

func (p *pool) contains(ip netip.Addr) bool {
	for _, s := range p.spans {
		if s.contains(ip) {
			return true
		}
	}
	return false
}

func (p *pool) containsAll(ips []netip.Addr) bool {
	for _, ip := range ips {
		if !p.contains(ip) {
			return false
		}
	}
	return true
}

func (p *pool) hasFamily(f Family) bool {
	for _, s := range p.spans {
		if s.family == f {
			return true
		}
	}
	return false
}

// lowestFree returns the pool's lowest free address of family f. Spans are
// disjoint and sorted, so the first span with room has it.
func (p *pool) lowestFree(f Family) (netip.Addr, bool) {
	for _, s := range p.spans {
		if s.family == f {
			if ip, ok := s.lowestFree(); ok {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

// serves applies AllocateTo; the reason completes "pool %q ...".
func (p *pool) serves(s subject) (bool, string) {
	t := p.def.AllocateTo
	if len(t.Namespaces) > 0 || len(t.NamespaceSelectors) > 0 {
		ok := slices.Contains(t.Namespaces, s.namespace)
		for _, sel := range t.NamespaceSelectors {
			ok = ok || sel.Matches(labels.Set(s.nsLabels))
		}
		if !ok {
			return false, fmt.Sprintf("does not serve namespace %q", s.namespace)
		}
	}
	if len(t.ServiceSelectors) > 0 {
		ok := false
		for _, sel := range t.ServiceSelectors {
			ok = ok || sel.Matches(labels.Set(s.svcLabels))
		}
		if !ok {
			return false, fmt.Sprintf("does not serve Services with labels {%s}", labels.Set(s.svcLabels))
		}
	}
	return true, ""
}

// sameForHolders reports whether a new definition keeps every assignment valid:
// same addresses and same AllocateTo restrictions. Priority and AutoAssign
// only steer new choices.
func (p *pool) sameForHolders(q *pool) bool {
	if !sameSpans(p, q) {
		return false
	}
	x, y := p.def.AllocateTo, q.def.AllocateTo
	return slices.Equal(x.Namespaces, y.Namespaces) &&
		slices.Equal(selectorStrings(x.NamespaceSelectors), selectorStrings(y.NamespaceSelectors)) &&
		slices.Equal(selectorStrings(x.ServiceSelectors), selectorStrings(y.ServiceSelectors))
}

func selectorStrings(sels []labels.Selector) []string {
	out := make([]string, len(sels))
	for i, s := range sels {
		out[i] = s.String()
	}
	return out
}

// poolOrder sorts pools for automatic choice: set priorities ascending, then
// unset (0), then by name.
func poolOrder(x, y *pool) int {
	px, py := x.def.AllocateTo.Priority, y.def.AllocateTo.Priority
	return cmp.Or(cmp.Compare(boolInt(px == 0), boolInt(py == 0)), cmp.Compare(px, py), cmp.Compare(x.def.Name, y.def.Name))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ValidatePools reports the first definition SetPools would ignore: an empty
// or repeated name, or a range that is invalid, mixes families or runs
// backwards. SetPools skips those; the config model should refuse them first.
func ValidatePools(pools []Pool) error {
	seen := map[string]bool{}
	for _, p := range pools {
		if p.Name == "" {
			return fmt.Errorf("a pool has no name")
		}
		if seen[p.Name] {
			return fmt.Errorf("pool %q is defined twice", p.Name)
		}
		seen[p.Name] = true
		for _, r := range p.Ranges {
			if _, ok := cleanRange(r); !ok {
				return fmt.Errorf("pool %q: range %s-%s is invalid, mixes families or runs backwards", p.Name, r.First, r.Last)
			}
		}
	}
	return nil
}
