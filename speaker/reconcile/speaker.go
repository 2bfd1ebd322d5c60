package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/speaker/announce"
	"github.com/heraldlb/herald/speaker/bgp"
)

// Membership is what the speaker needs of speaker/members.
type Membership interface {
	Run(ctx context.Context) error
	Alive() []string
	Suspects() []string
	LastKeyMismatch() time.Time
	Changes() <-chan struct{}
	Send(node string, msg []byte) error
	Leave(timeout time.Duration) error
	SetPeers(addrs []string)
}

// Announcer is what the speaker needs of speaker/announce.
type Announcer interface {
	Run(ctx context.Context) error
	Set(desired []announce.Announcement)
	Status() []announce.Status
	Reannounce(ips []netip.Addr)
}

// Router is what the speaker needs of speaker/bgp.
type Router interface {
	Run(ctx context.Context) error
	Set(d bgp.Desired)
	Update(u map[string]bgp.PathUpdate)
	Status() []bgp.PeerStatus
}

// ErrKeyChanged ends Run when the memberlist Secret's key changed: the
// speaker must restart to use it (memberlist cannot change keys in place).
var ErrKeyChanged = errors.New("the memberlist key changed; restart to use it")

// Options wire a Speaker. Node, Cache, Members, L2, BGP and Inbox are required.
type Options struct {
	// Node is this node's name.
	Node string
	// NodeIP is the address memberlist binds to; peers are the other
	// nodes' InternalIPs of its family.
	NodeIP netip.Addr
	// Class is the loadBalancerClass served ("" : Services without one).
	Class string
	// Cache provides the informers and reads (Secrets of herald-system only).
	Cache cache.Cache
	// MemberlistSecret names the Secret in herald-system with the gossip
	// key; MemberlistKey is the key Members runs with.
	MemberlistSecret string
	MemberlistKey    []byte
	Events           EventRecorder
	Members          Membership
	L2               Announcer
	BGP              Router
	Inbox            *Inbox
	// QuorumMemory tunes the takeover guard (see Quorum); default 30 s.
	QuorumMemory time.Duration
	// SettleTimeout bounds how long a (re)joining node waits for the other
	// speakers' releases before it takes over on its own (see settle);
	// default 3 s.
	SettleTimeout time.Duration
	// StallThreshold: a loop tick this late means the process was stalled
	// (SIGSTOP, a frozen VM); it then settles again. Default 1 s.
	StallThreshold time.Duration
	// HandoverTimeout bounds the hand-over messages on shutdown (default 1 s).
	HandoverTimeout time.Duration
	Log             *slog.Logger
	// Registerer gets the speaker's metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Speaker is the node's reconcile loop: it watches the cluster, elects the
// owners of Layer 2 addresses and drives the announcer and the BGP router.
type Speaker struct {
	opts    Options
	log     *slog.Logger
	watch   *watcher
	metrics *metrics
	status  chan struct{}

	mu     sync.Mutex
	engine *Engine
	quorum *Quorum
	settle *settle
	// released are addresses other nodes released to this one, until when
	// they may be taken even while settling.
	released map[netip.Addr]time.Time
	sends    chan struct{} // bounds concurrent release sends
	model    *config.Model
	nodes    map[string]nodeInfo
	peerUIDs map[string]string
	gone     map[string]bool // handed over; true once memberlist saw it go
	live     []string
	trusted  bool // the quorum allows takeovers
	minority bool // the last verdict: too few speakers seen
	// takeovers: trusted and not settling.
	takeovers bool
	// untrustedWhy is the last reason not to take over ("" when trusted).
	untrustedWhy string
	// bgpDesired is the latest full BGP state set (its Paths dropped);
	// bgpInUse names its peers; routes merges the Services' routes.
	bgpDesired bgp.Desired
	bgpInUse   map[string]bool
	routes     *routeIndex
	bgpIssues  []PeerIssue
	reported   reportCache
}

// New checks the options and returns a Speaker; it does no I/O.
func New(o Options) (*Speaker, error) {
	switch {
	case o.Node == "":
		return nil, errors.New("reconcile: a node name is required")
	case o.Cache == nil || o.Members == nil || o.L2 == nil || o.BGP == nil || o.Inbox == nil:
		return nil, errors.New("reconcile: cache, members, announcer, router and inbox are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Events == nil {
		o.Events = noEvents{}
	}
	if o.QuorumMemory <= 0 {
		o.QuorumMemory = 30 * time.Second
	}
	if o.SettleTimeout <= 0 {
		o.SettleTimeout = 3 * time.Second
	}
	if o.StallThreshold <= 0 {
		o.StallThreshold = time.Second
	}
	if o.HandoverTimeout <= 0 {
		o.HandoverTimeout = time.Second
	}
	s := &Speaker{
		opts:     o,
		log:      o.Log,
		watch:    newWatcher(o.Class, o.MemberlistSecret),
		metrics:  newMetrics(),
		status:   make(chan struct{}, 1),
		engine:   NewEngine(o.Node),
		routes:   newRouteIndex(),
		nodes:    map[string]nodeInfo{},
		peerUIDs: map[string]string{},
		gone:     map[string]bool{},
		released: map[netip.Addr]time.Time{},
		sends:    make(chan struct{}, 16),
	}
	if o.Registerer != nil {
		if err := s.metrics.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("reconcile: register metrics: %w", err)
		}
	}
	return s, nil
}

// StatusChanged receives a value when the status may have changed.
func (s *Speaker) StatusChanged() <-chan struct{} { return s.status }

func (s *Speaker) notifyStatus() {
	select {
	case s.status <- struct{}{}:
	default:
	}
}

// tick is how often the loop checks for stalls and re-evaluates the quorum
// (suspicions clear without a membership event).
const tick = 100 * time.Millisecond

// Run watches the cluster and keeps this node's announcements right until
// ctx ends; it then hands its Layer 2 addresses over to their successors,
// leaves the speakers' cluster, withdraws its BGP routes and returns nil.
// It starts Members, the announcer and the router itself, so that it can
// stop them in that order. It returns ErrKeyChanged (after the same
// graceful stop) when the memberlist key changed.
func (s *Speaker) Run(ctx context.Context) error {
	synced, err := s.watch.register(ctx, s.opts.Cache)
	if err != nil {
		return err
	}
	if !s.opts.Cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("reconcile: cache did not sync: %w", ctx.Err())
	}
	for !synced() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	now := time.Now()
	s.mu.Lock()
	s.quorum = NewQuorum(s.opts.QuorumMemory)
	s.settle = newSettle(s.opts.SettleTimeout)
	s.settle.begin(now, "starting")
	s.settle = newSettle(s.opts.SettleTimeout)
	s.settle.begin(now, "starting")
	s.mu.Unlock()
	// The first batch holds every object: peers are known before memberlist
	// first joins, and nothing is elected before the model exists.
	if err := s.step(ctx, now, false); err != nil {
		return err
	}

	runs := s.startComponents()
	defer runs.stopAll()
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		stalled := false
		select {
		case <-ctx.Done():
			s.shutdown(runs)
			return nil
		case <-s.watch.signal:
		case <-s.opts.Members.Changes():
		case <-s.opts.Inbox.signal:
		case <-t.C:
			if gap := time.Since(last); gap > s.opts.StallThreshold {
				s.log.Warn("this speaker was stalled: settling again before taking anything over", "stalledFor", gap.Round(time.Millisecond).String())
				s.metrics.stalls.Inc()
				stalled = true
			}
			last = time.Now()
		}
		if err := s.step(ctx, time.Now(), stalled); err != nil {
			if errors.Is(err, ErrKeyChanged) {
				s.log.Warn("the memberlist key changed: stopping gracefully so that the speaker restarts with it", "secret", s.opts.MemberlistSecret)
				s.shutdown(runs)
				return err
			}
			s.log.Error("reconcile step failed", "err", err)
		}
	}
}

// components are the running Members, announcer and router.
type components struct {
	members, l2, bgp componentRun
}

type componentRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Speaker) startComponents() *components {
	start := func(name string, run func(context.Context) error) componentRun {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := run(ctx); err != nil {
				s.log.Error("component failed", "component", name, "err", err)
			}
		}()
		return componentRun{cancel, done}
	}
	return &components{
		members: start("memberlist", s.opts.Members.Run),
		l2:      start("layer2", s.opts.L2.Run),
		bgp:     start("bgp", s.opts.BGP.Run),
	}
}

func (r componentRun) stop(timeout time.Duration) bool {
	r.cancel()
	select {
	case <-r.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (c *components) stopAll() {
	c.bgp.stop(5 * time.Second)
	c.l2.stop(5 * time.Second)
	c.members.stop(5 * time.Second)
}

type noEvents struct{}

func (noEvents) Normal(runtime.Object, string, string, string)  {}
func (noEvents) Warning(runtime.Object, string, string, string) {}
