// Package announce is the one declarative seam of Layer 2 mode: the speaker
// says which service IPs this node must announce (Set), and the package makes
// the node answer ARP (IPv4) and Neighbor Solicitations (IPv6) for exactly
// those, on the right interfaces, announcing each newly owned IP with a burst
// of gratuitous ARP / unsolicited Neighbor Advertisements.
//
// It opens no raw socket itself: it runs one arp or ndp responder per
// interface and family that has something to announce.
package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldlb/herald/speaker/l2responder"
)

// Announcement asks that IP be announced on Interfaces, or, when Interfaces
// is empty, on the default interface (see DefaultInterface).
type Announcement struct {
	IP         netip.Addr
	Interfaces []string
}

// Status says where an IP this node owns is being announced. Interfaces is
// empty when no interface qualifies (a warning for the user) and, in an
// OnChange notification, when the IP is no longer announced.
type Status struct {
	IP         netip.Addr
	Interfaces []string
}

// DefaultBurst is when, after taking over an IP, the node announces it: at
// once, then again in case the first message was lost or a switch was still
// learning.
var DefaultBurst = []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, time.Second}

// ErrRunning is returned by Run when it is already running.
var ErrRunning = errors.New("announce: already running")

// Options configure a Layer2 announcer. The zero value works.
type Options struct {
	Logger *slog.Logger
	// Registerer, if not nil, gets the Layer 2 metrics.
	Registerer prometheus.Registerer
	// Burst overrides DefaultBurst.
	Burst []time.Duration
	// RescanInterval is how often interfaces are listed again; when they
	// or their addresses changed, default interface choices are redone.
	// Default 5 s.
	RescanInterval time.Duration
	// OnChange, if set, is called whenever the interfaces of an IP change
	// (including to none), after the change took effect. It is called from
	// Set or from Run's goroutine, so it must be quick and must not call Set.
	OnChange func(Status)
	// OnLinkChange, if set, is called after the node's interfaces, their
	// addresses or its routes changed (what Placeable answers may have
	// changed). It is called from Run's goroutine and must be quick.
	OnLinkChange func()
}

// Layer2 converges the node's Layer 2 announcements with arp and ndp
// responders.
type Layer2 struct {
	log          *slog.Logger
	burst        []time.Duration
	rescan       time.Duration
	onChange     func(Status)
	onLinkChange func()

	// Seams for unit tests; the real ones touch the system.
	interfaces   func() ([]Interface, error)
	routed       func(netip.Addr, []Interface) string
	newResponder func(p protocol, iface string, log *slog.Logger) responder
	watchLinks   func(ctx context.Context, changed chan<- struct{}) error

	mu      sync.Mutex
	ctx     context.Context         // Run's; nil unless running
	desired map[netip.Addr][]string // explicit interfaces, nil for the default
	placed  map[netip.Addr][]string // where each desired IP is announced
	ifaces  []Interface             // last listing
	// routes caches the routed interface per address (the kernel's answer
	// costs a socket each); emptied whenever links or routes change.
	routes  map[netip.Addr]string
	workers map[workerKey]*worker
	retired map[workerKey]l2responder.Stats // counters of stopped responders
	wg      sync.WaitGroup                  // worker and burst goroutines
	// Bursts started and running now: a test knows a burst is over, or
	// that none started, without sleeping past it.
	burstsStarted, burstsRunning atomic.Int64
}

// New returns an announcer; it does no I/O. Call Run to make it work.
func New(o Options) (*Layer2, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Burst == nil {
		o.Burst = DefaultBurst
	}
	if o.RescanInterval <= 0 {
		o.RescanInterval = 5 * time.Second
	}
	l := &Layer2{
		log:          o.Logger,
		burst:        slices.Clone(o.Burst),
		rescan:       o.RescanInterval,
		onChange:     o.OnChange,
		onLinkChange: o.OnLinkChange,
		interfaces:   systemInterfaces,
		routed:       routedInterface,
		newResponder: newSystemResponder,
		watchLinks:   linkEvents,
		routes:       map[netip.Addr]string{},
		desired:      map[netip.Addr][]string{},
		placed:       map[netip.Addr][]string{},
		workers:      map[workerKey]*worker{},
		retired:      map[workerKey]l2responder.Stats{},
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(collector{l}); err != nil {
			return nil, fmt.Errorf("announce: register metrics: %w", err)
		}
	}
	return l, nil
}

