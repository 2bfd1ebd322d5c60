package reconcile

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/speaker/advertise"
)

// bigEngine is the engine of node-003 in a cluster of n nodes (zones a
// and b alternate) with ips Layer 2 addresses of pool lan, one Service
// each; preferred: the addresses are announced by an advertisement that
// prefers zone b (selectionEngineModel), else by one without preferences.
func bigEngine(tb testing.TB, n, ips int, preferred bool) (*Engine, []string) {
	tb.Helper()
	var names []string
	var ns []advertise.Node
	for i := range n {
		name := fmt.Sprintf("node-%03d", i)
		names = append(names, name)
		ns = append(ns, advertise.Node{Name: name, Labels: map[string]string{"zone": string(rune('a' + i%2))}})
	}
	e := NewEngine("node-003")
	e.SetNodes(ns)
	base := netip.MustParseAddr("2001:db8:100::")
	if preferred {
		e.SetModel(selectionEngineModel(tb))
		base = netip.MustParseAddr("198.51.100.1")
	} else {
		e.SetModel(testModel(tb)) // pool lan: 2001:db8:100::/64 on every node
	}
	ip := base
	for i := range ips {
		s := svc(fmt.Sprintf("ns/s%d", i), false, nil, ip.String())
		if preferred {
			s = goldSvc(fmt.Sprintf("ns/s%d", i), true, ip.String())
		}
		e.UpsertService(s)
		ip = ip.Next()
	}
	return e, names
}

// Re-electing only what a membership change can move gives the same owners
// and the same announcements as re-electing everything, over random
// sequences of deaths and joins, trusted or not.
func TestIncrementalElectionMatchesFullElection(t *testing.T) {
	for _, preferred := range []bool{false, true} {
		t.Run(fmt.Sprintf("preferred=%v", preferred), func(t *testing.T) {
			ips := 200
			if preferred {
				ips = 250 // the /24 of selectionEngineModel
			}
			inc, names := bigEngine(t, 12, ips, preferred)
			full, _ := bigEngine(t, 12, ips, preferred)
			rng := rand.New(rand.NewPCG(1, uint64(len(names))))
			live := slices.Clone(names)
			now := time.Unix(0, 0)
			takeovers := false // what the loop last told the incremental engine
			for step := range 300 {
				switch k := rng.IntN(3); {
				case k == 0 && len(live) > 1:
					for range 1 + rng.IntN(3) {
						if i := rng.IntN(len(live)); live[i] != "node-003" {
							live = slices.Delete(live, i, i+1)
						}
					}
				default:
					for range 1 + rng.IntN(3) {
						if n := names[rng.IntN(len(names))]; !slices.Contains(live, n) {
							live = append(live, n)
						}
					}
				}
				trusted := rng.IntN(4) != 0
				now = now.Add(time.Second)
				inc.SetLive(live)
				if trusted && !takeovers {
					inc.MarkWaitingDirty() // as converge does
				}
				takeovers = trusted
				full.SetLive(live)
				full.MarkAllDirty()
				inc.Elect(now, trusted, nil)
				full.Elect(now, trusted, nil)
				if a, b := inc.Announced(), full.Announced(); !slices.Equal(a, b) {
					t.Fatalf("step %d (live %v, trusted %v): incremental announces %v, full %v", step, live, trusted, a, b)
				}
				for ip, st := range full.ips {
					if o := inc.ips[ip].owner; o != st.owner {
						t.Fatalf("step %d: %s owned by %s incrementally, %s in full", step, ip, o, st.owner)
					}
				}
			}
		})
	}
}

