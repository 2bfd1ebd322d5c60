package l2

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testkit"
)

// faults take an address's owner out, and bring it back.
var faults = []lab.NodeFault{lab.FaultKill, lab.FaultTerm, lab.FaultCut, lab.FaultStop}

// partition separates the owner from the other nodes at the switch while the
// client still reaches both sides: the owner keeps answering (it cannot tell
// it is the one cut off), the others take the address over with a burst.
var partition = lab.NodeFault{Name: "partition", What: "the owner partitioned from the other nodes (the client sees both)",
	Inject: func(ctx context.Context, l *lab.Lab, owner string) error {
		others := slices.DeleteFunc(l.NodeNames(), func(n string) bool { return n == owner })
		return l.Partition(ctx, []string{owner}, others)
	},
	Restore: func(ctx context.Context, l *lab.Lab, _ string) error { return l.Heal(ctx) }}

// trial is what one failover looked like from the LAN client.
type trial struct {
	fault, ip, owner, successor string
	// outage is the longest run of failed requests (from the last answer
	// before to the first answer after); failed counts failed requests.
	outage        time.Duration
	failed, total int
	// moved: fault to the first answer through another node; garp: fault to
	// that node's first gratuitous announcement (-1: none seen).
	moved, garp time.Duration
	// After the restore: when the last change of the answering node
	// happened, how many changes there were, and the owners then.
	settled time.Duration
	changes int
	owners  []string
	// after lists the gratuitous announcements after the restore
	// ("node1@12ms"); probeLog is the restore probe's log.
	after    []string
	probeLog string
}

func (tr trial) String() string {
	return fmt.Sprintf("%s %s: owner %s -> %s, outage %v (%d/%d failed), moved after %v, announcement after %v; after restore %d change(s), settled after %v, owners %v",
		tr.fault, tr.ip, tr.owner, tr.successor, ms(tr.outage), tr.failed, tr.total, ms(tr.moved), ms(tr.garp), tr.changes, ms(tr.settled), tr.owners)
}

func ms(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

// probeInterval: the client sends a request every 10 ms, each on a new
// connection, and gives each 500 ms.
var probeOpts = lab.ProbeOptions{Interval: 10 * time.Millisecond, Timeout: 500 * time.Millisecond}

// failoverWorkload pins one echo pod to every node behind a dual-stack
// Service with externalTrafficPolicy Local, so the node that answers a
// request is the node the client sent it to: the owner.
func (e *env) failoverWorkload(t *testing.T) *lab.Workload {
	return labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "failover", Local: true, Nodes: e.NodeNames()})
}

