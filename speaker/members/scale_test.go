package members_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/child"
	"github.com/heraldlb/herald/speaker/announce/lantest"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/prometheus/client_golang/prometheus"
)

// Membership at scale: TestScale runs N real members (members.New with the
// default timings, encryption on, peers set to every member's address as
// the speaker does) in one network namespace of their own, each on its own
// loopback address (every address of 127.0.0.0/8 is local there), spread
// over several processes ("groups" of up to 50 members). It measures:
//
//   - start: all groups started at once -> every member sees all N;
//   - steady: gossip packets and bytes per member per second (nftables
//     counters on the namespace's output hook, UDP and TCP apart: every
//     packet of the namespace goes through it once) and CPU per member
//     (utime+stime of the group processes / N), over an idle window;
//   - kills: rounds that shut down one, then ten random members without
//     leaving (Run's context ends: sockets closed, no leave message) and
//     time, for each victim, until every survivor's Alive no longer lists
//     it (read on each Changes, as the speaker does); then the victims
//     start again (same name and address) and the cluster re-forms;
//   - load: a separate busy process (2 spinning threads per CPU, started
//     and stopped by PID) saturates the machine's CPUs while nothing is
//     killed: suspicions raised and refuted, and false deaths (any member
//     leaving any survivor's view) over the window.
//
// Every member taken out of a view it should be in counts as a false
// death, in every phase. `make test` runs it small (30 members, loose
// bounds; 10 under the race detector); `make bench` runs 100, 300 and 500 members:
//
//	HERALD_BENCH_MEMBERS=100,300,500 HERALD_BENCH_RUNS=3 go test ./speaker/members -run '^TestScale$' -v -timeout 120m
//
// Knobs: HERALD_BENCH_MEMBERS (sizes, default 30), HERALD_BENCH_RUNS
// (runs per size, 1), HERALD_BENCH_ROUNDS (kill rounds of each kind, 2),
// HERALD_BENCH_STEADY (idle window, 10s), HERALD_BENCH_LOAD (saturated
// window, 5s; 0 skips it), HERALD_BENCH_GROUP (members per process, 50).
func TestScale(t *testing.T) {
	if err := netns.RequireRoot(); err != nil {
		t.Skip(err)
	}
	cfg := scaleConfig{
		rounds: testkit.EnvInt(t, "HERALD_BENCH_ROUNDS", 2),
		steady: envDuration(t, "HERALD_BENCH_STEADY", 10*time.Second),
		load:   envDuration(t, "HERALD_BENCH_LOAD", 5*time.Second),
		group:  testkit.EnvInt(t, "HERALD_BENCH_GROUP", 50),
	}
	runs := testkit.EnvInt(t, "HERALD_BENCH_RUNS", 1)
	for _, n := range envInts(t, "HERALD_BENCH_MEMBERS", []int{smallScale}) {
		var results []scaleResult
		if _, err := parseTimings(os.Getenv("HERALD_BENCH_TIMINGS")); err != nil {
			t.Fatal(err)
		}
		for run := 1; run <= runs; run++ {
			t.Run(fmt.Sprintf("members=%d/run=%d", n, run), func(t *testing.T) {
				r := scaleRun(t, n, cfg)
				results = append(results, r)
				t.Logf("MEASURE %s", r)
			})
		}
		if len(results) > 1 {
			t.Logf("MEASURE members=%d median of %d runs: %s", n, len(results), medianResult(results))
		}
	}
}

type scaleConfig struct {
	rounds       int
	steady, load time.Duration
	group        int
}

// The loose bounds of the small version (the targets are in the doc).
const (
	scaleConvergeBound = 60 * time.Second
	scaleDetectBound   = 15 * time.Second
)

func scaleName(i int) string { return fmt.Sprintf("n%03d", i) }

// scaleAddr is member i's address (i from 1): 127.1.0.2, 127.1.0.3, ...
func scaleAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i / 200), byte(i%200 + 1)})
}

// traffic is what crossed the namespace's output hook.
type traffic struct{ udpPackets, udpBytes, tcpPackets, tcpBytes float64 }

