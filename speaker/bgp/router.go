package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Router is the node's BGP speaker: an in-process gobgp server that is
// driven to a Desired state. New does no I/O; Run does all the work.
type Router struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	desired *snapshot // latest Set not yet applied; nil when none is pending
	// updates are path changes since the last Set was taken, by peer and
	// prefix (nil: withdraw); applied after it.
	updates map[string]map[netip.Prefix]*Path
	wake    chan struct{}

	statusMu sync.RWMutex
	status   []PeerStatus
}

// New returns a Router; it does no I/O and starts nothing.
func New(opts Options) *Router {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = time.Second
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 200 * time.Millisecond
	}
	return &Router{opts: opts, log: opts.Logger, wake: make(chan struct{}, 1)}
}

// snapshot is a Desired copied and normalized by Set, so Run never shares
// memory with the caller.
type snapshot struct {
	routerID   netip.Addr
	listenPort uint16
	peers      []Peer
	paths      map[string]pathSet
}

// Set asks the Router to converge to d. It does not wait for that: a Set
// that arrives while an earlier one is being applied replaces it, so only
// the latest state is applied. d is copied (work proportional to its
// size); the caller may reuse it.
func (r *Router) Set(d Desired) {
	snap := &snapshot{routerID: d.RouterID, listenPort: d.ListenPort, peers: slices.Clone(d.Peers), paths: make(map[string]pathSet, len(d.Paths))}
	for i, p := range snap.peers {
		if p.BFD != nil {
			b := *p.BFD
			snap.peers[i].BFD = &b
		}
	}
	for name, paths := range d.Paths {
		snap.paths[name] = normalizePaths(paths)
	}
	r.mu.Lock()
	r.desired, r.updates = snap, nil
	r.mu.Unlock()
	r.poke()
}

// Update changes some paths on top of the latest Set, at a cost
// proportional to the change (Set costs the size of the whole state).
// Peers and router ID stay as the latest Set made them; paths of a peer
// that is not running are kept for when it runs. Like Set, it does not
// wait, and u is copied.
func (r *Router) Update(u map[string]PathUpdate) {
	r.mu.Lock()
	for name, pu := range u {
		if r.desired != nil {
			// The pending Set absorbs the change.
			ps := r.desired.paths[name]
			if ps == nil {
				ps = pathSet{}
				r.desired.paths[name] = ps
			}
			ps.update(pu)
			continue
		}
		if r.updates == nil {
			r.updates = map[string]map[netip.Prefix]*Path{}
		}
		m := r.updates[name]
		if m == nil {
			m = map[netip.Prefix]*Path{}
			r.updates[name] = m
		}
		for _, prefix := range pu.Withdraw {
			m[prefix.Masked()] = nil
		}
		for prefix, p := range normalizePaths(pu.Set) {
			m[prefix] = &p
		}
	}
	r.mu.Unlock()
	r.poke()
}

func (r *Router) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// takeDesired returns the pending Set (nil if none) and the updates to
// apply after it.
func (r *Router) takeDesired() (*snapshot, map[string]map[netip.Prefix]*Path) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, u := r.desired, r.updates
	r.desired, r.updates = nil, nil
	return d, u
}

// Status returns every peer's status, sorted by name.
func (r *Router) Status() []PeerStatus {
	r.statusMu.RLock()
	defer r.statusMu.RUnlock()
	return slices.Clone(r.status)
}

func (r *Router) publish(st map[string]PeerStatus) {
	list := make([]PeerStatus, 0, len(st))
	for _, name := range slices.Sorted(maps.Keys(st)) {
		list = append(list, st[name])
	}
	r.statusMu.Lock()
	r.status = list
	r.statusMu.Unlock()
}

// Run starts gobgp, applies every Set as it comes and keeps Status fresh.
// When ctx ends it withdraws every path (except from graceful-restart
// peers, which keep them for their restart time), closes the sessions
// with a Cease NOTIFICATION and returns nil; the withdrawals have left
// the process by then.
func (r *Router) Run(ctx context.Context) error {
	if r.opts.Registerer != nil {
		c := newCollector(r)
		if err := r.opts.Registerer.Register(c); err != nil {
			return fmt.Errorf("bgp: register metrics: %w", err)
		}
		defer r.opts.Registerer.Unregister(c)
	}
	e := newInstance(r)
	defer e.ll.stop()
	defer e.stopServer(true)
	defer e.stopBFDTimer()
	tick := time.NewTicker(r.opts.StatusInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			e.stopServer(true)
			e.publish()
			return nil
		case <-r.wake:
			d, u := r.takeDesired()
			if d != nil {
				e.apply(ctx, d)
			}
			if u != nil {
				e.update(u)
			}
		case ev := <-e.events:
			e.onPeerEvent(ev)
		case <-e.bfdDue:
			e.startDueBFD()
		case <-tick.C:
			e.refresh()
			e.reresolve(ctx)
		}
		e.publish()
	}
}