// BenchmarkMembershipChange is the speaker's work for one membership change
// with 10,000 Layer 2 addresses eligible on 500 live nodes (SetLive and
// Elect, what converge does): one node dies, one joins, ten die at once; and
// an EndpointSlice change of one Local Service. "full" re-elects every
// address, as the speaker did before: the baseline of the same run.
//
//	go test ./speaker/reconcile -run '^$' -bench MembershipChange -benchtime 20x -count 5
func BenchmarkMembershipChange(b *testing.B) {
	const nodes, ips = 500, 10000
	e, names := bigEngine(b, nodes, ips, false)
	e.SetLive(names)
	e.Elect(time.Unix(0, 0), true, nil)
	without := func(gone ...string) []string {
		return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(gone, n) })
	}
	// change measures going from names to after; the way back is not timed.
	change := func(b *testing.B, after []string, full bool) {
		for b.Loop() {
			e.SetLive(after)
			if full {
				e.MarkAllDirty()
			}
			e.Elect(time.Unix(0, 0), true, nil)
			b.StopTimer()
			e.SetLive(names)
			e.Elect(time.Unix(0, 0), true, nil)
			b.StartTimer()
		}
	}
	ten := names[100:110]
	b.Run("one-dies", func(b *testing.B) { change(b, without(names[42]), false) })
	b.Run("one-dies/full", func(b *testing.B) { change(b, without(names[42]), true) })
	b.Run("ten-die", func(b *testing.B) { change(b, without(ten...), false) })
	b.Run("one-joins", func(b *testing.B) {
		// the way back (timed here) is node 42 joining
		e.SetLive(without(names[42]))
		e.Elect(time.Unix(0, 0), true, nil)
		for b.Loop() {
			e.SetLive(names)
			e.Elect(time.Unix(0, 0), true, nil)
			b.StopTimer()
			e.SetLive(without(names[42]))
			e.Elect(time.Unix(0, 0), true, nil)
			b.StartTimer()
		}
		e.SetLive(names)
		e.Elect(time.Unix(0, 0), true, nil)
	})
	b.Run("endpoints-of-one-local-service", func(b *testing.B) {
		ip := netip.MustParseAddr("2001:db8:100::")
		on := []string{names[3]}
		for i := 0; b.Loop(); i++ {
			e.UpsertService(svc("ns/s0", true, on[:i%2], ip.String()))
			e.Elect(time.Unix(0, 0), true, nil)
		}
	})
}

// A membership change costs what moves: a small version of
// BenchmarkMembershipChange with a loose bound (one death re-elected at
// least 5 times faster than everything; about 100 times here).
func TestMembershipChangeCostsWhatMoves(t *testing.T) {
	e, names := bigEngine(t, 100, 2000, false)
	e.SetLive(names)
	e.Elect(time.Unix(0, 0), true, nil)
	without := slices.Delete(slices.Clone(names), 42, 43)
	timeIt := func(full bool) time.Duration {
		var ds []time.Duration
		for range 5 {
			start := time.Now()
			e.SetLive(without)
			if full {
				e.MarkAllDirty()
			}
			e.Elect(time.Unix(0, 0), true, nil)
			ds = append(ds, time.Since(start))
			e.SetLive(names)
			e.Elect(time.Unix(0, 0), true, nil)
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	inc, full := timeIt(false), timeIt(true)
	if inc*5 > full {
		t.Errorf("one death: %v re-electing what it owned, %v re-electing everything: want at least 5 times less", inc, full)
	}
	t.Logf("one death of 100 nodes, 2,000 addresses: %v, full re-election %v", inc, full)
}

// The engine's memory does not grow with the nodes: the sorted node lists
// of 2,000 addresses are shared, not copied per Service and address (they
// were: 359 MiB at 500 nodes and 10,000 addresses, 24 MiB at 3 nodes).
// The figures in docs/benchmarks.md:
//
//	HERALD_MEASURE_ADDRESSES=10000 go test ./speaker/reconcile -run TestEngineMemoryDoesNotGrowWithNodes -v
func TestEngineMemoryDoesNotGrowWithNodes(t *testing.T) {
	addresses := testkit.EnvInt(t, "HERALD_MEASURE_ADDRESSES", 2000)
	heap := func(nodes int) uint64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e, names := bigEngine(t, nodes, addresses, false)
		e.SetLive(names)
		e.Elect(time.Unix(0, 0), true, nil)
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(e)
		return after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	}
	few, many := heap(3), heap(500)
	t.Logf("engine with %d addresses: %.1f MiB with 3 nodes, %.1f MiB with 500", addresses, float64(few)/(1<<20), float64(many)/(1<<20))
	if many > 2*few {
		t.Errorf("the engine keeps %d bytes with 500 nodes, %d with 3: want at most twice as much", many, few)
	}
}