// Set makes desired, the complete list of IPs this node owns now, the
// announced ones; IPs absent from it stop being answered before Set
// returns. Each IP should appear once; later duplicates are
// ignored. It never waits for the network: responders start and announcement
// bursts run in the background. Before Run, Set only records desired.
func (l *Layer2) Set(desired []Announcement) {
	next := make(map[netip.Addr][]string, len(desired))
	for _, a := range desired {
		ip := a.IP.Unmap().WithZone("")
		if _, dup := next[ip]; dup || !ip.IsValid() {
			continue
		}
		var names []string
		if len(a.Interfaces) > 0 {
			names = slices.Compact(slices.Sorted(slices.Values(a.Interfaces)))
		}
		next[ip] = names
	}
	l.mu.Lock()
	old := l.desired
	l.desired = next
	var changes []Status
	if l.ctx != nil {
		changes = l.placeLocked(old, nil)
	}
	l.mu.Unlock()
	l.notify(changes)
}

// Reannounce sends the takeover burst again for those of ips that are
// announced now (others are ignored): after a partition healed or the
// process was stalled, neighbours may have learnt another node's MAC for an
// address this node still owns, and only a gratuitous message moves them
// back. It never waits for the network.
func (l *Layer2) Reannounce(ips []netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil {
		return
	}
	var again []announced
	for _, ip := range ips {
		ip = ip.Unmap().WithZone("")
		for _, name := range l.placed[ip] {
			if w := l.workers[workerKey{protocolOf(ip), name}]; w != nil && w.ips[ip] {
				again = append(again, announced{w.r, ip})
			}
		}
	}
	if len(again) > 0 {
		l.startBurstLocked(again)
	}
}

// Placeable reports, for each request, whether an interface would qualify
// if this node announced it now (what Set would place it on is not empty).
// The speaker uses it to tell the others which addresses it cannot serve.
func (l *Layer2) Placeable(reqs []Announcement) []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ifaces == nil {
		l.ifaces = l.listInterfaces()
	}
	out := make([]bool, len(reqs))
	for i, r := range reqs {
		names := r.Interfaces
		if len(names) > 0 {
			names = slices.Compact(slices.Sorted(slices.Values(names)))
		}
		out[i] = len(l.choose(r.IP.Unmap().WithZone(""), names, l.ifaces)) > 0
	}
	return out
}

// Status lists, sorted by IP, where each IP of the last Set is announced
// (nothing while Run is not running).
func (l *Layer2) Status() []Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Status, 0, len(l.placed))
	for ip, names := range l.placed {
		out = append(out, Status{IP: ip, Interfaces: slices.Clone(names)})
	}
	slices.SortFunc(out, func(a, b Status) int { return a.IP.Compare(b.IP) })
	return out
}

