package reconcile

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/speaker/takeover"
)

// simNode is one speaker as converge drives it: the takeover guard, the
// engine, and what it has heard from the others.
type simNode struct {
	name      string
	guard     *takeover.Guard
	engine    *Engine
	excluded  bool
	takeovers bool
	heard     map[string]takeover.Published // the others' published state, as delivered
	heardSeq  map[string]int                // and its version: memberlist never goes back to an older one
	inbox     []takeover.Message            // releases delivered, not yet observed
	seq       int                           // version of what this node publishes
}

// simDelivery is a message in flight: published state or a release.
type simDelivery struct {
	from, to string
	meta     *takeover.Published
	seq      int
	release  *takeover.Message
	due      time.Time
}

// sim is three speakers whose messages and published states arrive in an
// order a seeded random source chooses; it checks after every step that
// no address has two owners.
type sim struct {
	t      *testing.T
	now    time.Time
	nodes  map[string]*simNode
	flight []simDelivery
	rnd    *rand.Rand
	ips    []netip.Addr
	// checking: the invariant is checked (not while the cluster forms,
	// with every speaker starting in the same instant).
	checking bool
	trace    bool
}

func newSim(t *testing.T, seed uint64, ips []netip.Addr) *sim {
	s := &sim{t: t, now: t0, nodes: map[string]*simNode{}, rnd: rand.New(rand.NewPCG(seed, 7)), ips: ips}
	var svcIPs []string
	for _, ip := range ips {
		svcIPs = append(svcIPs, ip.String())
	}
	for _, n := range allNode {
		e := NewEngine(n)
		e.SetNodes(nodes)
		e.SetModel(testModel(t))
		e.UpsertService(svc("d/s", false, nil, svcIPs...))
		s.nodes[n] = &simNode{name: n, guard: takeover.New(takeover.Config{Self: n}), engine: e, heard: map[string]takeover.Published{}, heardSeq: map[string]int{}}
	}
	return s
}

// step runs one node's converge: observe, elect, then publish and send
// what it yields (after the announcer changed, as converge does).
func (s *sim) step(n *simNode) {
	var others = map[string]takeover.Published{}
	for k, v := range n.heard {
		others[k] = v
	}
	d := n.guard.Observe(takeover.Input{Now: s.now, Alive: allNode, Present: allNode, Published: others, Releases: n.inbox, Excluded: n.excluded})
	n.inbox = nil
	n.engine.SetLive(d.Live)
	if d.TakeOver != n.takeovers {
		n.takeovers = d.TakeOver
		n.engine.MarkAllDirty()
	}
	n.engine.MarkDirty(d.Given)
	changes, _ := n.engine.Elect(s.now, d.TakeOver, d.Given)
	if s.trace {
		for _, c := range changes {
			fmt.Printf("%v %s start %v %s to %s (%s) live %v takeover %v given %v\n", s.now.Sub(t0), n.name, c.Start, c.IP, c.To, c.Why, d.Live, d.TakeOver, d.Given)
		}
	}
	var stopped []netip.Addr
	yield := map[string][]netip.Addr{}
	for _, c := range changes {
		if !c.Start {
			stopped = append(stopped, c.IP)
			if c.To != "" && c.To != n.name {
				yield[c.To] = append(yield[c.To], c.IP)
			}
		}
	}
	n.guard.Stopped(stopped)
	s.check(n.name)
	pub := takeover.Published{Quorum: d.Quorum.OK, Settling: d.Settling, Excluded: d.Excluded}
	n.seq++
	for _, o := range allNode {
		if o != n.name {
			s.flight = append(s.flight, simDelivery{from: n.name, to: o, meta: &pub, seq: n.seq, due: s.due()})
		}
	}
	for _, g := range d.Greet {
		if _, ok := yield[g]; !ok {
			yield[g] = nil
		}
	}
	for to, ips := range yield {
		s.flight = append(s.flight, simDelivery{from: n.name, to: to, release: &takeover.Message{From: n.name, IPs: ips}, due: s.due()})
	}
}

// check fails the test if an address has two owners.
func (s *sim) check(after string) {
	s.t.Helper()
	if !s.checking {
		return
	}
	for _, ip := range s.ips {
		var owners []string
		for _, n := range allNode {
			if s.nodes[n].engine.Announces(ip) {
				owners = append(owners, n)
			}
		}
		if len(owners) > 1 {
			s.t.Fatalf("at %v, after %s's step: %s announced by %v", s.now.Sub(t0), after, ip, owners)
		}
	}
}

