package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/speaker/advertise"
	"github.com/heraldlb/herald/speaker/announce"
	"github.com/heraldlb/herald/speaker/bgp"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/heraldlb/herald/speaker/presence"
	"github.com/heraldlb/herald/speaker/takeover"
)

// Membership is what the speaker needs of speaker/members.
type Membership interface {
	Run(ctx context.Context) error
	// Err says why the member is not running (nil while it runs).
	Err() error
	Alive() []string
	Suspects() []string
	LastKeyMismatch() time.Time
	Changes() <-chan struct{}
	Send(node string, msg []byte) error
	Leave(timeout time.Duration) error
	SetPeers(addrs []string)
	SetKey(key []byte) error
	Keys() members.KeyState
	SetMeta(payload []byte) error
	Metas() map[string][]byte
	// Ping probes the named members now and returns those that answered.
	Ping(names []string) []string
}

// Announcer is what the speaker needs of speaker/announce.
type Announcer interface {
	Run(ctx context.Context) error
	Set(desired []announce.Announcement)
	Status() []announce.Status
	Reannounce(ips []netip.Addr)
	Placeable(reqs []announce.Announcement) []bool
}

// Router is what the speaker needs of speaker/bgp.
type Router interface {
	Run(ctx context.Context) error
	Set(d bgp.Desired)
	Update(u map[string]bgp.PathUpdate)
	Status() []bgp.PeerStatus
}

// Presence is this speaker's Lease (presence.Heartbeat).
type Presence interface {
	Run(ctx context.Context) error
	Release(ctx context.Context) error
	Duration() time.Duration
}

// Options wire a Speaker. Node, Cache, Members, L2, BGP and Inbox are required.
type Options struct {
	// Node is this node's name; NodeUID its Node's UID (Events about the
	// speaker itself go on the Node).
	Node    string
	NodeUID types.UID
	// NodeIP is the address memberlist binds to; peers are the other
	// nodes' InternalIPs of its family.
	NodeIP netip.Addr
	// Class is the loadBalancerClass served ("" : Services without one).
	Class string
	// Cache provides the informers and reads (Secrets and Leases of
	// herald-system only).
	Cache cache.Cache
	// MemberlistSecret names the Secret in herald-system with the gossip
	// key; a new key there is rotated to without a restart.
	MemberlistSecret string
	Events           EventRecorder
	Members          Membership
	L2               Announcer
	BGP              Router
	Inbox            *Inbox
	// Presence keeps this speaker's Lease; nil writes none (tests). The
	// others' Leases are read from the cache either way.
	Presence Presence
	// Grace is how long a node that settled, was stalled or can announce
	// again takes only what is released to it (see speaker/takeover);
	// default 2 s.
	Grace time.Duration
	// StallThreshold: a loop tick this late means the process was stalled
	// (SIGSTOP, a frozen VM); it then settles again. Default 1 s.
	StallThreshold time.Duration
	// HandoverTimeout bounds the hand-over messages on shutdown (default 1 s).
	HandoverTimeout time.Duration
	// ShutdownTimeout bounds the whole graceful stop (hand-over, leave,
	// BGP withdrawal, Lease release); default 8 s, to fit a 10 s
	// terminationGracePeriodSeconds with the final status write.
	ShutdownTimeout time.Duration
	// IsolatedEventAfter is how long this node must see too few speakers
	// before it says so with an Event on its Node (default 10 s).
	IsolatedEventAfter time.Duration
	// GracefulShutdown is how long a node excluded from load balancing
	// (drained, ...) keeps its BGP routes, marked with the GRACEFUL_SHUTDOWN
	// community, before it withdraws them; 0 withdraws them at once
	// (herald-speaker's default is DefaultGracefulShutdown).
	GracefulShutdown time.Duration
	Log              *slog.Logger
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
	// lastLoop is when the loop last went round (Unix ns): liveness.
	lastLoop atomic.Int64
	// stopping is set when the graceful stop begins.
	stopping atomic.Bool

	mu       sync.Mutex
	running  bool // the first step is done and the components started
	engine   *Engine
	guard    *takeover.Guard
	tracker  *presence.Tracker
	decision takeover.Decision // the last one
	// blockedSelf is what this node cannot announce, as of the engine's
	// IPVersion blockedAt; published is what it last told the others;
	// others is what the others published, read from metaRaw.
	blockedSelf  takeover.Blocked
	blockedAt    uint64
	blockedSet   bool
	published    takeover.Published
	publishedSet bool
	metaRaw      map[string][]byte
	others       map[string]takeover.Published
	takeovers    bool // the last TakeOver the engine was told
	reach        takeover.Reach
	probing      bool // a probe of the live members is in flight
	model        *config.Model
	nodes        map[string]nodeInfo
	// excl is this node's exclusion from load balancing (exclSeen: looked
	// at once); withdrawal is where its BGP routes are.
	excl       exclusion
	exclSeen   bool
	withdrawal advertise.Withdrawal
	peerUIDs   map[string]string
	live       []string
	keyProblem string // why the Secret's key is not used, "" if it is
	conditions []metav1.Condition
	// What the speaker told the user about itself (Events on its Node).
	isolatedSince    time.Time
	isolatedReported bool
	memberlistErr    string
	retryLogs        map[string]retryLog
	// bgpDesired is the latest full BGP state set (its Paths dropped);
	// bgpInUse names its peers; routes merges the Services' routes.
	bgpDesired bgp.Desired
	bgpInUse   map[string]bool
	routes     *routeIndex
	bgpIssues  []PeerIssue
	reported   reportCache
	announced  sliceCache    // see Announcements
	sends      chan struct{} // bounds concurrent release sends
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
	if o.Grace <= 0 {
		o.Grace = takeover.DefaultGrace
	}
	if o.StallThreshold <= 0 {
		o.StallThreshold = time.Second
	}
	if o.HandoverTimeout <= 0 {
		o.HandoverTimeout = time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 8 * time.Second
	}
	if o.IsolatedEventAfter <= 0 {
		o.IsolatedEventAfter = 10 * time.Second
	}
	leaseDuration := presence.DefaultDuration
	if o.Presence != nil {
		leaseDuration = o.Presence.Duration()
	}
	s := &Speaker{
		opts:      o,
		log:       o.Log,
		watch:     newWatcher(o.Class, o.MemberlistSecret),
		metrics:   newMetrics(),
		status:    make(chan struct{}, 1),
		engine:    NewEngine(o.Node),
		guard:     takeover.New(takeover.Config{Self: o.Node, Grace: o.Grace}),
		tracker:   presence.NewTracker(o.Node, leaseDuration),
		routes:    newRouteIndex(),
		nodes:     map[string]nodeInfo{},
		peerUIDs:  map[string]string{},
		metaRaw:   map[string][]byte{},
		others:    map[string]takeover.Published{},
		retryLogs: map[string]retryLog{},
		sends:     make(chan struct{}, 16),
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
// leaves the speakers' cluster, withdraws its BGP routes, deletes its Lease
// and returns nil. It starts Members, the announcer, the router and the
// Lease itself, so that it can stop them in that order. A step that fails
// (a cache read) is retried at the next one, never dropped.
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
	// The first batch holds every object: peers are known before memberlist
	// first joins, and nothing is elected before the model exists.
	s.step(ctx, time.Now(), false)

	runs := s.startComponents() // shutdown stops them
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		stalled := false
		s.lastLoop.Store(time.Now().UnixNano())
		select {
		case <-ctx.Done():
			s.stopping.Store(true)
			s.shutdown(runs)
			return nil
		case <-s.watch.signal:
		case <-s.opts.Members.Changes():
		case <-s.opts.Inbox.signal:
		case <-t.C:
			if gap := time.Since(last); gap > s.opts.StallThreshold {
				s.log.Warn("this speaker was stalled", "stalledFor", gap.Round(time.Millisecond).String())
				s.metrics.stalls.Inc()
				stalled = true
			}
			last = time.Now()
		}
		s.step(ctx, time.Now(), stalled)
	}
}

