package l2

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// speakerRSSBound is issue 13's target for a speaker with 10,000 Services
// and 100,000 endpoints; make test holds the small run to it too.
const speakerRSSBound = 150_000_000

// TestSpeakerMemory runs the speakers with many Layer 2 Services and their
// endpoints through the real API server and controller: n IPv6 Services
// with externalTrafficPolicy Local, each with an EndpointSlice of 10 ready
// endpoints over the three nodes (10n endpoints), created before the
// Services, so that every address is announced only once the speakers have
// read its endpoints. It reports each speaker's resident memory once the
// AnnouncementSlices say every address is announced by its owner, then
// stops one speaker (its addresses move to the others) and starts it
// again: the time until it announces its share again and its memory then.
// kube-proxy is stopped meanwhile (it would program every Service on every
// node of the same 2 cores). n is 1,000 in make test (bound: 150 MB of
// resident memory per speaker); for docs/benchmarks.md:
//
//	HERALD_MEASURE=1 go test ./e2e/l2 -run TestSpeakerMemory -v -timeout 60m
//
// HERALD_MEASURE_SPEAKER_GOGC=50 restarts the speakers with that GOGC
// first (the trade of CPU for memory in docs/benchmarks.md).
func TestSpeakerMemory(t *testing.T) {
	n := 1000
	if labtest.Measuring() {
		n = testkit.EnvInt(t, "HERALD_MEASURE_SERVICES", 10000)
	}
	const perSlice, ns = 10, "t-memory"
	e := herald(t)
	ctx := labtest.Context(t, 50*time.Minute)
	if gogc := os.Getenv("HERALD_MEASURE_SPEAKER_GOGC"); gogc != "" && labtest.Measuring() {
		e.restartSpeakersWith(ctx, t, "GOGC="+gogc)
	}
	labtest.WithoutKubeProxy(t, e.Lab)
	idle := labtest.SpeakerMemory(t, e.Lab)
	sw, err := e.WatchSlices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Stop()
	labtest.Namespace(t, e.Lab, ns)
	start := time.Now()
	if err := e.CreateEndpointSlices(ctx, ns, n, perSlice); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d EndpointSlices (%d endpoints) created in %v", n, n*perSlice, time.Since(start).Round(time.Millisecond))
	ips := e.sliceServices(ctx, t, sw, ns, n, objects.LocalTraffic)
	all := e.NodeNames()
	at, err := sw.Wait(ctx, ns, rightL2(ips, all))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d Services created and announced by their owners %v after the first slice", n, at.Sub(start).Round(time.Millisecond))
	full := labtest.SpeakerMemory(t, e.Lab)
	for _, name := range e.NodeNames() {
		u, err := e.Speaker(name).Usage()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s's Go runtime: %s; CPU used since its start %v", name, e.goMemory(ctx, t, name), u.CPU)
	}

	// A speaker restarts: stopped, its addresses move to the others; started,
	// it takes its share back.
	node := all[0]
	if err := e.Speaker(node).Terminate(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Wait(ctx, ns, rightL2(ips, all[1:])); err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	if err := e.Speaker(node).Start(); err != nil {
		t.Fatal(err)
	}
	back, err := sw.Wait(ctx, ns, rightL2(ips, all))
	if err != nil {
		t.Fatal(err)
	}
	restarted, err := e.Speaker(node).Usage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURE speaker memory, %d Services, %d endpoints: idle %s; all announced %s; %s restarted: its share announced again %v after its start, %s, CPU %v",
		n, n*perSlice, idle, full, node, back.Sub(restart).Round(time.Millisecond), restarted.Memory(), restarted.CPU)
	for _, name := range all {
		u, err := e.Speaker(name).Usage()
		if err != nil {
			t.Fatal(err)
		}
		if u.RSS > speakerRSSBound {
			t.Errorf("%s's speaker holds %s, want under 150 MB", name, u.Memory())
		}
	}
}

// restartSpeakersWith restarts every speaker with env added to its
// environment, for the rest of the lab's life: measurements only.
func (e *env) restartSpeakersWith(ctx context.Context, t *testing.T, env ...string) {
	t.Helper()
	for _, name := range e.NodeNames() {
		sp := e.Speaker(name)
		if err := sp.Terminate(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		sp.Spec.Env = append(sp.Spec.Env, env...)
		if err := sp.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.WaitMembers(ctx, len(e.Nodes)); err != nil {
		t.Fatal(err)
	}
	t.Logf("speakers restarted with %v", env)
}

// goMemory says what a speaker's Go runtime reports of its memory: the
// heap live after the last GC, the heap size at which the next GC starts,
// and all the runtime holds from the OS.
func (e *env) goMemory(ctx context.Context, t *testing.T, node string) string {
	t.Helper()
	m, err := e.SpeakerMetrics(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	mib := func(series string) string {
		v, ok := metricValue(m, series)
		if !ok {
			return "?"
		}
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	}
	return fmt.Sprintf("heap live %s, next GC at %s, held from the OS %s (released %s)",
		mib("go_gc_heap_live_bytes"), mib("go_memstats_next_gc_bytes"), mib("go_memstats_sys_bytes"), mib("go_memstats_heap_released_bytes"))
}