func (a traffic) minus(b traffic) traffic {
	return traffic{a.udpPackets - b.udpPackets, a.udpBytes - b.udpBytes, a.tcpPackets - b.tcpPackets, a.tcpBytes - b.tcpBytes}
}

// window is traffic, CPU and failure-detection counters over a period,
// per member and second.
type window struct {
	seconds                          float64
	udpPkts, udpBytes, tcpPkts, tcpB float64 // per member per second
	cpuMs                            float64 // CPU milliseconds per member per second
	suspicions, refutations          float64 // in the whole cluster, over the window
	falseDeaths                      int     // (observer, member) pairs
	falseDead                        []string
	// How busy the machine was: the share of all its CPUs in use, the
	// 1-minute load average at the end, and how long the members' threads
	// waited for a CPU per second they ran (run-queue delay).
	machineBusy, load1, waitPerRun float64
}

type scaleResult struct {
	n, groups        int
	start            time.Duration
	steady, load     window
	rssKB            float64   // resident memory per member
	killAll          []float64 // ms, per victim: until the last survivor dropped it
	killEach         []float64 // ms, per (survivor, victim)
	killFalse        int
	killOne, killTen []float64 // killAll split by round kind
	detectStragglers int       // survivors that never dropped a victim within the bound
	burnThreads      int
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

func (r scaleResult) String() string {
	return fmt.Sprintf("members=%d groups=%d start=%.1fs | steady %.0fs (machine %.0f%% busy, load %.1f, run-queue wait %.2f s per s run): udp %.1f pkt/s %.0f B/s, tcp %.1f pkt/s %.0f B/s, cpu %.2f ms/s, rss %.0f kB per member; suspicions=%v refutations=%v falseDeaths=%d | "+
		"kill: all survivors median %.0f ms p99 %.0f ms max %.0f ms (one: median %.0f ms; ten: median %.0f ms; %d victims), each survivor median %.0f ms p99 %.0f ms, falseDeaths=%d | "+
		"load %.0fs (%d busy threads; machine %.0f%% busy, load %.1f, run-queue wait %.2f s per s run): suspicions=%v refutations=%v falseDeaths=%d %v, udp %.1f pkt/s, cpu %.2f ms/s per member",
		r.n, r.groups, r.start.Seconds(),
		r.steady.seconds, 100*r.steady.machineBusy, r.steady.load1, r.steady.waitPerRun, r.steady.udpPkts, r.steady.udpBytes, r.steady.tcpPkts, r.steady.tcpB, r.steady.cpuMs, r.rssKB, r.steady.suspicions, r.steady.refutations, r.steady.falseDeaths,
		quantile(r.killAll, 0.5), quantile(r.killAll, 0.99), quantile(r.killAll, 1), quantile(r.killOne, 0.5), quantile(r.killTen, 0.5), len(r.killAll),
		quantile(r.killEach, 0.5), quantile(r.killEach, 0.99), r.killFalse,
		r.load.seconds, r.burnThreads, 100*r.load.machineBusy, r.load.load1, r.load.waitPerRun, r.load.suspicions, r.load.refutations, r.load.falseDeaths, r.load.falseDead, r.load.udpPkts, r.load.cpuMs)
}

// medianResult is the median of each figure over runs (kill times pooled).
func medianResult(rs []scaleResult) string {
	med := func(f func(scaleResult) float64) float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, f(r))
		}
		return quantile(v, 0.5)
	}
	var all, each []float64
	for _, r := range rs {
		all = append(all, r.killAll...)
		each = append(each, r.killEach...)
	}
	return fmt.Sprintf("start=%.1fs udp %.1f pkt/s %.0f B/s tcp %.0f B/s cpu %.2f ms/s rss %.0f kB per member | kill all survivors median %.0f ms p99 %.0f ms (%d victims), each median %.0f ms p99 %.0f ms | load suspicions=%v falseDeaths=%v",
		med(func(r scaleResult) float64 { return r.start.Seconds() }),
		med(func(r scaleResult) float64 { return r.steady.udpPkts }),
		med(func(r scaleResult) float64 { return r.steady.udpBytes }),
		med(func(r scaleResult) float64 { return r.steady.tcpB }),
		med(func(r scaleResult) float64 { return r.steady.cpuMs }),
		med(func(r scaleResult) float64 { return r.rssKB }),
		quantile(all, 0.5), quantile(all, 0.99), len(all), quantile(each, 0.5), quantile(each, 0.99),
		med(func(r scaleResult) float64 { return r.load.suspicions }),
		med(func(r scaleResult) float64 { return float64(r.load.falseDeaths) }))
}

