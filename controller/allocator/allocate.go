package allocator

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Allocate gives the Service its IPs: one per family it needs, all from one
// pool, each the lowest address that satisfies the request. A Service that
// already holds IPs that still satisfy the request gets them back; it keeps
// its pool while that pool still serves it.
func (a *Allocator) Allocate(req Request) (Assignment, error) {
	w, err := normalize(req)
	if err != nil {
		return Assignment{}, err
	}
	pools, err := a.candidates(w)
	if err != nil {
		return Assignment{}, err
	}
	share := w.sharing()
	for _, ip := range w.IPs {
		if err := a.available(share, ip, "requested IP"); err != nil {
			return Assignment{}, err
		}
	}
	h := a.services[w.Service]
	if p := a.stickyPool(w, h, pools); p != nil {
		if ips, missing := a.plan(w, p, h, w.FamilyPolicy == RequireDualStack); missing == nil {
			return a.commit(w, p, ips), nil
		}
	}
	// PreferDualStack first looks for a pool with every family, then settles.
	needAll := []bool{true}
	if w.FamilyPolicy == PreferDualStack && len(w.families) > 1 {
		needAll = append(needAll, false)
	}
	var missing []miss
	for _, all := range needAll {
		missing = missing[:0]
		for _, p := range pools {
			ips, m := a.plan(w, p, h, all)
			if m == nil {
				return a.commit(w, p, ips), nil
			}
			missing = append(missing, m...)
		}
	}
	return Assignment{}, missError(w, missing)
}

// stickyPool returns the pool the Service holds IPs from if it may stay there.
// AutoAssign does not matter for a Service already in the pool.
func (a *Allocator) stickyPool(w *want, h *holding, candidates []*pool) *pool {
	if h == nil {
		return nil
	}
	p := a.pools[h.pool]
	if p == nil {
		return nil
	}
	if w.Pool != "" || len(w.IPs) > 0 {
		if slices.Contains(candidates, p) {
			return p
		}
		return nil
	}
	if ok, _ := p.serves(w.subject()); ok {
		return p
	}
	return nil
}

// miss says why a pool gave no address of a family.
type miss struct {
	pool      string
	family    Family
	exhausted bool // false: the pool has no range of the family
}

// plan picks one IP per family from p: the requested one, else the one h
// already holds if still fine, else the lowest that satisfies. With all, every
// family must be served; otherwise at least one.
func (a *Allocator) plan(w *want, p *pool, h *holding, all bool) ([]netip.Addr, []miss) {
	share := w.sharing()
	ips := make([]netip.Addr, 0, len(w.families))
	var missing []miss
	for _, f := range w.families {
		if ip := ipOf(w.IPs, f); ip.IsValid() {
			ips = append(ips, ip)
			continue
		}
		if h != nil {
			if ip := ipOf(h.ips, f); ip.IsValid() && p.contains(ip) && a.available(share, ip, "IP") == nil {
				ips = append(ips, ip)
				continue
			}
		}
		if ip, ok := a.lowest(share, p, f); ok {
			ips = append(ips, ip)
			continue
		}
		missing = append(missing, miss{pool: p.def.Name, family: f, exhausted: p.hasFamily(f)})
	}
	if len(ips) == 0 || (all && len(missing) > 0) {
		return nil, missing
	}
	return ips, nil
}

// lowest returns the lowest address of family f in p that s may take: a free
// one, or one held under s's sharing key by Services it is compatible with.
func (a *Allocator) lowest(s sharing, p *pool, f Family) (netip.Addr, bool) {
	best, ok := p.lowestFree(f)
	if s.key == "" {
		return best, ok
	}
	for ip := range a.shared[s.key] {
		if familyOf(ip) != f || (ok && !ip.Less(best)) || !p.contains(ip) {
			continue
		}
		if a.available(s, ip, "IP") == nil {
			best, ok = ip, true
		}
	}
	return best, ok
}

func missError(w *want, missing []miss) error {
	var parts []string
	kind := ErrFamilyUnavailable
	for _, m := range missing {
		part := fmt.Sprintf("pool %q has no %s range", m.pool, m.family)
		if m.exhausted {
			kind = ErrPoolExhausted
			part = fmt.Sprintf("pool %q has no free %s address", m.pool, m.family)
		}
		if !slices.Contains(parts, part) {
			parts = append(parts, part)
		}
	}
	return fail(kind, "no address for Service %s (%s, %s): %s", w.Service, w.FamilyPolicy, familyList(w.families), strings.Join(parts, "; "))
}

