package reconcilers

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"sync"

	"github.com/heraldlb/herald/controller/allocator"
)

// Allocations is the controller's one allocator with the bookkeeping around
// it. The allocator is not safe for concurrent use, so every call holds mu;
// callers write to the API server outside, in parallel.
type Allocations struct {
	mu      sync.Mutex
	alloc   *allocator.Allocator
	pools   []allocator.Pool
	pending map[string]error // Services refused, by key, with the reason
	evicted map[string]bool  // Services a pool change released, until their next call

	imported     chan struct{}
	importedOnce sync.Once

	// Metrics count what the allocator and the reconcilers that share it do.
	Metrics *Metrics
}

// NewAllocations returns an empty allocator whose start-up import is not
// done, counting in m (nil: metrics nobody reads).
func NewAllocations(m *Metrics) *Allocations {
	if m == nil {
		m = NewMetrics()
	}
	return &Allocations{
		Metrics:  m,
		alloc:    allocator.New(),
		pending:  map[string]error{},
		evicted:  map[string]bool{},
		imported: make(chan struct{}),
	}
}

// Change is what one call did to one Service.
type Change struct {
	// Assignment is what the Service holds now.
	Assignment allocator.Assignment
	// Err says why it holds nothing after a refused Allocate.
	Err error
	// Released: addresses it held before the call and holds no more.
	Released []netip.Addr
	// Evicted: a pool change released its addresses since its last call.
	Evicted bool
	// Pools whose counts may have changed.
	Pools []string
	// Retry lists refused Services that may succeed now that addresses
	// were freed.
	Retry []string
}

// Allocate gives the Service what it asks for. reqErr is a mistake found
// while reading the Service; it counts as a refusal. A refused Service holds
// nothing afterwards: it keeps no address its current spec does not allow.
func (a *Allocations) Allocate(req allocator.Request, reqErr error) Change {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := req.Service
	before, _ := a.alloc.Lookup(key)
	ch := Change{Evicted: a.evicted[key], Err: reqErr}
	delete(a.evicted, key)
	if ch.Err == nil {
		ch.Assignment, ch.Err = a.alloc.Allocate(req)
	}
	if ch.Err != nil {
		a.alloc.Release(key)
		ch.Assignment = allocator.Assignment{}
		a.pending[key] = ch.Err
		a.Metrics.allocationFailures.WithLabelValues(failureOf(ch.Err).word).Inc()
	} else {
		delete(a.pending, key)
	}
	a.account(&ch, key, before)
	return ch
}

// Release frees what the Service holds and forgets it.
func (a *Allocations) Release(key string) Change {
	a.mu.Lock()
	defer a.mu.Unlock()
	before, _ := a.alloc.Lookup(key)
	a.alloc.Release(key)
	ch := Change{Evicted: a.evicted[key]}
	delete(a.evicted, key)
	delete(a.pending, key)
	a.account(&ch, key, before)
	return ch
}

// account fills in Released, Pools and Retry and counts the change.
func (a *Allocations) account(ch *Change, key string, before allocator.Assignment) {
	after := ch.Assignment
	for _, ip := range before.IPs {
		if !slices.Contains(after.IPs, ip) {
			ch.Released = append(ch.Released, ip)
		}
	}
	gained := slices.ContainsFunc(after.IPs, func(ip netip.Addr) bool { return !slices.Contains(before.IPs, ip) })
	if gained {
		a.Metrics.allocations.Inc()
	}
	if len(ch.Released) > 0 {
		a.Metrics.releases.Inc()
		for k, err := range a.pending {
			if k != key && freedAddressHelps(err) {
				ch.Retry = append(ch.Retry, k)
			}
		}
	}
	if gained || len(ch.Released) > 0 || before.Pool != after.Pool {
		for _, p := range []string{before.Pool, after.Pool} {
			if p != "" && !slices.Contains(ch.Pools, p) {
				ch.Pools = append(ch.Pools, p)
			}
		}
	}
}

// SetPools installs the pools. If they differ from the current ones, it
// returns changed and the Services to look at again: those whose addresses
// no pool may hold any more, and every refused one.
func (a *Allocations) SetPools(defs []allocator.Pool) (changed bool, retry []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if reflect.DeepEqual(a.pools, defs) {
		return false, nil
	}
	evicted := a.alloc.SetPools(defs)
	a.pools = defs
	for _, key := range evicted {
		a.evicted[key] = true
		a.Metrics.releases.Inc()
	}
	retry = evicted
	for key := range a.pending {
		retry = append(retry, key)
	}
	return true, retry
}

// Import records an assignment a Service already has (from its status).
func (a *Allocations) Import(req allocator.Request, ips []netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.alloc.Assign(req, ips)
}

// PoolStats returns one pool's counts per family; none if it is not in use.
func (a *Allocations) PoolStats(pool string) []allocator.PoolStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []allocator.PoolStats
	for _, s := range a.alloc.Stats() {
		if s.Pool == pool {
			out = append(out, s)
		}
	}
	return out
}

// MarkImported opens the gate: every existing assignment is known, so
// allocating can begin.
func (a *Allocations) MarkImported() { a.importedOnce.Do(func() { close(a.imported) }) }

// WaitImported blocks until MarkImported or the context ends.
func (a *Allocations) WaitImported(ctx context.Context) error {
	select {
	case <-a.imported:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
