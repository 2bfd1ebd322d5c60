package reconcile

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/heraldlb/herald/speaker/announce"
	"github.com/heraldlb/herald/speaker/bgp"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/heraldlb/herald/speaker/takeover"
)

// fakeMembers is memberlist as a test sets it.
type fakeMembers struct {
	mu       sync.Mutex
	alive    []string
	suspects []string
	peers    []string
	sent     map[string][]netip.Addr // hand-overs
	released map[string][][]netip.Addr
	left     bool
	changes  chan struct{}
	// onLeave runs when Leave is called (set before the speaker starts).
	onLeave func()
	err     error             // Err's answer
	key     []byte            // the last key set
	metas   map[string][]byte // what the others published (and ours)
	// unreachable members do not answer Ping
	unreachable map[string]bool
	// onMeta and onSend see what this node publishes and sends (set
	// before the speaker starts).
	onMeta func(b []byte)
	onSend func(node string, m members.Message)
}

func newFakeMembers(alive ...string) *fakeMembers {
	return &fakeMembers{alive: alive, sent: map[string][]netip.Addr{}, released: map[string][][]netip.Addr{}, changes: make(chan struct{}, 1), metas: map[string][]byte{}}
}

func (f *fakeMembers) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
func (f *fakeMembers) SetKey(key []byte) error {
	if err := members.CheckKey(key); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key = slices.Clone(key)
	return nil
}
func (f *fakeMembers) Keys() members.KeyState {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := members.IDOf(f.key)
	return members.KeyState{Installed: []members.KeyID{id}, Target: id}
}
func (f *fakeMembers) SetMeta(b []byte) error {
	if f.onMeta != nil {
		f.onMeta(b)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metas["n1"] = slices.Clone(b)
	return nil
}

// published is what this node last published.
func (f *fakeMembers) published() (takeover.Published, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return takeover.ParsePublished(f.metas["n1"])
}

// Metas gives each alive member what it published; the others, unless a
// test set theirs, say they see a majority and block nothing.
func (f *fakeMembers) Metas() map[string][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	ready, _ := takeover.Published{Quorum: true}.MarshalBinary()
	out := map[string][]byte{}
	for _, n := range f.alive {
		m, ok := f.metas[n]
		if !ok && n != "n1" {
			m = ready
		}
		out[n] = m
	}
	return out
}

// Ping answers for the alive members that are not unreachable.
func (f *fakeMembers) Ping(names []string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, n := range names {
		if slices.Contains(f.alive, n) && !f.unreachable[n] {
			out = append(out, n)
		}
	}
	return out
}

// setMeta publishes node's metadata as its memberlist would.
func (f *fakeMembers) setMeta(node string, b []byte) {
	f.mu.Lock()
	f.metas[node] = b
	f.mu.Unlock()
	f.wake()
}

func (f *fakeMembers) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
	f.wake()
}

func (f *fakeMembers) wake() {
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

func (f *fakeMembers) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (f *fakeMembers) Alive() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.alive)
}
func (f *fakeMembers) Suspects() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.suspects)
}
func (f *fakeMembers) Changes() <-chan struct{}   { return f.changes }
func (f *fakeMembers) LastKeyMismatch() time.Time { return time.Time{} }
func (f *fakeMembers) Send(node string, msg []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := members.ParseMessage(msg)
	if err != nil {
		return err
	}
	if f.onSend != nil {
		f.onSend(node, m)
	}
	if m.Kind == members.KindRelease {
		f.released[node] = append(f.released[node], m.IPs)
	} else {
		f.sent[node] = m.IPs
	}
	return nil
}

