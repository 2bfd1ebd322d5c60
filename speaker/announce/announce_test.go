package announce

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/speaker/l2responder"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeResponder records what announce asks of a responder.
type fakeResponder struct {
	name string
	mu   sync.Mutex
	own  map[netip.Addr]bool
	sent []netip.Addr
	runs int
	open bool
	// onSend, if set, runs after each announcement is recorded.
	onSend func()
}

func (f *fakeResponder) Set(owned []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.own = map[netip.Addr]bool{}
	for _, ip := range owned {
		f.own[ip] = true
	}
}

func (f *fakeResponder) Owns(ip netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.own[ip]
}

func (f *fakeResponder) Gratuitous(ip netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.open {
		return l2responder.ErrNotRunning
	}
	f.sent = append(f.sent, ip)
	if hook := f.onSend; hook != nil {
		f.mu.Unlock()
		hook()
		f.mu.Lock()
	}
	return nil
}

func (f *fakeResponder) Run(ctx context.Context) error {
	f.mu.Lock()
	f.runs++
	f.open = true
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.open = false
	f.mu.Unlock()
	return nil
}

func (f *fakeResponder) Stats() l2responder.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return l2responder.Stats{Answered: 7, Gratuitous: uint64(len(f.sent))}
}

func (f *fakeResponder) sentFor(ip netip.Addr) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.sent {
		if s == ip {
			n++
		}
	}
	return n
}

type harness struct {
	l       *Layer2
	reg     *prometheus.Registry
	mu      sync.Mutex
	made    []*fakeResponder
	ifaces  []Interface
	changes []Status
	// routedTo is what the route lookup answers; links delivers fake
	// kernel link events.
	routedTo                  string
	routeLookups, linkChanges int
	links                     chan struct{}
}

func (h *harness) responders(name string) []*fakeResponder {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*fakeResponder
	for _, r := range h.made {
		if r.name == name {
			out = append(out, r)
		}
	}
	return out
}

// latest is the most recently made responder for "proto/iface".
func (h *harness) latest(t *testing.T, name string) *fakeResponder {
	t.Helper()
	rs := h.responders(name)
	if len(rs) == 0 {
		t.Fatalf("no responder %s was started", name)
	}
	return rs[len(rs)-1]
}

func (h *harness) setInterfaces(ifaces ...Interface) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ifaces = ifaces
}

func newHarness(t *testing.T, ifaces ...Interface) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), ifaces: ifaces}
	l, err := New(Options{
		Registerer:     h.reg,
		Burst:          []time.Duration{0, 30 * time.Millisecond, 60 * time.Millisecond},
		RescanInterval: 20 * time.Millisecond,
		OnChange: func(s Status) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.changes = append(h.changes, s)
		},
		OnLinkChange: func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.linkChanges++
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	l.interfaces = func() ([]Interface, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return slices.Clone(h.ifaces), nil
	}
	l.routed = func(netip.Addr, []Interface) string {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.routeLookups++
		return h.routedTo
	}
	h.routedTo = "eth0"
	h.links = make(chan struct{})
	l.watchLinks = func(ctx context.Context, changed chan<- struct{}) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-h.links:
				changed <- struct{}{}
			}
		}
	}
	l.newResponder = func(p protocol, iface string, _ *slog.Logger) responder {
		h.mu.Lock()
		defer h.mu.Unlock()
		r := &fakeResponder{name: string(p) + "/" + iface}
		h.made = append(h.made, r)
		return r
	}
	h.l = l
	return h
}

func (h *harness) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// waitBurstsOver waits until no announcement burst runs.
func (h *harness) waitBurstsOver(t *testing.T) {
	t.Helper()
	eventually(t, func() error {
		if n := h.l.burstsRunning.Load(); n != 0 {
			return fmt.Errorf("%d bursts still running", n)
		}
		return nil
	})
}

// eventually waits up to 2 s for cond, whose error says what is missing.
func eventually(t *testing.T, cond func() error) {
	t.Helper()
	testkit.For(t, 2*time.Second, "condition", cond)
}