// scaleCluster is the driver's view: the namespace and the group processes.
type scaleCluster struct {
	n      int
	reg    *netns.Registry
	ns     *netns.NS
	groups []*child.Process
	owner  map[string]*child.Process
}

func scaleRun(t *testing.T, n int, cfg scaleConfig) scaleResult {
	sw := lantest.NewSwitch(t) // the registry, its cleanup and leftover check
	c := &scaleCluster{n: n, reg: sw.Reg, ns: sw.AddHost(t, "ml"), owner: map[string]*child.Process{}}
	ctx := context.Background()
	c.ns.MustRun(ctx, "nft", "add table inet hbench")
	c.ns.MustRun(ctx, "nft", "add chain inet hbench out { type filter hook output priority 0 ; policy accept ; }")
	c.ns.MustRun(ctx, "nft", "add rule inet hbench out meta l4proto udp counter")
	c.ns.MustRun(ctx, "nft", "add rule inet hbench out meta l4proto tcp counter")
	// The members' processes share one CPU cgroup, and the busy process
	// has its own (as two pods on a node would); HERALD_BENCH_LOAD_SHARED=1
	// puts the busy process in the members' cgroup instead (a speaker
	// starved by its own pod: a CPU limit, say).
	mlCgroup, err := c.reg.AddCgroup("ml")
	if err != nil {
		t.Fatal(err)
	}
	burnCgroup := mlCgroup
	if os.Getenv("HERALD_BENCH_LOAD_SHARED") != "1" {
		if burnCgroup, err = c.reg.AddCgroup("burn"); err != nil {
			t.Fatal(err)
		}
	}
	r := scaleResult{n: n}

	// Groups of up to cfg.group members, at least two processes.
	size := min(cfg.group, (n+1)/2)
	key := strings.Repeat("42", 32)
	begin := time.Now()
	for first := 1; first <= n; first += size {
		count := min(size, n-first+1)
		h := child.Start(t, c.reg, c.ns, "group",
			"HERALD_SCALE_TOTAL="+strconv.Itoa(n), "HERALD_SCALE_FIRST="+strconv.Itoa(first),
			"HERALD_SCALE_COUNT="+strconv.Itoa(count), "HERALD_MEMBER_KEY="+key)
		if err := mlCgroup.Join(h.Proc.PID, "", "cpu"); err != nil {
			t.Fatal(err)
		}
		c.groups = append(c.groups, h)
		for i := first; i < first+count; i++ {
			c.owner[scaleName(i)] = h
		}
	}
	r.groups = len(c.groups)
	c.waitFull(t, scaleConvergeBound)
	r.start = time.Since(begin)
	t.Logf("%d members in %d processes: every member sees all after %v", n, r.groups, r.start.Round(time.Millisecond))

	// Let the start's gossip drain, then an idle window.
	time.Sleep(min(cfg.steady, 10*time.Second))
	r.steady = c.measure(t, cfg.steady, nil)
	r.rssKB = c.rssKB(t) / float64(n)
	c.checkNoFalseDeaths(t, "idle", r.steady.falseDeaths, r.steady.falseDead, r.steady.waitPerRun)

	// Kill rounds: one member, then ten, each round on fresh random victims.
	for round := 1; round <= cfg.rounds; round++ {
		for _, k := range []int{1, 10} {
			all, each := c.killRound(t, min(k, n/3), &r)
			r.killAll = append(r.killAll, all...)
			r.killEach = append(r.killEach, each...)
			if k == 1 {
				r.killOne = append(r.killOne, all...)
			} else {
				r.killTen = append(r.killTen, all...)
			}
		}
	}

	if cfg.load > 0 {
		r.burnThreads = 2 * runtime.NumCPU()
		burn := child.Start(t, c.reg, c.ns, "burn", "HERALD_BURN_THREADS="+strconv.Itoa(r.burnThreads))
		if err := burnCgroup.Join(burn.Proc.PID, "", "cpu"); err != nil {
			t.Fatal(err)
		}
		r.load = c.measure(t, cfg.load, burn)
		// Whatever a false death did is repaired once the load ends.
		c.waitFull(t, scaleConvergeBound)
	}
	return r
}

