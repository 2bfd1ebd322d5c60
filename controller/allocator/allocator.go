// Package allocator assigns LoadBalancer IPs from pools. It is pure: no I/O, no
// clocks, no logging; the same calls in the same order give the same answers.
//
// An Allocator is not safe for concurrent use: the controller serializes calls.
// Maps passed in a Request (labels) are kept by reference and must not be
// modified afterwards.
//
// Cost: one Allocate, Assign or Release is O(log n) in the number of addresses
// in use (plus the number of pools and of IPs held under the same sharing key),
// and memory grows with what is allocated, never with pool size.
package allocator

import (
	"net/netip"
	"slices"
)

// Allocator holds the pools and who holds which IP.
type Allocator struct {
	pools    map[string]*pool
	ordered  []*pool // automatic choice order
	allSpans []*span // every span of every pool, to mark an address wherever it lies
	services map[string]*holding
	ips      map[netip.Addr]*ipEntry
	shared   map[string]map[netip.Addr]struct{} // IPs in use, by sharing key
}

// holding is one Service's assignment and what it asked for.
type holding struct {
	share   sharing
	subject subject
	reqPool string // the pool it named, for re-homing on SetPools
	pool    string
	ips     []netip.Addr // in the order of the Service's families
}

// New returns an allocator with no pools.
func New() *Allocator {
	return &Allocator{
		pools:    map[string]*pool{},
		services: map[string]*holding{},
		ips:      map[netip.Addr]*ipEntry{},
		shared:   map[string]map[netip.Addr]struct{}{},
	}
}

// Lookup returns what a Service holds.
func (a *Allocator) Lookup(service string) (Assignment, bool) {
	h := a.services[service]
	if h == nil {
		return Assignment{}, false
	}
	return Assignment{Pool: h.pool, IPs: slices.Clone(h.ips)}, true
}

// Release frees everything a Service holds and reports whether it held anything.
func (a *Allocator) Release(service string) bool {
	h := a.services[service]
	if h == nil {
		return false
	}
	for _, ip := range h.ips {
		a.drop(h, ip)
	}
	if p := a.pools[h.pool]; p != nil {
		delete(p.holders, service)
	}
	delete(a.services, service)
	return true
}

// commit makes w hold ips from pool p, replacing what it held before.
func (a *Allocator) commit(w *want, p *pool, ips []netip.Addr) Assignment {
	h := a.services[w.Service]
	share := w.sharing()
	if h != nil {
		keyChanged := h.share.key != share.key
		for _, ip := range h.ips {
			if keyChanged || !slices.Contains(ips, ip) {
				a.drop(h, ip)
			}
		}
		if old := a.pools[h.pool]; old != nil {
			delete(old.holders, w.Service)
		}
		if keyChanged {
			h.ips = nil
		}
	} else {
		h = &holding{}
		a.services[w.Service] = h
	}
	held := h.ips
	h.share, h.subject, h.reqPool, h.pool = share, w.subject(), w.Pool, p.def.Name
	h.ips = slices.Clone(ips)
	for _, ip := range ips {
		if !slices.Contains(held, ip) {
			a.take(h, ip)
		}
	}
	p.holders[w.Service] = h
	return Assignment{Pool: h.pool, IPs: slices.Clone(ips)}
}

func (a *Allocator) take(h *holding, ip netip.Addr) {
	e := a.ips[ip]
	if e == nil {
		e = &ipEntry{}
		a.ips[ip] = e
		for _, s := range a.allSpans {
			if s.contains(ip) {
				s.mark(ip)
			}
		}
	}
	e.add(h)
	if k := h.share.key; k != "" {
		if a.shared[k] == nil {
			a.shared[k] = map[netip.Addr]struct{}{}
		}
		a.shared[k][ip] = struct{}{}
	}
}

func (a *Allocator) drop(h *holding, ip netip.Addr) {
	e := a.ips[ip]
	if e == nil {
		return
	}
	e.remove(h)
	if len(e.holders) > 0 {
		return
	}
	delete(a.ips, ip)
	for _, s := range a.allSpans {
		if s.contains(ip) {
			s.unmark(ip)
		}
	}
	if k := h.share.key; k != "" {
		delete(a.shared[k], ip)
		if len(a.shared[k]) == 0 {
			delete(a.shared, k)
		}
	}
}