var (
	eth0 = Interface{Name: "eth0", Up: true, Broadcast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.70.0.1/24"), netip.MustParsePrefix("2001:db8:70::1/64")}}
	eth1 = Interface{Name: "eth1", Up: true, Broadcast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}}
	v4   = netip.MustParseAddr("198.51.100.5")
	v4b  = netip.MustParseAddr("203.0.113.7")
	v6   = netip.MustParseAddr("2001:db8:100::5")
)

func TestSetPlacesIPsAndAnnouncesNewOnesInABurst(t *testing.T) {
	h := newHarness(t, eth0, eth1)
	h.l.Set([]Announcement{{IP: v4}, {IP: v6}, {IP: v4b, Interfaces: []string{"eth1", "eth0", "eth1", "missing"}}})
	if got := h.responders("arp/eth0"); len(got) != 0 {
		t.Fatal("Set before Run started a responder")
	}
	h.run(t)

	want := []Status{
		{IP: v4, Interfaces: []string{"eth1"}},          // its subnet
		{IP: v4b, Interfaces: []string{"eth0", "eth1"}}, // as asked, minus the missing one
		{IP: v6, Interfaces: []string{"eth0"}},          // routed
	}
	eventually(t, func() error {
		if got := h.l.Status(); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("Status = %v, want %v", got, want)
		}
		return nil
	})
	a1, a0, n0 := h.latest(t, "arp/eth1"), h.latest(t, "arp/eth0"), h.latest(t, "ndp/eth0")
	if !a1.Owns(v4) || !a1.Owns(v4b) || a0.Owns(v4) || !a0.Owns(v4b) || !n0.Owns(v6) {
		t.Fatal("responders own the wrong IPs")
	}
	if len(h.responders("ndp/eth1")) != 0 {
		t.Fatal("an NDP responder was started on an interface with no IPv6 to announce")
	}
	// Every newly owned IP is announced at each of the 3 burst offsets (the
	// first send may find the socket still opening: Run covers that one).
	eventually(t, func() error {
		for _, c := range []struct {
			r  *fakeResponder
			ip netip.Addr
		}{{a1, v4}, {a1, v4b}, {a0, v4b}, {n0, v6}} {
			if n := c.r.sentFor(c.ip); n < 2 {
				return fmt.Errorf("%s announced %s %d times", c.r.name, c.ip, n)
			}
		}
		return nil
	})
	h.waitBurstsOver(t)
	if n := a1.sentFor(v4); n > 3 {
		t.Fatalf("%s announced %d times, the burst has 3 offsets", v4, n)
	}

	// Same desired state again: nothing to do, nothing announced.
	// Set starts bursts and responders before it returns: nothing to wait for.
	before, bursts := a1.sentFor(v4), h.l.burstsStarted.Load()
	h.l.Set([]Announcement{{IP: v4}, {IP: v6}, {IP: v4b, Interfaces: []string{"eth0", "eth1", "missing"}}})
	if a1.sentFor(v4) != before || h.l.burstsStarted.Load() != bursts || len(h.responders("arp/eth1")) != 1 {
		t.Fatal("an unchanged Set announced again or restarted a responder")
	}

	// Dropping an IP stops answering before Set returns; dropping the last
	// IP of an interface stops its responder.
	h.l.Set([]Announcement{{IP: v4b, Interfaces: []string{"eth1"}}})
	if a1.Owns(v4) || a0.Owns(v4b) || n0.Owns(v6) || !a1.Owns(v4b) {
		t.Fatal("after Set dropped them, IPs are still owned")
	}
	eventually(t, func() error {
		a0.mu.Lock()
		defer a0.mu.Unlock()
		if a0.open {
			return fmt.Errorf("the responder on eth0 still runs with nothing to answer for")
		}
		return nil
	})

	h.mu.Lock()
	changes := fmt.Sprint(h.changes)
	h.mu.Unlock()
	for _, s := range []string{"{198.51.100.5 [eth1]}", "{198.51.100.5 []}", "{203.0.113.7 [eth1]}", "{2001:db8:100::5 []}"} {
		if !strings.Contains(changes, s) {
			t.Fatalf("OnChange calls %s lack %s", changes, s)
		}
	}
}

