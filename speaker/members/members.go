// Package members tells each speaker which speakers are alive, using
// hashicorp/memberlist behind a small interface, and carries direct messages
// between them (the hand-over on graceful stop).
//
// Gossip is encrypted with a shared key (16, 24 or 32 bytes: AES-128, -192
// or -256) and unencrypted traffic is refused, so a process without the key
// can neither join nor be heard. The key can be changed while running
// (SetKey) without anyone losing sight of anyone: see nextKeyStep. Each
// member publishes a small payload of the application's (SetMeta) that the
// others read (Metas). Timings are tuned for fast failure detection (under a
// second on a LAN, see DefaultTimings). Unlike a plain memberlist, Run keeps
// re-joining known peers that are not members, so the two sides of a healed
// partition merge again, and retries starting (a port still held by a
// previous process) instead of giving up.
package members

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPort is memberlist's usual port (MetalLB's too).
const DefaultPort = 7946

// Sentinel errors.
var (
	ErrNotRunning    = errors.New("members: not running")
	ErrRunning       = errors.New("members: already running")
	ErrUnknownMember = errors.New("members: no such live member")
	ErrKeySize       = errors.New("members: gossip key must be 16, 24 or 32 bytes (AES-128, -192 or -256)")
	ErrMetaSize      = fmt.Errorf("members: metadata payload over %d bytes", MaxAppMeta)
)

// Timings are memberlist's failure-detection and gossip timings. A zero
// field takes its value from DefaultTimings.
type Timings struct {
	// ProbeInterval is how often each member probes a random other one.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack before
	// indirect probes through other members start.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspect gets to refute before it is
	// declared dead: SuspicionMult * max(1, log10(members)) * ProbeInterval.
	SuspicionMult int
	// GossipInterval is how often state changes are gossiped.
	GossipInterval time.Duration
	// TCPTimeout bounds joins, push/pull syncs and reliable messages.
	TCPTimeout time.Duration
	// PushPullInterval is how often full state is exchanged with a member.
	PushPullInterval time.Duration
	// GossipToTheDeadTime is how long dead members still get gossip.
	GossipToTheDeadTime time.Duration
	// RejoinInterval is how often known peers that are not members are
	// joined again.
	RejoinInterval time.Duration
}

// DefaultTimings detect a killed member in about 0.6-1.0 s on a LAN (vs
// 5.5 s with memberlist's DefaultLANConfig): a probe every 200 ms, 100 ms
// for its ack, then 400 ms of suspicion (with fewer than 10 members; it
// grows with log10 of the member count). Probing every 100 ms with a 50 ms
// timeout halves failover (docs/benchmarks.md) but is not the default yet:
// the failure it exposed (a stale SpeakerStatus) is fixed, and one run of
// e2e/l2 with it saw an address its owner could not be reached on for
// two minutes, not explained yet (docs/benchmarks.md).
var DefaultTimings = Timings{
	ProbeInterval:       200 * time.Millisecond,
	ProbeTimeout:        100 * time.Millisecond,
	SuspicionMult:       2,
	GossipInterval:      100 * time.Millisecond,
	TCPTimeout:          time.Second,
	PushPullInterval:    15 * time.Second,
	GossipToTheDeadTime: 30 * time.Second,
	RejoinInterval:      3 * time.Second,
}