// Run starts announcing what Set asked for and keeps the interface choice up
// to date until ctx ends; it then stops every responder (the node no longer
// answers for any IP) and returns nil. Link, address and route changes are
// seen as the kernel reports them (rtnetlink), and the interfaces are also
// listed again every RescanInterval.
func (l *Layer2) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.ctx != nil {
		l.mu.Unlock()
		return ErrRunning
	}
	l.ctx = ctx
	ifaces := l.listInterfaces()
	l.ifaces = ifaces
	changes := l.placeLocked(nil, ifaces)
	l.mu.Unlock()
	l.notify(changes)

	events := make(chan struct{}, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		if err := l.watchLinks(watchCtx, events); err != nil {
			l.log.Error("link changes are not watched: they are seen at the next rescan only", "err", err, "rescanInterval", l.rescan.String())
		}
	}()
	defer func() { stopWatch(); <-watchDone }()

	tick := time.NewTicker(l.rescan)
	defer tick.Stop()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			l.mu.Lock()
			for k, w := range l.workers {
				l.stopWorkerLocked(k, w)
			}
			l.ctx, l.placed = nil, map[netip.Addr][]string{}
			l.mu.Unlock()
			l.wg.Wait()
			return nil
		case <-tick.C:
			l.rescanOnce(false)
		case <-events:
			// a burst of changes (a link going down drops its addresses
			// and routes) costs one rescan
			if debounce == nil {
				debounce = time.After(linkDebounce)
			}
		case <-debounce:
			debounce = nil
			l.rescanOnce(true)
		}
	}
}

// linkDebounce gathers the kernel's messages about one change.
const linkDebounce = 20 * time.Millisecond

// rescanOnce lists the interfaces again and redoes the placements when they
// changed, or always when routes may have changed (forced).
func (l *Layer2) rescanOnce(force bool) {
	ifaces := l.listInterfaces()
	l.mu.Lock()
	if !force && slices.EqualFunc(ifaces, l.ifaces, equalInterface) {
		l.mu.Unlock()
		return
	}
	if !slices.EqualFunc(ifaces, l.ifaces, equalInterface) {
		l.log.Info("interfaces changed: choosing interfaces again")
	}
	l.ifaces = ifaces
	clear(l.routes)
	changes := l.placeLocked(nil, ifaces)
	l.mu.Unlock()
	l.notify(changes)
	if l.onLinkChange != nil {
		l.onLinkChange()
	}
}

func equalInterface(a, b Interface) bool {
	return a.Name == b.Name && a.Up == b.Up && a.Loopback == b.Loopback &&
		a.Broadcast == b.Broadcast && slices.Equal(a.Prefixes, b.Prefixes)
}

// listInterfaces lists the system's interfaces, falling back to the last
// listing on error.
func (l *Layer2) listInterfaces() []Interface {
	ifaces, err := l.interfaces()
	if err != nil {
		l.log.Error("listing interfaces failed", "err", err)
		return l.ifaces
	}
	return ifaces
}

// placeLocked decides the interfaces of every desired IP and converges the
// responders. With ifaces nil it redoes only IPs whose request changed since
// old (listing interfaces only if there is such an IP); otherwise it redoes
// all with ifaces.
func (l *Layer2) placeLocked(old map[netip.Addr][]string, ifaces []Interface) []Status {
	all, listed := ifaces != nil, ifaces != nil
	placed := make(map[netip.Addr][]string, len(l.desired))
	for ip, names := range l.desired {
		if !all {
			if prev, ok := l.placed[ip]; ok {
				if was, ok := old[ip]; ok && slices.Equal(was, names) {
					placed[ip] = prev
					continue
				}
			}
			if !listed {
				ifaces, listed = l.listInterfaces(), true
				l.ifaces = ifaces
			}
		}
		placed[ip] = l.choose(ip, names, ifaces)
	}
	return l.convergeLocked(placed)
}

func (l *Layer2) choose(ip netip.Addr, names []string, ifaces []Interface) []string {
	if len(names) > 0 {
		return explicitInterfaces(names, ifaces)
	}
	routed := ""
	if DefaultInterface(ip, ifaces, "") == "" {
		var ok bool
		if routed, ok = l.routes[ip]; !ok {
			routed = l.routed(ip, ifaces)
			l.routes[ip] = routed
		}
	}
	if name := DefaultInterface(ip, ifaces, routed); name != "" {
		return []string{name}
	}
	return nil
}

func (l *Layer2) notify(changes []Status) {
	if l.onChange == nil {
		return
	}
	for _, s := range changes {
		l.onChange(s)
	}
}
