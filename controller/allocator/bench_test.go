package allocator

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// benchPool is 10.0.0.0/16; benchmarks never send anything anywhere.
func benchPool(avoidBuggy bool) Pool {
	return Pool{Name: "p", Ranges: []Range{cidr("10.0.0.0/16")}, AutoAssign: true, AvoidBuggyIPs: avoidBuggy}
}

// fillRandom makes n Services hold distinct random addresses of p's first
// span, so that the free space is fragmented as after a long life.
func fillRandom(tb testing.TB, a *Allocator, p Pool, n int) {
	tb.Helper()
	s := a.pools[p.Name].spans[0]
	r := rand.New(rand.NewPCG(42, 42))
	taken := map[uint64]bool{}
	for len(taken) < n {
		off := r.Uint64() // a /64: anywhere
		if s.size.hi == 0 {
			off = r.Uint64N(s.size.lo)
		}
		if taken[off] {
			continue
		}
		taken[off] = true
		ip := s.addrAt(fromUint64(off))
		req := Request{Service: fmt.Sprintf("fill/%d", len(taken)), Families: []Family{familyOf(ip)}}
		if err := a.Assign(req, []netip.Addr{ip}); err != nil {
			tb.Fatal(err)
		}
	}
}

// benchAllocate measures one Allocate plus the Release that keeps the fill
// level, in a pool p filled by fill.
func benchAllocate(b *testing.B, p Pool, fill func(*Allocator)) {
	a := New()
	a.SetPools([]Pool{p})
	fill(a)
	req := Request{Service: "bench/svc", Families: []Family{a.pools[p.Name].spans[0].family}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Allocate(req); err != nil {
			b.Fatal(err)
		}
		a.Release(req.Service)
	}
}

func BenchmarkAllocate(b *testing.B) {
	const all, usable = 65536, 256 * 254
	scattered := func(p Pool, n int) func(*Allocator) {
		return func(a *Allocator) { fillRandom(b, a, p, n) }
	}
	v4p, buggyp := benchPool(false), benchPool(true)
	v6p := Pool{Name: "p", Ranges: []Range{cidr("2001:db8::/64")}, AutoAssign: true}
	b.Run("v4-16-1pct", func(b *testing.B) { benchAllocate(b, v4p, scattered(v4p, all/100)) })
	b.Run("v4-16-99pct", func(b *testing.B) { benchAllocate(b, v4p, scattered(v4p, all*99/100)) })
	b.Run("v4-16-buggy-1pct", func(b *testing.B) { benchAllocate(b, buggyp, scattered(buggyp, usable/100)) })
	b.Run("v4-16-buggy-99pct", func(b *testing.B) { benchAllocate(b, buggyp, scattered(buggyp, usable*99/100)) })
	b.Run("v6-64-100k-scattered", func(b *testing.B) { benchAllocate(b, v6p, scattered(v6p, 100_000)) })
	b.Run("v6-64-100k-packed", func(b *testing.B) {
		benchAllocate(b, v6p, func(a *Allocator) {
			for i := range 100_000 {
				if _, err := a.Allocate(Request{Service: fmt.Sprintf("fill/%d", i), Families: v6}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkFill16 fills an empty 10.0.0.0/16 (65,536 allocations per op).
func BenchmarkFill16(b *testing.B) {
	reqs := make([]Request, 65536)
	for i := range reqs {
		reqs[i] = Request{Service: fmt.Sprintf("default/svc-%d", i), Families: v4}
	}
	b.ReportAllocs()
	for b.Loop() {
		a := New()
		a.SetPools([]Pool{benchPool(false)})
		for _, req := range reqs {
			if _, err := a.Allocate(req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/65536, "ns/alloc")
}

// TestBuggyAddressesDoNotSplitRuns: filling an avoidBuggyIPs /16 leaves one
// run of used addresses, not one per /24, so the next allocation does not
// hop over every /24.
func TestBuggyAddressesDoNotSplitRuns(t *testing.T) {
	a := New()
	a.SetPools([]Pool{benchPool(true)})
	for i := range 256*254 - 1 {
		if _, err := a.Allocate(Request{Service: fmt.Sprintf("default/s%d", i), Families: v4}); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	s := a.pools["p"].spans[0]
	runs := 0
	s.used.runs(func(_, _ u128) bool { runs++; return true })
	if runs != 1 {
		t.Fatalf("%d runs of used addresses, want 1", runs)
	}
	got, err := a.Allocate(Request{Service: "default/last", Families: v4})
	if err != nil || got.IPs[0] != addr("10.0.255.254") {
		t.Fatalf("last allocation = %v, %v; want 10.0.255.254", got, err)
	}
	if _, err := a.Allocate(Request{Service: "default/more", Families: v4}); err == nil {
		t.Fatal("a full pool handed out another address")
	}
}