// busyLimit is the run-queue wait per second run above which the machine
// is too busy (other work on it, not the members) to hold the members to
// zero false deaths: the test then only reports them.
const busyLimit = 1.0

func (c *scaleCluster) checkNoFalseDeaths(t *testing.T, phase string, deaths int, who []string, waitPerRun float64) {
	t.Helper()
	switch {
	case deaths == 0:
	case waitPerRun > busyLimit:
		t.Logf("%s: %d false deaths (%v), not held against the members: they waited %.1f s for a CPU per s they ran (machine too busy)", phase, deaths, who, waitPerRun)
	default:
		t.Errorf("%s: %d false deaths (%v) with members waiting %.2f s for a CPU per s they ran", phase, deaths, who, waitPerRun)
	}
}

// call sends cmd to every group at once and returns their answers.
func (c *scaleCluster) call(t *testing.T, cmd func(g *child.Process) string) []string {
	out := make([]string, len(c.groups))
	var wg sync.WaitGroup
	for i, g := range c.groups {
		if s := cmd(g); s != "" {
			wg.Go(func() { out[i] = g.Call(t, s) })
		}
	}
	wg.Wait()
	return out
}

func (c *scaleCluster) all(t *testing.T, cmd string) []string {
	return c.call(t, func(*child.Process) string { return cmd })
}

// waitFull waits until every running member sees all n.
func (c *scaleCluster) waitFull(t *testing.T, timeout time.Duration) {
	t.Helper()
	testkit.For(t, timeout, "every member sees every other", func() error {
		counts := c.all(t, "count")
		for i, a := range counts {
			var lo, hi int
			if _, err := fmt.Sscanf(a, "%d %d", &lo, &hi); err != nil || lo != c.n || hi != c.n {
				return fmt.Errorf("group %d: members see between %s of %d (all groups: %q)", i, a, c.n, counts)
			}
		}
		return nil
	})
}

var counterRe = regexp.MustCompile(`counter packets (\d+) bytes (\d+)`)

func (c *scaleCluster) traffic(t *testing.T) traffic {
	out := c.ns.MustRun(context.Background(), "nft", "list chain inet hbench out")
	m := counterRe.FindAllStringSubmatch(out, -1)
	if len(m) != 2 {
		t.Fatalf("nft counters: %s", out)
	}
	f := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
	return traffic{f(m[0][1]), f(m[0][2]), f(m[1][1]), f(m[1][2])}
}

// machineCPU returns the busy and total jiffies of all CPUs (/proc/stat).
func machineCPU(t *testing.T) (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

func load1(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return v
}

// sched sums, over the group processes' threads, the time they ran and
// the time they waited on a run queue (/proc/pid/task/*/schedstat, ns).
func (c *scaleCluster) sched() (run, wait float64) {
	for _, g := range c.groups {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", g.Proc.PID))
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", g.Proc.PID, task.Name()))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b))
			if len(f) >= 2 {
				r, _ := strconv.ParseFloat(f[0], 64)
				w, _ := strconv.ParseFloat(f[1], 64)
				run, wait = run+r, wait+w
			}
		}
	}
	return run, wait
}

// cpu is the CPU time the group processes used so far.
func (c *scaleCluster) cpu(t *testing.T) time.Duration {
	var total time.Duration
	for _, g := range c.groups {
		total += procCPU(t, g.Proc.PID)
	}
	return total
}

// procCPU is a process's utime+stime (fields 14 and 15 of /proc/pid/stat).
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func (c *scaleCluster) rssKB(t *testing.T) float64 {
	var total float64
	for _, g := range c.groups {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.Proc.PID))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				total += kb
			}
		}
	}
	return total
}