func TestBurstStopsWhenOwnershipIsLost(t *testing.T) {
	h := newHarness(t, eth0, eth1)
	h.l.burst = []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond}
	base := h.l.newResponder
	h.l.newResponder = func(p protocol, iface string, log *slog.Logger) responder {
		r := base(p, iface, log).(*fakeResponder)
		// The node loses the IP right after its first announcement.
		r.onSend = func() { h.l.Set(nil) }
		return r
	}
	h.run(t)
	h.l.Set([]Announcement{{IP: v4}})
	eventually(t, func() error {
		if rs := h.responders("arp/eth1"); len(rs) == 0 || rs[0].sentFor(v4) == 0 {
			return fmt.Errorf("not announced yet")
		}
		return nil
	})
	h.waitBurstsOver(t)
	if n := h.responders("arp/eth1")[0].sentFor(v4); n != 1 {
		t.Fatalf("%s was announced %d times although it was dropped after the first", v4, n)
	}
}

func TestRescanMovesIPsWhenInterfacesChange(t *testing.T) {
	h := newHarness(t, eth0)
	h.run(t)
	h.l.Set([]Announcement{{IP: v4}})
	eventually(t, func() error {
		if got := fmt.Sprint(h.l.Status()); got != "[{198.51.100.5 [eth0]}]" {
			return fmt.Errorf("Status = %s, want routed eth0", got)
		}
		return nil
	})
	// eth1 comes up with the IP's subnet: the IP moves there.
	h.setInterfaces(eth0, eth1)
	eventually(t, func() error {
		if got := fmt.Sprint(h.l.Status()); got != "[{198.51.100.5 [eth1]}]" {
			return fmt.Errorf("Status = %s, want eth1 after it appeared", got)
		}
		return nil
	})
	if h.latest(t, "arp/eth0").Owns(v4) || !h.latest(t, "arp/eth1").Owns(v4) {
		t.Fatal("responders did not follow the move")
	}
	// No usable interface at all: announced nowhere, and reported so.
	h.setInterfaces(Interface{Name: "lo", Up: true, Loopback: true})
	eventually(t, func() error {
		if got := fmt.Sprint(h.l.Status()); got != "[{198.51.100.5 []}]" {
			return fmt.Errorf("Status = %s, want no interface", got)
		}
		return nil
	})
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, eth0, eth1)
	h.run(t)
	h.l.Set([]Announcement{{IP: v4}, {IP: v6}})
	eventually(t, func() error {
		if n := testutil.CollectAndCount(collector{h.l}, "herald_l2_requests_answered_total"); n != 2 {
			return fmt.Errorf("%d answered series, want arp/eth1 and ndp/eth0", n)
		}
		return nil
	})
	expected := `
# HELP herald_l2_owned_ips Service IPs this node owns and announces on at least one interface.
# TYPE herald_l2_owned_ips gauge
herald_l2_owned_ips{family="ipv4"} 1
herald_l2_owned_ips{family="ipv6"} 1
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(expected), "herald_l2_owned_ips"); err != nil {
		t.Fatal(err)
	}
	// A stopped responder's counts stay in the totals.
	h.l.Set([]Announcement{{IP: v6}})
	answered := `
# HELP herald_l2_requests_answered_total ARP requests (protocol arp) and Neighbor Solicitations (protocol ndp) answered for owned service IPs.
# TYPE herald_l2_requests_answered_total counter
herald_l2_requests_answered_total{interface="eth0",protocol="ndp"} 7
herald_l2_requests_answered_total{interface="eth1",protocol="arp"} 7
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(answered), "herald_l2_requests_answered_total"); err != nil {
		t.Fatalf("the stopped arp/eth1 responder's count is lost: %v", err)
	}
}