func (t Timings) withDefaults() Timings {
	d := DefaultTimings
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	t.ProbeInterval = pick(t.ProbeInterval, d.ProbeInterval)
	t.ProbeTimeout = pick(t.ProbeTimeout, d.ProbeTimeout)
	t.GossipInterval = pick(t.GossipInterval, d.GossipInterval)
	t.TCPTimeout = pick(t.TCPTimeout, d.TCPTimeout)
	t.PushPullInterval = pick(t.PushPullInterval, d.PushPullInterval)
	t.GossipToTheDeadTime = pick(t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	t.RejoinInterval = pick(t.RejoinInterval, d.RejoinInterval)
	if t.SuspicionMult <= 0 {
		t.SuspicionMult = d.SuspicionMult
	}
	return t
}

// Options configure Members.
type Options struct {
	// Name is this member's name: the node name. Required.
	Name string
	// BindAddr is the node's IP, where memberlist listens and which it
	// advertises. Required.
	BindAddr netip.Addr
	// Port for UDP and TCP; DefaultPort if 0.
	Port int
	// Key is the shared gossip key, 16, 24 or 32 bytes. Required.
	Key []byte
	// Timings; zero fields take DefaultTimings.
	Timings Timings
	Logger  *slog.Logger
	// Registerer, if not nil, gets the membership metrics.
	Registerer prometheus.Registerer
	// OnMessage, if set, receives each message another member sent with
	// Send (a copy the callee may keep). It runs on memberlist's network
	// goroutine: it must return quickly.
	OnMessage func(msg []byte)
}

// Members is this node's view of the speakers' cluster.
type Members struct {
	name      string
	self      netip.AddrPort
	timings   Timings
	log       *slog.Logger
	onMessage func([]byte)
	changes   chan struct{}
	left      atomic.Bool
	// suspicions counts the members our probes suspected; refutations,
	// the times others suspected or declared this member dead and it
	// answered that it lives (see logWriter); departures, the members
	// memberlist declared dead or saw leave.
	suspicions, refutations, departures atomic.Uint64
	keyring                             *memberlist.Keyring
	wakeKeys                            chan struct{} // a new target key or new metadata of others
	wakeMeta                            chan struct{} // our metadata changed: publish it

	mu       sync.Mutex
	list     *memberlist.Memberlist // nil unless running
	ready    bool                   // the first join attempt is done
	startErr error                  // why the member could not start, nil once it runs
	app      []byte                 // our metadata payload
	target   []byte                 // the key to end with
	keyStep  time.Time              // when the current rotation step began
	keyWait  []string               // members the rotation waits for
	peers    []netip.AddrPort
	suspects map[string]bool // suspected by our own probes
	// keyMismatch is when gossip last arrived that our key cannot decrypt.
	keyMismatch time.Time
	gone        map[string]time.Time // failed or left, and when
	metas       map[string]nodeMeta  // the live members' metadata
	// addrs are every member's last address, kept after it fails: Ping
	// probes a member that was just declared failed, to tell a crash from
	// stale gossip.
	addrs map[string]net.Addr
}

// New checks the options and returns Members; it does no I/O.
func New(o Options) (*Members, error) {
	if o.Name == "" {
		return nil, errors.New("members: a node name is required")
	}
	if !o.BindAddr.IsValid() {
		return nil, errors.New("members: a bind address is required")
	}
	if err := CheckKey(o.Key); err != nil {
		return nil, err
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	keyring, err := memberlist.NewKeyring(nil, slices.Clone(o.Key))
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Members{
		name:      o.Name,
		self:      netip.AddrPortFrom(o.BindAddr.Unmap(), uint16(o.Port)),
		timings:   o.Timings.withDefaults(),
		log:       o.Logger.With("component", "memberlist"),
		onMessage: o.OnMessage,
		keyring:   keyring,
		changes:   make(chan struct{}, 1),
		wakeKeys:  make(chan struct{}, 1),
		wakeMeta:  make(chan struct{}, 1),
		target:    slices.Clone(o.Key),
		suspects:  map[string]bool{},
		metas:     map[string]nodeMeta{},
		addrs:     map[string]net.Addr{},
		gone:      map[string]time.Time{},
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(collector{m}); err != nil {
			return nil, fmt.Errorf("members: register metrics: %w", err)
		}
	}
	return m, nil
}

// Timings returns the timings in effect.
func (m *Members) Timings() Timings { return m.timings }

// SetPeers replaces the addresses ("ip" or "ip:port", the port defaulting to
// this member's) of the other speakers to join and keep re-joining: the
// nodes' InternalIPs. Invalid entries and this member's own address are
// skipped. Call it before Run so the first join finds the cluster.
func (m *Members) SetPeers(addrs []string) {
	var peers []netip.AddrPort
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				m.log.Warn("ignoring invalid peer address", "peer", a)
				continue
			}
			ap = netip.AddrPortFrom(ip, m.self.Port())
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if ap != m.self {
			peers = append(peers, ap)
		}
	}
	slices.SortFunc(peers, netip.AddrPort.Compare)
	m.mu.Lock()
	m.peers = slices.Compact(peers)
	m.mu.Unlock()
}

// Alive returns the sorted names of the live members (suspects included:
// they are alive until declared dead), this one among them. It is empty until
// Run has made its first attempt to join the peers, so a starting speaker
// does not briefly believe it is alone and take every IP.
func (m *Members) Alive() []string {
	m.mu.Lock()
	list, ready := m.list, m.ready
	m.mu.Unlock()
	if list == nil || !ready {
		return nil
	}
	nodes := list.Members()
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names
}