// releasesTo lists what was released to node, each message as a string.
func (f *fakeMembers) releasesTo(node string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ips := range f.released[node] {
		out = append(out, fmt.Sprint(ips))
	}
	return out
}
func (f *fakeMembers) Leave(time.Duration) error {
	if f.onLeave != nil {
		f.onLeave()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left = true
	return nil
}
func (f *fakeMembers) SetPeers(addrs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = slices.Clone(addrs)
}
func (f *fakeMembers) setAlive(names ...string) {
	f.mu.Lock()
	f.alive = names
	f.mu.Unlock()
	f.wake()
}

// fakeL2 places every IP on eth0 (or the requested interfaces) and reports
// the changes as the real announcer does; eth0 can be taken down.
type fakeL2 struct {
	mu         sync.Mutex
	placed     map[netip.Addr][]string
	reannounce [][]netip.Addr
	onChange   func(announce.Status)
	onLinks    func()
	eth0Down   bool
}

func (f *fakeL2) Placeable(reqs []announce.Announcement) []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]bool, len(reqs))
	for i, r := range reqs {
		out[i] = !f.eth0Down || (len(r.Interfaces) > 0 && !slices.Equal(r.Interfaces, []string{"eth0"}))
	}
	return out
}

// setEth0 takes eth0 down or up, as the kernel would report it.
func (f *fakeL2) setEth0(up bool) {
	f.mu.Lock()
	f.eth0Down = !up
	f.mu.Unlock()
	f.onLinks()
}

func (f *fakeL2) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (f *fakeL2) Set(desired []announce.Announcement) {
	f.mu.Lock()
	next := map[netip.Addr][]string{}
	var changes []announce.Status
	for _, a := range desired {
		ifaces := a.Interfaces
		if ifaces == nil {
			ifaces = []string{"eth0"}
		}
		next[a.IP] = ifaces
		if !slices.Equal(f.placed[a.IP], ifaces) {
			changes = append(changes, announce.Status{IP: a.IP, Interfaces: ifaces})
		}
	}
	for ip := range f.placed {
		if _, ok := next[ip]; !ok {
			changes = append(changes, announce.Status{IP: ip})
		}
	}
	f.placed = next
	f.mu.Unlock()
	for _, c := range changes {
		f.onChange(c)
	}
}
func (f *fakeL2) Status() []announce.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []announce.Status
	for ip, ifs := range f.placed {
		out = append(out, announce.Status{IP: ip, Interfaces: ifs})
	}
	return out
}
func (f *fakeL2) Reannounce(ips []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reannounce = append(f.reannounce, ips)
}
func (f *fakeL2) announced() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ips []netip.Addr
	for ip := range f.placed {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return fmt.Sprint(ips)
}

// fakeRouter keeps the last desired state; every peer is established.
type fakeRouter struct {
	mu      sync.Mutex
	desired bgp.Desired
	sets    int
	updates int
	// stopped is closed when Run returns.
	stopped chan struct{}
}

func newFakeRouter() *fakeRouter { return &fakeRouter{stopped: make(chan struct{})} }

func (f *fakeRouter) Run(ctx context.Context) error {
	<-ctx.Done()
	close(f.stopped)
	return nil
}
func (f *fakeRouter) Set(d bgp.Desired) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.desired = d
	f.sets++
}

// Update applies path changes to the kept state, as the real router does.
func (f *fakeRouter) Update(u map[string]bgp.PathUpdate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.desired.Paths == nil {
		f.desired.Paths = map[string][]bgp.Path{}
	}
	for peer, pu := range u {
		paths := slices.DeleteFunc(slices.Clone(f.desired.Paths[peer]), func(p bgp.Path) bool {
			return slices.Contains(pu.Withdraw, p.Prefix) || slices.ContainsFunc(pu.Set, func(n bgp.Path) bool { return n.Prefix == p.Prefix })
		})
		f.desired.Paths[peer] = append(paths, pu.Set...)
	}
	f.updates++
}

// Status shows every peer established, and idle once Run returned (as the
// real router publishes after its stop).
func (f *fakeRouter) Status() []bgp.PeerStatus {
	state := bgp.StateEstablished
	select {
	case <-f.stopped:
		state = bgp.StateIdle
	default:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []bgp.PeerStatus
	for _, p := range f.desired.Peers {
		ps := bgp.PeerStatus{Name: p.Name, Address: p.Address, State: state}
		if state == bgp.StateEstablished {
			ps.Advertised = len(f.desired.Paths[p.Name])
		}
		out = append(out, ps)
	}
	return out
}

// last is a copy of the kept state (Update changes its Paths in place).
func (f *fakeRouter) last() bgp.Desired {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.desired
	d.Paths = maps.Clone(d.Paths)
	return d
}