// runTrial takes ip's owner out with f while the client probes, restores
// it, and watches the address settle.
func (e *env) runTrial(ctx context.Context, ip string, f lab.NodeFault) (trial, error) {
	tr := trial{fault: f.Name, ip: ip, garp: -1, moved: -1}
	// The client must be sending to the owner before the fault.
	owner, err := e.answeredByOwner(ctx, ip, "")
	if err != nil {
		return tr, err
	}
	tr.owner = owner
	capt, err := e.Client.StartCapture(ctx)
	if err != nil {
		return tr, err
	}
	p := e.Client.StartProbe(lab.URL(ip, 80), probeOpts)
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	if err := f.Inject(ctx, e.Lab, owner); err != nil {
		p.Stop()
		_, _ = capt.Stop()
		return tr, err
	}
	err = poll.Until(ctx, 20*time.Millisecond, func() error {
		for _, s := range p.Samples() {
			if s.OK() && s.Sent.After(t0) && s.Node != owner {
				tr.successor, tr.moved = s.Node, s.Sent.Sub(t0)
				return nil
			}
		}
		return fmt.Errorf("no answer through another node than %s yet", owner)
	})
	time.Sleep(time.Second)
	samples := p.Stop()
	if err != nil {
		_, _ = capt.Stop()
		return tr, fmt.Errorf("after %s: %w (probe log %s)", f.What, err, p.LogPath)
	}
	var after []lab.Sample
	for _, s := range samples {
		if s.Sent.After(t0.Add(-200 * time.Millisecond)) {
			after = append(after, s)
		}
	}
	sum := lab.Summarize(after)
	tr.outage, tr.failed, tr.total = sum.LongestOutage, sum.Failed, sum.Total

	// Restore and watch: one owner again, with at most one move (the
	// address returns to the node that ranks first), and it stays.
	p = e.Client.StartProbe(lab.URL(ip, 80), probeOpts)
	t1 := time.Now()
	if err := f.Restore(ctx, e.Lab, owner); err != nil {
		p.Stop()
		return tr, err
	}
	time.Sleep(5 * time.Second)
	samples = p.Stop()
	anns, err := capt.Stop()
	if err != nil {
		return tr, err
	}
	for _, a := range anns {
		if a.IP != ip || !a.Gratuitous || !a.At.After(t0) {
			continue
		}
		if a.At.Before(t1) && e.NodeOfMAC(a.MAC) == tr.successor && tr.garp < 0 {
			tr.garp = a.At.Sub(t0)
		}
		if a.At.After(t1) {
			tr.after = append(tr.after, fmt.Sprintf("%s@%v", e.NodeOfMAC(a.MAC), a.At.Sub(t1).Round(time.Millisecond)))
		}
	}
	tr.probeLog = p.LogPath
	tr.changes, tr.settled = changesOf(samples, t1)
	if err := e.WaitMembers(ctx, len(e.Nodes)); err != nil {
		return tr, err
	}
	tr.owners, err = e.Owners(ctx, ip)
	return tr, err
}

// steady checks a trial's aftermath: one owner, answering alone, stable.
func (e *env) steady(ctx context.Context, tr trial) error {
	if len(tr.owners) != 1 {
		return fmt.Errorf("owners after the restore: %v", tr.owners)
	}
	ans, err := e.Answerers(ctx, tr.ip)
	if err != nil {
		return err
	}
	if !slices.Equal(ans, tr.owners) {
		return fmt.Errorf("after the restore %s is answered by %v, owner %v", tr.ip, ans, tr.owners)
	}
	if tr.changes > 1 || tr.settled > 5*time.Second {
		return fmt.Errorf("after the restore the answering node changed %d times, the last after %v (flapping); announcements %v; probe log %s", tr.changes, tr.settled, tr.after, tr.probeLog)
	}
	return nil
}

// Loose bounds that catch regressions without flaking: a failure moves
// the address within 3 s, a graceful stop costs under 1 s of outage, and
// after the node comes back there is one owner again within 5 s with at
// most one move. One trial per fault, over IPv4, a SIGKILL over IPv6, and a
// healed partition.
func TestFailover(t *testing.T) {
	e := herald(t)
	w := e.failoverWorkload(t)
	v4, v6 := w.IPs[0], w.IPs[1]
	cases := []struct {
		f  lab.NodeFault
		ip string
	}{{faults[0], v4}, {faults[1], v4}, {faults[2], v4}, {faults[3], v4}, {faults[0], v6}, {partition, v4}}
	for _, c := range cases {
		t.Run(c.f.Name+"/"+family(c.ip), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			tr, err := e.runTrial(ctx, c.ip, c.f)
			t.Log(tr)
			if err != nil {
				t.Fatal(err)
			}
			bound := 3 * time.Second
			if c.f.Name == lab.FaultTerm.Name {
				bound = time.Second
			}
			if tr.outage > bound || tr.moved > bound+time.Second {
				t.Errorf("%s: outage %v, moved after %v; want the outage under %v", c.f.What, tr.outage, tr.moved, bound)
			}
			if c.f.Name != lab.FaultTerm.Name && (tr.garp < 0 || tr.garp > bound) {
				t.Errorf("%s: the new owner announced after %v, want under %v", c.f.What, tr.garp, bound)
			}
			if err := e.steady(ctx, tr); err != nil {
				t.Error(err)
			}
		})
	}
}