// counters sums the suspicions and refutations of every member so far.
func (c *scaleCluster) counters(t *testing.T) (suspicions, refutations float64) {
	for _, a := range c.all(t, "counters") {
		var s, r float64
		if _, err := fmt.Sscanf(a, "suspicions=%g refutations=%g", &s, &r); err != nil {
			t.Fatalf("counters: %q", a)
		}
		suspicions += s
		refutations += r
	}
	return suspicions, refutations
}

// falseDeaths counts, since since, the members that left a view though
// not in excluded, as (observer, member) pairs and the members' names.
func (c *scaleCluster) falseDeaths(t *testing.T, since time.Time, excluded []string) (int, []string) {
	ex := "-"
	if len(excluded) > 0 {
		ex = strings.Join(excluded, ",")
	}
	total, names := 0, map[string]bool{}
	for _, a := range c.all(t, fmt.Sprintf("false %d %s", since.UnixNano(), ex)) {
		var k int
		var who string
		if _, err := fmt.Sscanf(a, "deaths=%d subjects=%s", &k, &who); err != nil {
			t.Fatalf("false: %q", a)
		}
		total += k
		for _, w := range strings.Split(who, ",") {
			if w != "-" {
				names[w] = true
			}
		}
	}
	return total, slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if !yield(n) {
				return
			}
		}
	})
}

// measure watches the cluster for d (with the busy process running, if
// any, which it stops at the end).
func (c *scaleCluster) measure(t *testing.T, d time.Duration, burn *child.Process) window {
	t0 := time.Now()
	tr0, cpu0 := c.traffic(t), c.cpu(t)
	busy0, total0 := machineCPU(t)
	run0, wait0 := c.sched()
	s0, r0 := c.counters(t)
	time.Sleep(d)
	tr, cpu := c.traffic(t).minus(tr0), c.cpu(t)-cpu0
	busy1, total1 := machineCPU(t)
	run1, wait1 := c.sched()
	secs := time.Since(t0).Seconds()
	if burn != nil {
		burn.Stop()
	}
	s1, r1 := c.counters(t)
	w := window{seconds: secs, suspicions: s1 - s0, refutations: r1 - r0, load1: load1(t),
		machineBusy: (busy1 - busy0) / (total1 - total0), waitPerRun: (wait1 - wait0) / (run1 - run0)}
	per := float64(c.n) * secs
	w.udpPkts, w.udpBytes, w.tcpPkts, w.tcpB = tr.udpPackets/per, tr.udpBytes/per, tr.tcpPackets/per, tr.tcpBytes/per
	w.cpuMs = float64(cpu.Milliseconds()) / per
	w.falseDeaths, w.falseDead = c.falseDeaths(t, t0, nil)
	return w
}

