package allocator

import (
	"slices"
	"sort"
)

// SetPools replaces the pool set. A Service keeps its IPs while a pool it may
// use still contains all of them: its own pool, or else (say after a rename)
// the first pool in automatic-choice order that contains them, serves it and,
// if it named a pool, has that name. Everyone else is released; their names
// are returned sorted. Pools without a name, repeated names (the first wins)
// and invalid ranges are skipped: see ValidatePools.
//
// Cost: proportional to the Services of changed pools, plus one pass over the
// addresses in use when some pool's addresses changed.
func (a *Allocator) SetPools(defs []Pool) (evicted []string) {
	next := map[string]*pool{}
	var fresh []*pool // pools whose spans need the addresses in use marked
	for _, def := range defs {
		if def.Name == "" || next[def.Name] != nil {
			continue
		}
		p := buildPool(def)
		if old := a.pools[def.Name]; old != nil && sameSpans(old, p) {
			p.spans = old.spans
		} else {
			fresh = append(fresh, p)
		}
		next[def.Name] = p
	}
	if len(fresh) > 0 {
		for ip := range a.ips {
			for _, p := range fresh {
				for _, s := range p.spans {
					if s.contains(ip) {
						s.mark(ip)
					}
				}
			}
		}
	}

	// Services whose pool changed in a way that may invalidate them.
	var recheck []*holding
	for name, old := range a.pools {
		if p := next[name]; p != nil && old.sameForHolders(p) {
			p.holders = old.holders
			continue
		}
		for _, h := range old.holders {
			recheck = append(recheck, h)
		}
	}

	a.pools = next
	a.ordered = a.ordered[:0]
	a.allSpans = a.allSpans[:0]
	for _, p := range next {
		a.ordered = append(a.ordered, p)
		a.allSpans = append(a.allSpans, p.spans...)
	}
	slices.SortFunc(a.ordered, poolOrder)

	for _, h := range recheck {
		if p := a.homeFor(h); p != nil {
			h.pool = p.def.Name
			p.holders[h.share.service] = h
			continue
		}
		evicted = append(evicted, h.share.service)
		a.Release(h.share.service)
	}
	sort.Strings(evicted)
	return evicted
}

// homeFor finds a pool that may keep h's IPs: its own first.
func (a *Allocator) homeFor(h *holding) *pool {
	fits := func(p *pool) bool {
		if ok, _ := p.serves(h.subject); !ok {
			return false
		}
		return p.containsAll(h.ips) && (h.reqPool == "" || h.reqPool == p.def.Name)
	}
	if p := a.pools[h.pool]; p != nil && fits(p) {
		return p
	}
	for _, p := range a.ordered {
		if fits(p) {
			return p
		}
	}
	return nil
}

func sameSpans(p, q *pool) bool {
	return slices.EqualFunc(p.spans, q.spans, func(s, t *span) bool {
		return s.family == t.family && s.first == t.first && s.last == t.last && s.avoidBuggy == t.avoidBuggy
	})
}

// Stats counts each pool's addresses per family, pools by name, IPv4 first.
func (a *Allocator) Stats() []PoolStats {
	names := make([]string, 0, len(a.pools))
	for name := range a.pools {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []PoolStats
	for _, name := range names {
		for _, f := range []Family{IPv4, IPv6} {
			var total u128
			var used int64
			found := false
			for _, s := range a.pools[name].spans {
				if s.family == f {
					found = true
					total = total.addSat(s.total())
					used += s.inUse
				}
			}
			if found {
				out = append(out, PoolStats{
					Pool: name, Family: f,
					Total: total.int64(), Assigned: used,
					Available: total.sub(fromUint64(uint64(used))).int64(),
				})
			}
		}
	}
	return out
}