// candidates lists, in order, the pools Allocate may take from.
func (a *Allocator) candidates(w *want) ([]*pool, error) {
	if len(w.IPs) > 0 {
		return a.poolsHolding(w, w.IPs, "requested IP")
	}
	if w.Pool != "" {
		p, err := a.namedPool(w)
		if err != nil {
			return nil, err
		}
		return []*pool{p}, nil
	}
	sub := w.subject()
	var out []*pool
	var refusals []string
	for _, p := range a.ordered {
		if !p.def.AutoAssign {
			continue
		}
		if ok, why := p.serves(sub); !ok {
			refusals = append(refusals, fmt.Sprintf("pool %q %s", p.def.Name, why))
			continue
		}
		out = append(out, p)
	}
	if len(out) > 0 {
		return out, nil
	}
	switch {
	case len(a.ordered) == 0:
		return nil, fail(ErrNoPool, "no IP pool is configured")
	case len(refusals) == 0:
		return nil, fail(ErrNoPool, "no pool has autoAssign enabled; Service %s must name a pool or request an IP", w.Service)
	}
	return nil, fail(ErrNoPool, "no autoAssign pool serves Service %s: %s", w.Service, strings.Join(refusals, "; "))
}

// namedPool returns the pool the Service asks for by name, if it may use it.
func (a *Allocator) namedPool(w *want) (*pool, error) {
	p := a.pools[w.Pool]
	if p == nil {
		return nil, fail(ErrPoolNotFound, "pool %q requested by Service %s does not exist", w.Pool, w.Service)
	}
	if ok, why := p.serves(w.subject()); !ok {
		return nil, fail(ErrNoPool, "pool %q requested by Service %s %s", w.Pool, w.Service, why)
	}
	return p, nil
}

// poolsHolding lists, in order, the pools that contain all of ips and may
// serve the Service; AutoAssign does not matter for explicit IPs.
func (a *Allocator) poolsHolding(w *want, ips []netip.Addr, label string) ([]*pool, error) {
	what := describeIPs(label, ips)
	if w.Pool != "" {
		p, err := a.namedPool(w)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			if !p.contains(ip) {
				return nil, fail(ErrNotInPool, "%s %s is not in pool %q%s", label, ip, w.Pool, a.avoidedNote(ip))
			}
		}
		return []*pool{p}, nil
	}
	sub := w.subject()
	var out []*pool
	refusal := ""
	for _, p := range a.ordered {
		if !p.containsAll(ips) {
			continue
		}
		if ok, why := p.serves(sub); !ok {
			if refusal == "" {
				refusal = fmt.Sprintf("%s in pool %q, which %s", what, p.def.Name, why)
			}
			continue
		}
		out = append(out, p)
	}
	if len(out) > 0 {
		return out, nil
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(a.ordered, func(p *pool) bool { return p.contains(ip) }) {
			return nil, fail(ErrNotInPool, "%s %s is not in any pool%s", label, ip, a.avoidedNote(ip))
		}
	}
	if refusal != "" {
		return nil, fail(ErrNotInPool, "%s", refusal)
	}
	return nil, fail(ErrNotInPool, "%s not in one pool; all IPs of a Service come from one pool", what)
}

// describeIPs reads "requested IP 1.2.3.4 is" or "requested IPs 1.2.3.4 and ::1 are".
func describeIPs(label string, ips []netip.Addr) string {
	if len(ips) == 1 {
		return fmt.Sprintf("%s %s is", label, ips[0])
	}
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return fmt.Sprintf("%ss %s are", label, strings.Join(s, " and "))
}

// avoidedNote explains an address a pool covers but withholds as buggy.
func (a *Allocator) avoidedNote(ip netip.Addr) string {
	for _, p := range a.ordered {
		for _, s := range p.spans {
			if s.covers(ip) && !s.contains(ip) {
				return fmt.Sprintf(" (pool %q avoids addresses ending in .0 and .255)", p.def.Name)
			}
		}
	}
	return ""
}