// killRound shuts k random members down without leaving, waits until
// every survivor dropped each, and starts them again. It returns, per
// victim, the time until the last survivor dropped it, and per survivor and
// victim, the time until that survivor did (ms).
func (c *scaleCluster) killRound(t *testing.T, k int, r *scaleResult) (all, each []float64) {
	names := make([]string, 0, c.n)
	for i := 1; i <= c.n; i++ {
		names = append(names, scaleName(i))
	}
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	victims := names[:k]
	slices.Sort(victims)
	byGroup := map[*child.Process][]string{}
	for _, v := range victims {
		byGroup[c.owner[v]] = append(byGroup[c.owner[v]], v)
	}
	cmdFor := func(verb string) func(*child.Process) string {
		return func(g *child.Process) string {
			if vs := byGroup[g]; len(vs) > 0 {
				return verb + " " + strings.Join(vs, ",")
			}
			return ""
		}
	}
	since := time.Now()
	run0, wait0 := c.sched()
	stopped := map[string]time.Time{}
	for i, a := range c.call(t, cmdFor("stop")) {
		if a == "" {
			continue
		}
		ns, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			t.Fatalf("stop: %q", a)
		}
		for _, v := range byGroup[c.groups[i]] {
			stopped[v] = time.Unix(0, ns)
		}
	}

	// seen[v] holds every survivor's time of dropping v (zero: not yet).
	var seen map[string][]time.Time
	missing := 0
	ctx, cancel := context.WithTimeout(context.Background(), scaleDetectBound)
	defer cancel()
	err := poll.Until(ctx, 100*time.Millisecond, func() error {
		seen = map[string][]time.Time{}
		missing = 0
		for _, a := range c.all(t, fmt.Sprintf("gone %d %s", since.UnixNano(), strings.Join(victims, ","))) {
			for _, part := range strings.Split(a, ";") {
				v, list, _ := strings.Cut(part, "=")
				for _, s := range strings.Split(list, ",") {
					if s == "" {
						continue
					}
					at := time.Time{}
					if s != "-" {
						ns, _ := strconv.ParseInt(s, 10, 64)
						at = time.Unix(0, ns)
					} else {
						missing++
					}
					seen[v] = append(seen[v], at)
				}
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d survivors still list a killed member", missing)
		}
		return nil
	})
	if err != nil {
		r.detectStragglers += missing
		t.Errorf("after %v: %v (victims %v)", scaleDetectBound, err, victims)
	}
	for _, v := range victims {
		if len(seen[v]) != c.n-k {
			t.Errorf("%s: %d survivors answered, want %d", v, len(seen[v]), c.n-k)
		}
		last := time.Duration(0)
		for _, at := range seen[v] {
			if at.IsZero() {
				continue
			}
			d := at.Sub(stopped[v])
			each = append(each, ms(d))
			last = max(last, d)
		}
		all = append(all, ms(last))
	}
	dead, who := c.falseDeaths(t, since, victims)
	restarted := time.Now()
	c.call(t, cmdFor("start"))
	c.waitFull(t, scaleConvergeBound)
	again, who2 := c.falseDeaths(t, restarted, nil)
	r.killFalse += dead + again
	run1, wait1 := c.sched()
	c.checkNoFalseDeaths(t, fmt.Sprintf("killing %v", victims), dead+again, append(who, who2...), (wait1-wait0)/(run1-run0))
	t.Logf("killed %d (%v): all survivors dropped each after %.0f ms (median), %.0f ms (max); re-formed in %v",
		k, victims, quantile(all, 0.5), quantile(all, 1), time.Since(restarted).Round(time.Millisecond))
	return all, each
}

// groupHelper runs members FIRST..FIRST+COUNT-1 of a cluster of TOTAL, in
// the namespace it was started in, and answers:
//
//	count                -> "<min> <max>": how many members the running ones see
//	stop a,b             -> <unix-nanos>: shuts them down without leaving (the time before)
//	start a,b            -> ok: starts them again
//	gone <since> a,b     -> "a=<ns>,-,...;b=...": when each running member dropped a, b ("-": not yet)
//	false <since> a,b|-  -> "deaths=N subjects=x,y|-": drops since <since> of members not listed
//	counters             -> "suspicions=N refutations=M" over all members ever run here
func groupHelper(ctx context.Context) (func(string) string, func() error, error) {
	env := func(k string) int { v, _ := strconv.Atoi(os.Getenv("HERALD_SCALE_" + k)); return v }
	key, err := hex.DecodeString(os.Getenv("HERALD_MEMBER_KEY"))
	if err != nil {
		return nil, nil, err
	}
	stopProfile := func() {}
	if dir := os.Getenv("HERALD_BENCH_PROFILE"); dir != "" {
		// A CPU profile of each group, for finding where members spend.
		f, err := os.Create(fmt.Sprintf("%s/cpu-%d.pprof", dir, env("FIRST")))
		if err != nil {
			return nil, nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, nil, err
		}
		stopProfile = func() { pprof.StopCPUProfile(); _ = f.Close() }
	}
	timings, err := parseTimings(os.Getenv("HERALD_BENCH_TIMINGS"))
	if err != nil {
		return nil, nil, err
	}
	g := &scaleGroup{ctx: ctx, key: key, timings: timings, running: map[string]*scaleMember{}, index: map[string]int{}, gone: map[string][]goneEvent{}}
	for i := 1; i <= env("TOTAL"); i++ {
		g.peers = append(g.peers, scaleAddr(i).String())
	}
	for i := env("FIRST"); i < env("FIRST")+env("COUNT"); i++ {
		g.index[scaleName(i)] = i
		if err := g.start(i); err != nil {
			return nil, nil, err
		}
	}
	handle := func(cmd string) string {
		f := strings.Fields(cmd)
		arg := func(i int) []string {
			if len(f) <= i || f[i] == "-" {
				return nil
			}
			return strings.Split(f[i], ",")
		}
		since := func() int64 { v, _ := strconv.ParseInt(f[1], 10, 64); return v }
		switch f[0] {
		case "count":
			return g.count()
		case "stop":
			return g.stop(arg(1))
		case "start":
			for _, n := range arg(1) {
				if err := g.start(g.index[n]); err != nil {
					return err.Error()
				}
			}
			return "ok"
		case "gone":
			return g.goneSince(since(), arg(2))
		case "false":
			return g.falseSince(since(), arg(2))
		case "counters":
			return g.counters()
		}
		return "unknown command"
	}
	wait := func() error {
		<-ctx.Done()
		g.mu.Lock()
		running := slices.Collect(func(yield func(*scaleMember) bool) {
			for _, m := range g.running {
				if !yield(m) {
					return
				}
			}
		})
		g.mu.Unlock()
		for _, m := range running {
			<-m.done
		}
		stopProfile()
		return nil
	}
	return handle, wait, nil
}