// Reannounce repeats the burst for announced IPs only.
func TestReannounceRepeatsTheBurstForAnnouncedIPs(t *testing.T) {
	h := newHarness(t, eth0, eth1)
	h.run(t)
	h.l.Reannounce([]netip.Addr{v4}) // nothing announced yet: ignored
	h.l.Set([]Announcement{{IP: v4}})
	eventually(t, func() error {
		if len(h.responders("arp/eth1")) == 0 {
			return fmt.Errorf("no responder on eth1 yet")
		}
		return nil
	})
	a1 := h.latest(t, "arp/eth1")
	// The first send may find the socket still opening (the real responder
	// then announces on its own): 2 or 3 of the burst's 3 offsets count.
	eventually(t, func() error {
		if n := a1.sentFor(v4); n < 2 {
			return fmt.Errorf("first burst: %d announcements, want 2 or 3", n)
		}
		return nil
	})
	h.waitBurstsOver(t)
	first := a1.sentFor(v4)
	h.l.Reannounce([]netip.Addr{v4, v4b, v6})
	eventually(t, func() error {
		if n := a1.sentFor(v4); n != first+3 {
			return fmt.Errorf("after Reannounce: %d announcements, want %d", n, first+3)
		}
		return nil
	})
	h.waitBurstsOver(t)
	if n := a1.sentFor(v4); n != first+3 || a1.sentFor(v4b) != 0 || len(h.responders("ndp/eth0")) != 0 {
		t.Fatalf("Reannounce announced what is not owned, or too often (%d for %s)", n, v4)
	}
}

// A route change reported by the kernel re-places the addresses that were
// placed by route, and Placeable answers from the same choice, looking the
// route up once per address until links or routes change.
func TestLinkEventsAndPlaceable(t *testing.T) {
	h := newHarness(t, eth0, eth1)
	h.l.rescan = time.Hour // only the kernel's events trigger rescans here
	h.run(t)
	h.l.Set([]Announcement{{IP: v6}})
	eventually(t, func() error {
		if got := fmt.Sprint(h.l.Status()); got != "[{2001:db8:100::5 [eth0]}]" {
			return fmt.Errorf("Status = %s, want routed eth0", got)
		}
		return nil
	})
	reqs := []Announcement{{IP: v4}, {IP: v6}, {IP: v4b, Interfaces: []string{"eth7"}}, {IP: v4b, Interfaces: []string{"eth1"}}}
	if got := fmt.Sprint(h.l.Placeable(reqs)); got != "[true true false true]" {
		t.Fatalf("Placeable = %s, want [true true false true]", got)
	}
	h.mu.Lock()
	lookups := h.routeLookups
	h.mu.Unlock()
	h.l.Placeable(reqs)
	h.mu.Lock()
	if h.routeLookups != lookups {
		t.Errorf("route looked up again without a change (%d, then %d)", lookups, h.routeLookups)
	}
	// The route toward the IPv6 pool goes away: the kernel says so.
	h.routedTo = ""
	h.mu.Unlock()
	h.links <- struct{}{}
	eventually(t, func() error {
		if got := fmt.Sprint(h.l.Status()); got != "[{2001:db8:100::5 []}]" {
			return fmt.Errorf("Status = %s, want no interface once the route is gone", got)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.linkChanges == 0 {
			return fmt.Errorf("OnLinkChange not called")
		}
		return nil
	})
	if got := fmt.Sprint(h.l.Placeable(reqs)); got != "[true false false true]" {
		t.Fatalf("Placeable after the route went = %s, want [true false false true]", got)
	}
	// A link without carrier is no place to answer.
	down := eth1
	down.Up = false
	h.setInterfaces(eth0, down)
	h.links <- struct{}{}
	eventually(t, func() error {
		if got := fmt.Sprint(h.l.Placeable(reqs)); got != "[false false false false]" {
			return fmt.Errorf("Placeable with eth1 down = %s", got)
		}
		return nil
	})
}