func family(ip string) string {
	if strings.Contains(ip, ":") {
		return "IPv6"
	}
	return "IPv4"
}

// TestMeasureFailover measures HERALD_MEASURE_TRIALS (default 10) trials
// of each fault (HERALD_MEASURE_FAULTS=kill,term,cut,stop picks some) for
// docs/benchmarks.md (Layer 2 failover). It runs only with HERALD_MEASURE=1:
//
//	HERALD_MEASURE=1 go test ./e2e/l2 -run TestMeasureFailover -v -timeout 30m
func TestMeasureFailover(t *testing.T) {
	if !labtest.Measuring() {
		t.Skip("measurement: set HERALD_MEASURE=1")
	}
	n := testkit.EnvInt(t, "HERALD_MEASURE_TRIALS", 10)
	e := herald(t)
	w := e.failoverWorkload(t)
	ip := w.IPs[0]
	var report strings.Builder
	fmt.Fprintf(&report, "| fault | trials | client outage median | worst | moved median | worst | announcement median | worst | failed requests (median, worst) | settled after restore (worst) | moves after restore (worst) |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	only := os.Getenv("HERALD_MEASURE_FAULTS") // e.g. "cut,stop"; empty: all
	for _, f := range faults {
		if only != "" && !slices.Contains(strings.Split(only, ","), f.Name) {
			continue
		}
		var trials []trial
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			tr, err := e.runTrial(ctx, ip, f)
			if err == nil {
				err = e.steady(ctx, tr)
			}
			cancel()
			t.Logf("trial %d: %v", i+1, tr)
			if err != nil {
				t.Fatalf("trial %d of %s: %v", i+1, f.Name, err)
			}
			trials = append(trials, tr)
		}
		pick := func(get func(trial) time.Duration) (time.Duration, time.Duration) {
			var ds []time.Duration
			for _, tr := range trials {
				ds = append(ds, get(tr))
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			return ds[len(ds)/2], ds[len(ds)-1]
		}
		om, ow := pick(func(tr trial) time.Duration { return tr.outage })
		mm, mw := pick(func(tr trial) time.Duration { return tr.moved })
		gm, gw := pick(func(tr trial) time.Duration { return tr.garp })
		fm, fw := pick(func(tr trial) time.Duration { return time.Duration(tr.failed) })
		_, sw := pick(func(tr trial) time.Duration { return tr.settled })
		_, cw := pick(func(tr trial) time.Duration { return time.Duration(tr.changes) })
		fmt.Fprintf(&report, "| %s | %d | %s | %s | %s | %s | %s | %s | %d, %d | %s | %d |\n", f.What, n, ms(om), ms(ow), ms(mm), ms(mw), ms(gm), ms(gw), fm, fw, ms(sw), cw)
	}
	t.Logf("failover of %s, %d trials each:\n%s", ip, n, report.String())
	if out := os.Getenv("HERALD_MEASURE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// changesOf counts how often the answering node changed among the answered
// samples, in the order the answers arrived (send times mislead on a busy
// machine: a request stamped before the move may dial after it), and when
// the last change happened after t1. A node must answer minRun requests in
// a row to count: a lone answer at the moment of a move is not a flap.
func changesOf(samples []lab.Sample, t1 time.Time) (changes int, last time.Duration) {
	const minRun = 3
	var ok []lab.Sample
	for _, s := range samples {
		if s.OK() {
			ok = append(ok, s)
		}
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].Sent.Add(ok[i].Latency).Before(ok[j].Sent.Add(ok[j].Latency)) })
	cur := ""
	for i := 0; i < len(ok); {
		j := i
		for j < len(ok) && ok[j].Node == ok[i].Node {
			j++
		}
		if j-i >= minRun || j == len(ok) {
			if cur != "" && ok[i].Node != cur {
				changes++
				last = ok[i].Sent.Add(ok[i].Latency).Sub(t1)
			}
			cur = ok[i].Node
		}
		i = j
	}
	return changes, last
}