type goneEvent struct {
	observer string
	at       int64
}

type scaleGroup struct {
	ctx     context.Context
	key     []byte
	timings members.Timings
	peers   []string
	index   map[string]int

	mu      sync.Mutex
	running map[string]*scaleMember
	gone    map[string][]goneEvent // by the member that left a view
	// counts of members no longer running
	retiredSuspicions, retiredRefutations float64
}

type scaleMember struct {
	name   string
	m      *members.Members
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
	seen   atomic.Int64 // how many members it saw last
}

func (g *scaleGroup) start(i int) error {
	reg := prometheus.NewRegistry()
	m, err := members.New(members.Options{Name: scaleName(i), BindAddr: scaleAddr(i), Key: g.key, Registerer: reg, Timings: g.timings})
	if err != nil {
		return err
	}
	m.SetPeers(g.peers)
	ctx, cancel := context.WithCancel(g.ctx)
	sm := &scaleMember{name: scaleName(i), m: m, reg: reg, cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	g.running[sm.name] = sm
	g.mu.Unlock()
	go func() {
		defer close(sm.done)
		if err := m.Run(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", sm.name, err)
		}
	}()
	go g.watch(ctx, sm)
	return nil
}

// watch records, on every change, the members that left sm's view.
func (g *scaleGroup) watch(ctx context.Context, sm *scaleMember) {
	var prev []string
	for {
		select {
		case <-ctx.Done():
			return
		case <-sm.m.Changes():
		}
		alive := sm.m.Alive()
		if len(alive) == 0 {
			continue // not joined yet, or shut down
		}
		now := time.Now().UnixNano()
		var left []string
		for _, n := range prev {
			if _, ok := slices.BinarySearch(alive, n); !ok {
				left = append(left, n)
			}
		}
		if len(left) > 0 {
			g.mu.Lock()
			for _, n := range left {
				g.gone[n] = append(g.gone[n], goneEvent{observer: sm.name, at: now})
			}
			g.mu.Unlock()
		}
		sm.seen.Store(int64(len(alive)))
		prev = alive
	}
}

func (g *scaleGroup) count() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	lo, hi := int64(-1), int64(-1)
	for _, m := range g.running {
		s := m.seen.Load()
		if lo < 0 || s < lo {
			lo = s
		}
		hi = max(hi, s)
	}
	return fmt.Sprintf("%d %d", lo, hi)
}

