package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// Scale benchmark. `make test` runs it with 500 Services and loose bounds;
// `make bench` with HERALD_BENCH_SCALE=10000 HERALD_BENCH_RUNS=3. Each run
// has its own control plane and measures, for N LoadBalancer Services
// created while the controller is stopped:
//   - assign: controller process start -> every Service has its IP (watch);
//   - bare: N status updates by plain client-go with as many goroutines as
//     the controller has workers (the physical limit), measured in the
//     same run on the same API server;
//   - restart: a second controller process on the assigned Services: time
//     until idle, and its status writes (expected: none);
//   - peak RSS (VmHWM) and CPU time of both controller processes.
const scaleWorkers = 8

type scaleResult struct {
	create, firstIP, assign, assignIdle, eventsDone, bare, restartIdle time.Duration
	firstWrites, restartWrites, restartModified                        float64
	firstPOST, firstPUT                                                float64 // every request of the first run
	events                                                             int     // Events recorded about the Services
	rssFirst, rssRestart                                               int64   // kB
	cpuFirst, cpuRestart                                               time.Duration
}

func TestScale(t *testing.T) {
	n := testkit.EnvInt(t, "HERALD_BENCH_SCALE", 500)
	runs := testkit.EnvInt(t, "HERALD_BENCH_RUNS", 1)
	var results []scaleResult
	for i := range runs {
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) {
			r := scaleRun(t, n)
			results = append(results, r)
			t.Logf("MEASURE controller scale N=%d run=%d create=%.1fs firstIP=%.1fs assign=%.1fs idle=%.1fs eventsDone=%.1fs bare=%.1fs ratio=%.2f writes=%v requests POST=%v PUT=%v events=%d | restart idle=%.1fs serviceWrites=%v serviceModified=%v | rss first=%dMB restart=%dMB | cpu first=%.1fs restart=%.1fs",
				n, i+1, r.create.Seconds(), r.firstIP.Seconds(), r.assign.Seconds(), r.assignIdle.Seconds(), r.eventsDone.Seconds(), r.bare.Seconds(), r.assign.Seconds()/r.bare.Seconds(), r.firstWrites, r.firstPOST, r.firstPUT, r.events,
				r.restartIdle.Seconds(), r.restartWrites, r.restartModified, r.rssFirst/1024, r.rssRestart/1024, r.cpuFirst.Seconds(), r.cpuRestart.Seconds())
		})
	}
	if len(results) == 0 || t.Failed() {
		return
	}
	med := func(f func(scaleResult) float64) float64 {
		var v []float64
		for _, r := range results {
			v = append(v, f(r))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	t.Logf("MEASURE controller scale N=%d median of %d: create=%.1fs assign=%.1fs bare=%.1fs ratio=%.2f restartIdle=%.1fs restartServiceWrites=%v rssFirst=%.0fMB rssRestart=%.0fMB cpuFirst=%.1fs",
		n, len(results),
		med(func(r scaleResult) float64 { return r.create.Seconds() }),
		med(func(r scaleResult) float64 { return r.assign.Seconds() }),
		med(func(r scaleResult) float64 { return r.bare.Seconds() }),
		med(func(r scaleResult) float64 { return r.assign.Seconds() / r.bare.Seconds() }),
		med(func(r scaleResult) float64 { return r.restartIdle.Seconds() }),
		med(func(r scaleResult) float64 { return r.restartWrites }),
		med(func(r scaleResult) float64 { return float64(r.rssFirst) / 1024 }),
		med(func(r scaleResult) float64 { return float64(r.rssRestart) / 1024 }),
		med(func(r scaleResult) float64 { return r.cpuFirst.Seconds() }))
}

func scaleRun(t *testing.T, n int) scaleResult {
	var r scaleResult
	// No controller manager: nothing else writes while we measure.
	h := newHarness(t, testenv.WithoutControllerManager(),
		testenv.WithAPIServerArgs("--max-requests-inflight=1000", "--max-mutating-requests-inflight=500"))
	h.create(t, objects.Pool("scale", true, "2001:db8:100::/112"))
	h.createNamespace(t, "scale")
	bare := bareClient(t, h.env.Config)

	begin := time.Now()
	parallel(t, n, func(i int) error {
		svc := objects.Service("scale", fmt.Sprintf("s-%05d", i), objects.Families(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol))
		svc.Spec.Selector = nil
		_, err := bare.CoreV1().Services("scale").Create(context.Background(), svc, metav1.CreateOptions{})
		return err
	})
	r.create = time.Since(begin)

	w := newAssignWatch(n)
	stopWatch := watchServices(t, h.cs, w.observe, func(err error) { t.Errorf("Service watch: %v", err) })
	defer stopWatch()

	// First start: every Service needs an address.
	controllerBinary(t) // built before the clock starts
	port := testkit.FreePort(t)
	args := []string{"--kubeconfig=" + h.env.Kubeconfig, "--leader-elect", "--log-level=info",
		"--workers=" + strconv.Itoa(scaleWorkers), "--metrics-bind-address=127.0.0.1:" + strconv.Itoa(port), "--metrics-secure=false", "--health-probe-bind-address=0"}
	begin = time.Now()
	first := h.startProcess(t, "herald-controller-first", args...)
	select {
	case <-w.reached:
		r.assign = time.Since(begin)
		w.mu.Lock()
		r.firstIP = w.firstAt.Sub(begin)
		w.mu.Unlock()
	case <-time.After(15 * time.Minute):
		t.Fatalf("only %d of %d Services assigned after 15 minutes", w.assignedCount(), n)
	}
	waitIdle(t, port, n, 5*time.Minute)
	r.assignIdle = time.Since(begin)
	// Events trail the statuses (they wait their turn); wait for them too.
	// With more Services than the sink queues, some are dropped: then the
	// count stops short of n, and it is done when it stopped growing.
	lastCount, lastGrowth := 0, time.Now()
	eventually(t, 10*time.Minute, "an Event per Service", func() (bool, string) {
		if r.events = countEvents(t, h, "scale"); r.events > lastCount {
			lastCount, lastGrowth = r.events, time.Now()
		}
		still := n > k8s.MaxQueuedEvents && time.Since(lastGrowth) > 15*time.Second
		return r.events >= n || still, fmt.Sprintf("%d Events", r.events)
	})
	r.eventsDone = lastGrowth.Sub(begin)
	r.firstWrites = writes(t, port)
	body := scrape(t, port)
	r.firstPOST, _ = metricSum(body, "rest_client_requests_total", `method="POST"`)
	r.firstPUT, _ = metricSum(body, "rest_client_requests_total", `method="PUT"`)
	r.rssFirst, r.cpuFirst = procUsage(t, first)
	if err := first.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Restart on assigned Services: nothing to write.
	modifiedBefore := w.modifiedCount()
	begin = time.Now()
	second := h.startProcess(t, "herald-controller-restart", args...)
	waitIdle(t, port, n, 5*time.Minute)
	r.restartIdle = time.Since(begin)
	r.restartWrites = writes(t, port)
	r.rssRestart, r.cpuRestart = procUsage(t, second)
	r.restartModified = float64(w.modifiedCount() - modifiedBefore)
	if err := second.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r.restartWrites != 0 || r.restartModified != 0 {
		t.Errorf("restart wrote %v Service statuses (%v modifications seen); want none", r.restartWrites, r.restartModified)
	}

	// Baseline: the same number of status updates from a bare client.
	list, err := bare.CoreV1().Services("scale").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	parallel(t, len(list.Items), func(i int) error {
		svc := &list.Items[i]
		meta.SetStatusCondition(&svc.Status.Conditions, metav1.Condition{
			Type: v1beta1.ConditionServiceIPAllocated, Status: metav1.ConditionTrue, Reason: "Allocated",
			Message: "baseline write " + svc.Status.LoadBalancer.Ingress[0].IP, ObservedGeneration: svc.Generation,
		})
		_, err := bare.CoreV1().Services("scale").UpdateStatus(context.Background(), svc, metav1.UpdateOptions{})
		return err
	})
	r.bare = time.Since(begin)

	// Loose bounds only; the figures are for docs/benchmarks.md (controller).
	// Start-up (about a second) dominates small runs, hence the constant.
	if r.assign > 5*r.bare+10*time.Second {
		t.Errorf("controller took %s to assign %d Services, a bare client %s to write their statuses", r.assign, n, r.bare)
	}
	if r.rssFirst > 1<<20 {
		t.Errorf("controller peak RSS %d MB", r.rssFirst/1024)
	}
	return r
}

// bareClient is plain client-go without client-side rate limiting.
func bareClient(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// parallel runs do(0..n-1) on scaleWorkers goroutines and fails on the first error.
func parallel(t *testing.T, n int, do func(i int) error) {
	t.Helper()
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range scaleWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := do(i); err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

// writes is how many Service status updates the controller sent.
func writes(t *testing.T, port int) float64 {
	t.Helper()
	v, _ := metricSum(scrape(t, port), "herald_status_writes_total", `kind="Service"`)
	return v
}

// procUsage reads a live process's peak RSS (kB) and CPU time.
func procUsage(t *testing.T, p *netns.Proc) (hwmKB int64, cpu time.Duration) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			hwmKB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): utime and stime
	// are fields 14 and 15 of the whole line.
	rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(rest[11], 10, 64)
	stime, _ := strconv.ParseInt(rest[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return hwmKB, time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// assignWatch counts Services with an address and status modifications.
type assignWatch struct {
	mu       sync.Mutex
	has      map[string]bool
	assigned int
	modified int
	target   int
	done     bool
	reached  chan struct{}
	firstAt  time.Time // when the first Service got an address
}

func newAssignWatch(target int) *assignWatch {
	return &assignWatch{has: map[string]bool{}, target: target, reached: make(chan struct{})}
}

func (w *assignWatch) observe(typ watch.EventType, svc *corev1.Service) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if typ == watch.Modified {
		w.modified++
	}
	key := svc.Namespace + "/" + svc.Name
	now := typ != watch.Deleted && len(svc.Status.LoadBalancer.Ingress) > 0
	if now != w.has[key] {
		w.has[key] = now
		if now {
			w.assigned++
			if w.firstAt.IsZero() {
				w.firstAt = time.Now()
			}
		} else {
			w.assigned--
		}
		if w.assigned == w.target && !w.done {
			w.done = true
			close(w.reached)
		}
	}
}

func (w *assignWatch) assignedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.assigned
}

func (w *assignWatch) modifiedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.modified
}

// countEvents counts the Events in a namespace without listing them all.
func countEvents(t *testing.T, h *harness, ns string) int {
	t.Helper()
	list, err := h.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	n := len(list.Items)
	if list.RemainingItemCount != nil {
		n += int(*list.RemainingItemCount)
	}
	return n
}
