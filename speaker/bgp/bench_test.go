package bgp

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
)

// The benchmarks time what a user sees at the router. Run them with
//
//	go test ./speaker/bgp -run '^$' -bench . -benchtime 1x
//
// Each repeats its measurement and reports the median (and the worst) as
// custom metrics; b.N does not apply. Times at FRR's kernel come from
// rtnetlink events in FRR's namespace (routeWatcher), not from polling.

func median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// waitUntil polls cond every millisecond up to timeout.
func waitUntil(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkPathAddToFRR: Set with one more path -> the route in FRR's
// kernel, over an established eBGP session; 25 adds.
func BenchmarkPathAddToFRR(b *testing.B) {
	l := newLab(b)
	frr := l.startFRR(b, frrNeighbor(nodeV4, nodeASN))
	w := watchRoutes(b, l.frr)
	sp := startSpeaker(b, l.reg, l.node, "speaker")
	d := Desired{RouterID: routerID, Peers: []Peer{nodePeer("tor", frrV4)}, Paths: map[string][]Path{}}
	sp.set(b, d)
	waitEstablished(l.ctx, b, frr, nodeV4)
	var lat []time.Duration
	for i := range 25 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i)}), 32)
		d.Paths["tor"] = append(d.Paths["tor"], Path{Prefix: p})
		start := time.Now()
		sp.set(b, d)
		waitUntil(b, 5*time.Second, "route in FRR's kernel", func() bool { _, ok := w.addedAt(p); return ok })
		at, _ := w.addedAt(p)
		lat = append(lat, at.Sub(start))
	}
	b.ReportMetric(ms(median(lat)), "ms-median")
	b.ReportMetric(ms(slices.Max(lat)), "ms-max")
}

// BenchmarkSIGTERMToWithdrawalAtFRR: SIGTERM to the speaker process -> its
// route removed from FRR's kernel; 5 speaker processes in turn.
func BenchmarkSIGTERMToWithdrawalAtFRR(b *testing.B) {
	l := newLab(b)
	frr := l.startFRR(b, frrNeighbor(nodeV4, nodeASN))
	w := watchRoutes(b, l.frr)
	var lat []time.Duration
	for i := range 5 {
		sp := startSpeaker(b, l.reg, l.node, fmt.Sprintf("speaker%d", i))
		sp.set(b, Desired{RouterID: routerID, Peers: []Peer{nodePeer("tor", frrV4)}, Paths: map[string][]Path{"tor": {{Prefix: vip4}}}})
		waitEstablished(l.ctx, b, frr, nodeV4)
		waitUntil(b, 10*time.Second, "route in FRR's kernel", func() bool { _, ok := w.addedAt(vip4); return ok })
		start := time.Now()
		if err := sp.proc.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		waitUntil(b, 5*time.Second, "route gone from FRR's kernel", func() bool { _, ok := w.removedAt(vip4); return ok })
		at, _ := w.removedAt(vip4)
		lat = append(lat, at.Sub(start))
		<-sp.proc.Done()
	}
	b.ReportMetric(ms(median(lat)), "ms-median")
	b.ReportMetric(ms(slices.Max(lat)), "ms-max")
}

// BenchmarkBFDHungSpeaker: SIGSTOP of the speaker -> route removed from
// FRR's kernel by BFD at 100 ms x 3 (hold timer 30 s); 3 runs.
func BenchmarkBFDHungSpeaker(b *testing.B) {
	l := newLab(b)
	frr := l.startFRR(b, frrNeighbor(nodeV4, nodeASN, func(o *routers.SessionOptions) {
		o.BFDProfile, o.Keepalive, o.Hold = "fast", 10*time.Second, 30*time.Second
	}))
	w := watchRoutes(b, l.frr)
	var lat []time.Duration
	for i := range 3 {
		sp := startSpeaker(b, l.reg, l.node, fmt.Sprintf("speaker%d", i))
		p := nodePeer("tor", frrV4)
		p.HoldTime, p.KeepaliveTime = 30*time.Second, 10*time.Second
		p.BFD = &BFD{ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3}
		sp.set(b, Desired{RouterID: routerID, Peers: []Peer{p}, Paths: map[string][]Path{"tor": {{Prefix: vip4}}}})
		waitUntil(b, 20*time.Second, "BFD up and route in FRR's kernel", func() bool {
			_, ok := w.addedAt(vip4)
			peers, err := frr.BFDPeers(l.ctx)
			return ok && err == nil && len(peers) == 1 && peers[0].Status == "up"
		})
		start := time.Now()
		if err := sp.proc.Signal(syscall.SIGSTOP); err != nil {
			b.Fatal(err)
		}
		waitUntil(b, 10*time.Second, "route gone from FRR's kernel", func() bool { _, ok := w.removedAt(vip4); return ok })
		at, _ := w.removedAt(vip4)
		lat = append(lat, at.Sub(start))
		_ = sp.proc.Kill()
		waitUntil(b, 10*time.Second, "BFD session gone", func() bool {
			peers, err := frr.BFDPeers(l.ctx)
			return err == nil && (len(peers) == 0 || peers[0].Status != "up")
		})
	}
	b.ReportMetric(ms(median(lat)), "ms-median")
	b.ReportMetric(ms(slices.Max(lat)), "ms-max")
}