// Alive is the liveness check: nil while the loop goes round (it ticks
// every 100 ms; a loop that has not gone round for half a minute is stuck).
func (s *Speaker) Alive() error {
	last := s.lastLoop.Load()
	if last == 0 {
		return nil // not started yet: readiness says so
	}
	if d := time.Since(time.Unix(0, last)); d > 30*time.Second {
		return fmt.Errorf("the reconcile loop has not gone round for %s", d.Round(time.Second))
	}
	return nil
}

// Ready is the readiness check: nil when the speaker does its whole job:
// its components run, and it may take over addresses (it sees a majority
// of the speakers it should see, and has settled).
func (s *Speaker) Ready() error {
	if err := s.opts.Members.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch d := s.decision; {
	case !s.running:
		return errors.New("starting")
	case !d.Quorum.OK:
		return errors.New(d.Quorum.Why)
	case d.Settling:
		return errors.New(settlingWhy(d.Waiting))
	case !d.TakeOver:
		return errors.New("settling: taking only what the other speakers release to it for a moment")
	}
	return nil
}

// components are the running Members, announcer, router and Lease.
type components struct {
	members, l2, bgp, presence componentRun
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
	c := &components{
		members: start("memberlist", s.opts.Members.Run),
		l2:      start("layer2", s.opts.L2.Run),
		bgp:     start("bgp", s.opts.BGP.Run),
	}
	if s.opts.Presence != nil {
		c.presence = start("presence", s.opts.Presence.Run)
	}
	return c
}

// stop ends a component, waiting up to timeout; a component never started
// counts as stopped.
func (r componentRun) stop(timeout time.Duration) bool {
	if r.cancel == nil {
		return true
	}
	r.cancel()
	select {
	case <-r.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

type noEvents struct{}

func (noEvents) Normal(runtime.Object, string, string, string)  {}
func (noEvents) Warning(runtime.Object, string, string, string) {}

// settlingWhy says what a settling node waits for.
func settlingWhy(waiting []string) string {
	return fmt.Sprintf("settling: waiting for %s to answer; if that lasts, TCP or UDP to the memberlist port may be blocked toward this node", strings.Join(waiting, ", "))
}