func (g *scaleGroup) stop(names []string) string {
	g.mu.Lock()
	var victims []*scaleMember
	for _, n := range names {
		if m, ok := g.running[n]; ok {
			victims = append(victims, m)
			delete(g.running, n)
		}
	}
	g.mu.Unlock()
	at := time.Now().UnixNano()
	for _, m := range victims {
		m.cancel()
	}
	for _, m := range victims {
		<-m.done
		s, r := memberCounters(m.reg)
		g.mu.Lock()
		g.retiredSuspicions += s
		g.retiredRefutations += r
		g.mu.Unlock()
	}
	return strconv.FormatInt(at, 10)
}

func (g *scaleGroup) goneSince(since int64, victims []string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var parts []string
	for _, v := range victims {
		var times []string
		for name := range g.running {
			at := "-"
			for _, e := range g.gone[v] {
				if e.observer == name && e.at >= since {
					at = strconv.FormatInt(e.at, 10)
					break
				}
			}
			times = append(times, at)
		}
		parts = append(parts, v+"="+strings.Join(times, ","))
	}
	return strings.Join(parts, ";")
}

func (g *scaleGroup) falseSince(since int64, excluded []string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	deaths, subjects := 0, []string{}
	for subject, events := range g.gone {
		if slices.Contains(excluded, subject) {
			continue
		}
		k := 0
		for _, e := range events {
			if e.at >= since {
				k++
			}
		}
		if k > 0 {
			deaths += k
			subjects = append(subjects, subject)
		}
	}
	if len(subjects) == 0 {
		subjects = []string{"-"}
	}
	slices.Sort(subjects)
	return fmt.Sprintf("deaths=%d subjects=%s", deaths, strings.Join(subjects, ","))
}

func (g *scaleGroup) counters() string {
	g.mu.Lock()
	s, r := g.retiredSuspicions, g.retiredRefutations
	regs := make([]*prometheus.Registry, 0, len(g.running))
	for _, m := range g.running {
		regs = append(regs, m.reg)
	}
	g.mu.Unlock()
	for _, reg := range regs {
		ms, mr := memberCounters(reg)
		s, r = s+ms, r+mr
	}
	return fmt.Sprintf("suspicions=%v refutations=%v", s, r)
}

func memberCounters(reg *prometheus.Registry) (suspicions, refutations float64) {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "herald_memberlist_suspicions_total":
				suspicions = m.GetCounter().GetValue()
			case "herald_memberlist_refutations_total":
				refutations = m.GetCounter().GetValue()
			}
		}
	}
	return suspicions, refutations
}

// burnHelper keeps HERALD_BURN_THREADS threads busy until stopped.
func burnHelper(ctx context.Context) (func(string) string, func() error, error) {
	threads, _ := strconv.Atoi(os.Getenv("HERALD_BURN_THREADS"))
	threads = max(threads, 1)
	runtime.GOMAXPROCS(threads)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range threads {
		wg.Go(func() {
			x := uint64(1)
			for !stop.Load() {
				for range 1 << 16 {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
			_ = x
		})
	}
	return func(string) string { return "busy" }, func() error {
		<-ctx.Done()
		stop.Store(true)
		wg.Wait()
		return nil
	}, nil
}

// parseTimings reads "probe=200ms,timeout=100ms,mult=2,gossip=100ms" (the
// speaker's --memberlist-* flags; any subset, the rest default).
func parseTimings(s string) (members.Timings, error) {
	var tm members.Timings
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "probe":
			tm.ProbeInterval, err = time.ParseDuration(v)
		case "timeout":
			tm.ProbeTimeout, err = time.ParseDuration(v)
		case "gossip":
			tm.GossipInterval, err = time.ParseDuration(v)
		case "mult":
			tm.SuspicionMult, err = strconv.Atoi(v)
		default:
			err = fmt.Errorf("unknown timing %q", k)
		}
		if err != nil {
			return tm, fmt.Errorf("HERALD_BENCH_TIMINGS %q: %w", s, err)
		}
	}
	return tm, nil
}

func envInts(t *testing.T, name string, def []int) []int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 3 {
			t.Fatalf("%s=%q: want sizes of 3 or more, comma-separated", name, v)
		}
		out = append(out, n)
	}
	return out
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("%s=%q: want a duration", name, v)
	}
	return d
}