// manyPaths returns n /32 paths from 10.200.0.0/18 (lab-internal space).
func manyPaths(n int, community uint32) []Path { //nolint:unparam // each benchmark names its size
	paths := make([]Path, n)
	for i := range paths {
		a := netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)})
		paths[i] = Path{Prefix: netip.PrefixFrom(a, 32), Communities: []uint32{community}}
	}
	return paths
}

var manyRange = pfx("10.200.0.0/18")

// Benchmark10kPrefixes: 10,000 /32s to one peer -> all in FRR's BGP table
// and kernel, and the speaker's RSS; the same 10,000 with other
// communities to a second peer; one path's community changed among them;
// then SIGTERM -> all 10,000 gone from FRR's kernel. 3 runs, medians.
func Benchmark10kPrefixes(b *testing.B) {
	const n = 10000
	var toBGP, toFIB, second, oneChange, sigterm []time.Duration
	var rssIdle, rss1, rss2, heap1, heap2 []int // KiB
	for run := range 3 {
		l := newLab(b)
		frr := l.startFRR(b, frrNeighbor(nodeV4, nodeASN), frrNeighbor(nodeV6, nodeASN))
		w := watchRoutes(b, l.frr)
		sp := startSpeaker(b, l.reg, l.node, fmt.Sprintf("speaker%d", run))
		d := Desired{RouterID: routerID, Peers: []Peer{nodePeer("a", frrV4), nodePeer("b", frrV6)}, Paths: map[string][]Path{}}
		sp.set(b, d)
		waitEstablished(l.ctx, b, frr, nodeV4, nodeV6)
		rssIdle = append(rssIdle, sp.rssKiB())

		accepted := func(peer netip.Addr) int {
			nb, err := frr.BGPNeighbor(l.ctx, peer)
			if err != nil {
				return -1
			}
			return nb.Accepted("ipv4Unicast")
		}
		d.Paths["a"] = manyPaths(n, Community(64513, 1))
		start := time.Now()
		sp.set(b, d)
		waitUntil(b, 60*time.Second, "10k paths in FRR's BGP table", func() bool {
			time.Sleep(20 * time.Millisecond)
			return accepted(nodeV4) == n
		})
		toBGP = append(toBGP, time.Since(start))
		waitUntil(b, 60*time.Second, "10k routes in FRR's kernel", func() bool {
			c, _, lost := w.countAdded(manyRange)
			return c == n || lost
		})
		if c, last, lost := w.countAdded(manyRange); !lost && c == n {
			toFIB = append(toFIB, last.Sub(start))
		}
		rss1 = append(rss1, sp.rssKiB())
		heap1 = append(heap1, sp.liveHeapKiB())

		d.Paths["b"] = manyPaths(n, Community(64513, 2))
		start = time.Now()
		sp.set(b, d)
		waitUntil(b, 60*time.Second, "second peer's 10k paths in FRR's BGP table", func() bool {
			time.Sleep(20 * time.Millisecond)
			return accepted(nodeV6) == n
		})
		second = append(second, time.Since(start))
		rss2 = append(rss2, sp.rssKiB())
		heap2 = append(heap2, sp.liveHeapKiB())

		changed := d.Paths["a"][n/2].Prefix
		d.Paths["a"] = slices.Clone(d.Paths["a"])
		d.Paths["a"][n/2] = Path{Prefix: changed, Communities: []uint32{Community(64513, 3)}}
		start = time.Now()
		sp.set(b, d)
		waitUntil(b, 10*time.Second, "changed community at FRR", func() bool {
			p, err := frrPathFrom(l.ctx, frr, changed, nodeV4)
			return err == nil && slices.Equal(p.Communities, []string{"64513:3"})
		})
		oneChange = append(oneChange, time.Since(start))

		start = time.Now()
		if err := sp.proc.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		waitUntil(b, 30*time.Second, "10k routes gone from FRR's kernel", func() bool {
			c, _, _ := w.countAdded(manyRange)
			return c == 0
		})
		sigterm = append(sigterm, time.Since(start))
		<-sp.proc.Done()
	}
	b.ReportMetric(ms(median(toBGP)), "ms-10k-to-BGP-table")
	if len(toFIB) > 0 {
		b.ReportMetric(ms(median(toFIB)), "ms-10k-to-kernel")
	}
	b.ReportMetric(ms(median(second)), "ms-10k-2nd-peer")
	b.ReportMetric(ms(median(oneChange)), "ms-1-change-in-10k")
	b.ReportMetric(ms(median(sigterm)), "ms-SIGTERM-10k-gone")
	b.ReportMetric(float64(median(rssIdle))/1024, "MiB-RSS-idle")
	b.ReportMetric(float64(median(rss1))/1024, "MiB-RSS-10k")
	b.ReportMetric(float64(median(rss2))/1024, "MiB-RSS-2x10k")
	b.ReportMetric(float64(median(heap1))/1024, "MiB-live-heap-10k")
	b.ReportMetric(float64(median(heap2))/1024, "MiB-live-heap-2x10k")
}

// BenchmarkDiff10k: the pure cost of a Set with 10,000 paths for a peer
// when one path changed (normalize and compare).
func BenchmarkDiff10k(b *testing.B) {
	old := normalizePaths(manyPaths(10000, 1))
	next := manyPaths(10000, 1)
	next[5000].Communities = []uint32{2}
	for b.Loop() {
		if d := diffPaths(old, normalizePaths(next)); len(d.announce) != 1 {
			b.Fatal(d)
		}
	}
}