// run delivers what is in flight in random order (each delivery followed
// by the receiver's step), every node stepping at least every 100 ms,
// for d.
func (s *sim) run(d time.Duration) {
	end := s.now.Add(d)
	nextTick := s.now
	for s.now.Before(end) {
		s.now = s.now.Add(5 * time.Millisecond)
		if !s.now.Before(nextTick) {
			for _, n := range allNode {
				s.step(s.nodes[n])
			}
			nextTick = s.now.Add(100 * time.Millisecond)
		}
		// deliver what is due, in random order
		s.rnd.Shuffle(len(s.flight), func(i, j int) { s.flight[i], s.flight[j] = s.flight[j], s.flight[i] })
		for i := 0; i < len(s.flight); {
			m := s.flight[i]
			if m.due.After(s.now) {
				i++
				continue
			}
			s.flight = slices.Delete(s.flight, i, i+1)
			to := s.nodes[m.to]
			if s.trace && (m.release != nil && len(m.release.IPs) > 0 || m.meta != nil) {
				fmt.Printf("%v deliver %s->%s seq %d meta %+v release %+v\n", s.now.Sub(t0), m.from, m.to, m.seq, m.meta, m.release)
			}
			switch {
			case m.meta != nil && m.seq > to.heardSeq[m.from]:
				to.heard[m.from], to.heardSeq[m.from] = *m.meta, m.seq
			case m.meta != nil:
				continue // older than what it has
			default:
				to.inbox = append(to.inbox, *m.release)
			}
			s.step(to)
		}
	}
}

// due is when a message sent now arrives: within 300 ms, in any order
// (gossip and memberlist's TCP messages take milliseconds to a few
// hundred under load).
func (s *sim) due() time.Time {
	return s.now.Add(time.Duration(1+s.rnd.IntN(300)) * time.Millisecond)
}

// owners is each address's one owner ("" if none or several).
func (s *sim) owners() map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, ip := range s.ips {
		for _, n := range allNode {
			if s.nodes[n].engine.Announces(ip) {
				out[ip] = n
			}
		}
	}
	return out
}

// Draining a node and bringing it back, with the messages and published
// states arriving in every order a seeded source picks: never two owners
// of an address at any step; once things settle, each address has one
// owner, not the drained node while it is drained, and its own again
// after.
func TestDrainNeverTwoOwners(t *testing.T) {
	forSeeds(t, func(t *testing.T, s *sim, drained string, before map[netip.Addr]string) {
		s.nodes[drained].excluded = true
		s.run(3 * time.Second)
		during := s.owners()
		for _, ip := range s.ips {
			if o := during[ip]; o == "" || o == drained {
				t.Fatalf("during the drain %s is owned by %q", ip, o)
			}
			if before[ip] != drained && during[ip] != before[ip] {
				t.Fatalf("%s, not %s's, moved from %s to %s", ip, drained, before[ip], during[ip])
			}
		}
		s.nodes[drained].excluded = false
		s.run(5 * time.Second)
		if after := s.owners(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("after the drain owners %v, want %v as before", after, before)
		}
	})
}

// The drain annotation flapping faster than messages settle (set, removed,
// set, removed within a second or two): never two owners either, and the
// addresses end where they started.
func TestDrainFlappingNeverTwoOwners(t *testing.T) {
	forSeeds(t, func(t *testing.T, s *sim, drained string, before map[netip.Addr]string) {
		for i := range 6 {
			s.nodes[drained].excluded = i%2 == 0
			s.run(time.Duration(100+s.rnd.IntN(600)) * time.Millisecond)
		}
		s.nodes[drained].excluded = false
		s.run(6 * time.Second)
		if after := s.owners(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("after the flapping owners %v, want %v as before", after, before)
		}
	})
}

// forSeeds runs f for 60 seeds on three speakers announcing 12 addresses,
// once they have formed their cluster and every address has one owner;
// f drains a node of its choice (drained, varying with the seed).
func forSeeds(t *testing.T, f func(t *testing.T, s *sim, drained string, before map[netip.Addr]string)) {
	var ips []netip.Addr
	for i := 1; i <= 12; i++ {
		ips = append(ips, addr(fmt.Sprintf("198.51.100.%d", i)))
	}
	for seed := range uint64(60) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			s := newSim(t, seed, ips)
			s.run(5 * time.Second) // join, settle, grace
			s.checking = true
			s.run(time.Second)
			before := s.owners()
			if len(before) != len(ips) {
				t.Fatalf("before the drain, owners %v", before)
			}
			f(t, s, allNode[seed%3], before)
		})
	}
}