// Suspects returns, sorted, the live members that this node's own probes
// suspect: they did not answer and are not yet declared dead. A node that
// suspects most of the others at once is more likely cut off itself, which
// the speaker uses to avoid taking over addresses from the wrong side of a
// partition.
func (m *Members) Suspects() []string {
	m.mu.Lock()
	list := m.list
	suspects := make(map[string]bool, len(m.suspects))
	for n := range m.suspects {
		suspects[n] = true
	}
	m.mu.Unlock()
	if list == nil || len(suspects) == 0 {
		return nil
	}
	var out []string
	for _, n := range list.Members() {
		if suspects[n.Name] {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out
}

// LastKeyMismatch is when gossip last arrived that this member's key could
// not decrypt (zero if never): another speaker uses a different key. A
// speaker that never joined anyone and sees this is the odd one out.
func (m *Members) LastKeyMismatch() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keyMismatch
}

// Changes receives a value soon after membership may have changed (a member
// joined, failed, left or was updated, or the first join completed); several
// changes may coalesce into one value. Read Alive to see the new state.
func (m *Members) Changes() <-chan struct{} { return m.changes }

func (m *Members) notify() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// Send delivers msg to the live member named node over memberlist's reliable
// (TCP) channel, encrypted like the gossip. It returns when the message was
// written, not when the receiver handled it.
func (m *Members) Send(node string, msg []byte) error {
	m.mu.Lock()
	list := m.list
	m.mu.Unlock()
	if list == nil {
		return ErrNotRunning
	}
	for _, n := range list.Members() {
		if n.Name == node {
			if err := list.SendReliable(n, msg); err != nil {
				return fmt.Errorf("members: send to %s: %w", node, err)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrUnknownMember, node)
}

// Ping probes the named members now (live ones, or ones that just failed),
// all at once, each as
// memberlist's own probe does (a UDP ping, ProbeTimeout to answer), and
// returns those that answered. The speaker uses it to check, before it
// takes over a failed member's addresses, that it still reaches a majority.
func (m *Members) Ping(names []string) []string {
	m.mu.Lock()
	list := m.list
	targets := map[string]net.Addr{}
	for _, n := range names {
		if a, ok := m.addrs[n]; ok && n != m.name {
			targets[n] = a
		}
	}
	m.mu.Unlock()
	if list == nil {
		return nil
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		answered []string
	)
	for n, a := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := list.Ping(n, a); err == nil {
				mu.Lock()
				answered = append(answered, n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(answered)
	return answered
}

// Leave tells the other members that this one is leaving, waiting up to
// timeout for the message to go out, and stops re-joining. Others see it gone
// at once instead of after failure detection. Call it before ending Run.
func (m *Members) Leave(timeout time.Duration) error {
	m.mu.Lock()
	list := m.list
	m.mu.Unlock()
	if list == nil {
		return ErrNotRunning
	}
	m.left.Store(true)
	if err := list.Leave(timeout); err != nil {
		return fmt.Errorf("members: leave: %w", err)
	}
	return nil
}

// Run creates the member (listening on the bind address), joins the peers,
// and re-joins every RejoinInterval the peers that are not members, until ctx
// ends. It then shuts the member down without leaving (call Leave first for
// a graceful stop) and returns nil. If the member cannot start (its port is
// taken, its address missing) Run says so in the log and through Err, and
// tries again with a growing delay (up to 10 s): the speaker stays up and
// tells why it is not ready rather than exiting.
func (m *Members) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.list != nil {
		m.mu.Unlock()
		return ErrRunning
	}
	m.mu.Unlock()

	list := m.create(ctx)
	if list == nil {
		return nil // ctx ended before the member could start
	}
	defer func() {
		m.mu.Lock()
		m.list, m.ready = nil, false
		m.mu.Unlock()
		if err := list.Shutdown(); err != nil {
			m.log.Warn("shutdown failed", "err", err)
		}
	}()
	m.log.Info("member started", "name", m.name, "address", m.self.String(), "key", IDOf(m.keyring.GetPrimaryKey()).String())

	var wg sync.WaitGroup
	defer wg.Wait()
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	wg.Add(1)
	go func() { defer wg.Done(); m.publishMeta(loopCtx, list) }()

	m.rejoin(list)
	m.mu.Lock()
	m.ready = true
	m.mu.Unlock()
	m.notify()

	rejoin := time.NewTicker(m.timings.RejoinInterval)
	defer rejoin.Stop()
	keys := time.NewTicker(keyCheckInterval)
	defer keys.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-rejoin.C:
			if !m.left.Load() {
				m.rejoin(list)
			}
			m.forgetOldGone()
		case <-keys.C:
			m.rotateKeys()
		case <-m.wakeKeys:
			m.rotateKeys()
		}
	}
}

// keyCheckInterval is how often a key rotation in flight looks at the
// others' published keys (besides whenever their metadata changes).
const keyCheckInterval = 250 * time.Millisecond

// create starts the memberlist member, retrying until it works or ctx ends
// (then it returns nil).
func (m *Members) create(ctx context.Context) *memberlist.Memberlist {
	delay := time.Second
	for {
		list, err := memberlist.Create(m.config())
		if err == nil {
			m.mu.Lock()
			m.list, m.startErr = list, nil
			m.mu.Unlock()
			return list
		}
		err = fmt.Errorf("members: cannot start on %s: %w", m.self, err)
		m.mu.Lock()
		m.startErr = err
		m.mu.Unlock()
		m.log.Error("memberlist cannot start; retrying", "err", err, "retryIn", delay.String())
		m.notify()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// Err says why the member is not running (nil while it runs or before Run).
func (m *Members) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.startErr
}

// config builds memberlist's configuration.
func (m *Members) config() *memberlist.Config {
	t := m.timings
	c := memberlist.DefaultLANConfig()
	c.Name = m.name
	c.BindAddr = m.self.Addr().String()
	c.BindPort = int(m.self.Port())
	c.AdvertiseAddr = c.BindAddr
	c.AdvertisePort = c.BindPort
	c.Keyring = m.keyring
	c.GossipVerifyIncoming = true
	c.GossipVerifyOutgoing = true
	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.SuspicionMult = t.SuspicionMult
	c.GossipInterval = t.GossipInterval
	c.TCPTimeout = t.TCPTimeout
	c.PushPullInterval = t.PushPullInterval
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
	c.Logger = log.New(&logWriter{m: m}, "", 0)
	d := &delegate{m: m}
	c.Delegate = d
	c.Events = d
	c.Ping = d
	return c
}

// SetKey makes key the gossip key to end with. A different key starts a
// rotation (see nextKeyStep); the same key does nothing. It does no I/O.
func (m *Members) SetKey(key []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	m.mu.Lock()
	changed := !bytes.Equal(m.target, key)
	if changed {
		m.target = slices.Clone(key)
		m.keyStep = time.Now()
	}
	m.mu.Unlock()
	if changed {
		m.log.Info("memberlist key changed: rotating to it", "key", IDOf(key).String())
		wake(m.wakeKeys)
	}
	return nil
}

// KeyState is this member's key rotation as of now.
type KeyState struct {
	// Installed are the keys it decrypts with, the primary (the one it
	// encrypts with) first.
	Installed []KeyID
	// Target is the key it rotates to (the primary once done).
	Target KeyID
	// WaitingFor are the live members the current step waits for.
	WaitingFor []string
}

// Rotating reports whether a rotation is in flight.
func (k KeyState) Rotating() bool {
	return len(k.Installed) != 1 || k.Installed[0] != k.Target
}

// Keys returns the key rotation state.
func (m *Members) Keys() KeyState {
	st := KeyState{}
	for _, k := range m.keyring.GetKeys() {
		st.Installed = append(st.Installed, IDOf(k))
	}
	m.mu.Lock()
	st.Target, st.WaitingFor = IDOf(m.target), slices.Clone(m.keyWait)
	m.mu.Unlock()
	return st
}

// rotateKeys takes the next step of a rotation once the others are ready.
func (m *Members) rotateKeys() {
	keys := slices.Clone(m.keyring.GetKeys())
	m.mu.Lock()
	target, since := m.target, m.keyStep
	if len(keys) == 1 && bytes.Equal(keys[0], target) {
		// No rotation in flight (nextKeyStep would say so): skip reading
		// every member's keys, four times a second and on every metadata
		// change in a cluster of hundreds.
		m.keyWait = nil
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	peers := map[string][]KeyID{}
	m.mu.Lock()
	for n, meta := range m.metas {
		if n != m.name {
			peers[n] = meta.keys
		}
	}
	m.mu.Unlock()
	act := nextKeyStep(keys, target, peers, since, time.Now())
	m.mu.Lock()
	m.keyWait = act.waitingFor
	if act.op != keyNone {
		m.keyStep = time.Now()
	}
	m.mu.Unlock()
	var err error
	switch act.op {
	case keyNone:
		return
	case keyAdd:
		err = m.keyring.AddKey(act.key)
		m.log.Info("memberlist key installed beside the current one", "key", IDOf(act.key).String())
	case keyUse:
		err = m.keyring.UseKey(act.key)
		m.log.Info("memberlist encrypts with the new key", "key", IDOf(act.key).String(), "notConfirmedBy", act.waitingFor)
	case keyRemove:
		err = m.keyring.RemoveKey(act.key)
		m.log.Info("old memberlist key removed", "key", IDOf(act.key).String(), "notConfirmedBy", act.waitingFor)
	}
	if err != nil {
		m.log.Error("memberlist key rotation step failed", "err", err)
		return
	}
	wake(m.wakeMeta)
	m.notify()
}

// SetMeta publishes payload to the other members (at most MaxAppMeta
// bytes); they read it with Metas. Publishing happens in the background.
func (m *Members) SetMeta(payload []byte) error {
	if len(payload) > MaxAppMeta {
		return ErrMetaSize
	}
	m.mu.Lock()
	same := bytes.Equal(m.app, payload)
	m.app = bytes.Clone(payload)
	m.mu.Unlock()
	if !same {
		wake(m.wakeMeta)
	}
	return nil
}

// Metas returns each live member's published payload (this one's
// included), by name; a member whose metadata cannot be read has none.
func (m *Members) Metas() map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.list == nil || !m.ready {
		return nil
	}
	out := make(map[string][]byte, len(m.metas)+1)
	for n, meta := range m.metas {
		out[n] = meta.app
	}
	out[m.name] = m.app
	return out
}

// localMeta is what this member publishes now.
func (m *Members) localMeta() []byte {
	meta := nodeMeta{}
	for _, k := range m.keyring.GetKeys() {
		meta.keys = append(meta.keys, IDOf(k))
	}
	m.mu.Lock()
	meta.app = m.app
	m.mu.Unlock()
	return meta.marshal()
}

// publishMeta gossips this member's metadata whenever it changed, one
// update at a time (an update waits for its broadcast).
func (m *Members) publishMeta(ctx context.Context, list *memberlist.Memberlist) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wakeMeta:
		}
		if err := list.UpdateNode(m.timings.TCPTimeout); err != nil {
			m.log.Debug("metadata update not confirmed", "err", err)
		}
	}
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// rejoinWave is how many peers rejoin contacts at once.
const rejoinWave = 8

// rejoin joins the known peers that are not members, in waves of
// rejoinWave at a time in random order. A join exchanges the whole
// membership with the peer (memberlist's push-pull), so after each wave
// the peers that became members through it are skipped: a starting member
// or a healed partition costs a few full-state exchanges, not one per node
// (with 500 members starting at once, joining every peer is 250,000
// exchanges of a 500-entry state). A peer that is down costs up to
// TCPTimeout.
func (m *Members) rejoin(list *memberlist.Memberlist) {
	m.mu.Lock()
	peers := slices.Clone(m.peers)
	m.mu.Unlock()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	for len(peers) > 0 {
		// The live members' addresses as the delegate recorded them (the
		// Nodes list.Members returns are memberlist's own, updated under its
		// lock); addrs keeps failed members too, for Ping.
		present := map[netip.AddrPort]bool{}
		m.mu.Lock()
		for name, a := range m.addrs {
			if _, failed := m.gone[name]; failed {
				continue
			}
			if u, ok := a.(*net.UDPAddr); ok {
				ap := u.AddrPort()
				present[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
			}
		}
		m.mu.Unlock()
		peers = slices.DeleteFunc(peers, func(p netip.AddrPort) bool { return present[p] })
		wave := peers[:min(rejoinWave, len(peers))]
		var wg sync.WaitGroup
		for _, p := range wave {
			addr := p.String()
			wg.Go(func() {
				if _, err := list.Join([]string{addr}); err != nil {
					m.log.Debug("peer not joined", "peer", addr, "err", err)
					return
				}
				m.log.Info("joined peer", "peer", addr)
			})
		}
		wg.Wait()
		peers = peers[len(wave):]
	}
}

// deadRetention is how long a failed or departed member counts as dead in
// the metrics.
const deadRetention = 5 * time.Minute

func (m *Members) forgetOldGone() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, at := range m.gone {
		if time.Since(at) > deadRetention {
			delete(m.gone, name)
		}
	}
}
