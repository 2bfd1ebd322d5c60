package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// The measurements of docs/benchmarks.md (BGP). Each runs once against a
// loose bound by default (CI catches regressions without flakes) and
// repeats with HERALD_MEASURE=1, reporting the median:
//
//	HERALD_MEASURE=1 go test ./e2e/bgp -run 'Measure' -v -timeout 30m

// runs is how many times a measurement repeats: n when measuring, else 1.
func runs(n int) int {
	if labtest.Measuring() {
		return n
	}
	return 1
}

// summary is "median m (min a, max b, n runs)".
func summary(xs []time.Duration) string {
	if len(xs) == 0 {
		return "no runs"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return fmt.Sprintf("median %v (min %v, max %v, %d runs)", s[len(s)/2].Round(time.Millisecond), s[0].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s))
}

// ingressWatch follows the Services of a namespace and timestamps the
// moment the watch delivers each one's first ingress IP. It reads the
// watch on its own goroutine, so that a slow reader never makes the API
// server drop the watch.
type ingressWatch struct {
	w    watch.Interface
	seen chan ingressSeen
}

type ingressSeen struct {
	name string
	at   time.Time
	ips  []string
}

func (e *env) watchIngress(ctx context.Context, namespace string) (*ingressWatch, error) {
	w, err := e.Kube.CoreV1().Services(namespace).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	iw := &ingressWatch{w: w, seen: make(chan ingressSeen, 20000)}
	go func() {
		defer close(iw.seen)
		done := map[string]bool{}
		for ev := range w.ResultChan() {
			now := time.Now()
			svc, isSvc := ev.Object.(*corev1.Service)
			if !isSvc || ev.Type == watch.Deleted || done[svc.Name] {
				continue
			}
			if ips := k8s.IngressIPs(svc.Status.LoadBalancer); len(ips) > 0 {
				done[svc.Name] = true
				s := ingressSeen{name: svc.Name, at: now}
				for _, ip := range ips {
					s.ips = append(s.ips, ip.String())
				}
				iw.seen <- s
			}
		}
	}()
	return iw, nil
}

// next waits for the next Service that gets its IPs.
func (iw *ingressWatch) next(ctx context.Context) (ingressSeen, error) {
	select {
	case <-ctx.Done():
		return ingressSeen{}, ctx.Err()
	case s, ok := <-iw.seen:
		if !ok {
			return ingressSeen{}, fmt.Errorf("the Service watch ended")
		}
		return s, nil
	}
}

// Time from a Service getting its IP (the status write, as a watch sees
// it) to the route in FRR's kernel, first via one node and then via all
// three. Bound 3 s; 20 runs with HERALD_MEASURE=1.
func TestMeasureIPToRouteAtFRR(t *testing.T) {
	e := herald(t)
	const ns = "t-iptoroute"
	labtest.Namespace(t, e.Lab, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	iw, err := e.watchIngress(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer iw.w.Stop()
	var first, all []time.Duration
	for i := range runs(20) {
		name := fmt.Sprintf("s%d", i)
		if _, err := e.Kube.CoreV1().Services(ns).Create(ctx, objects.Service(ns, name, objects.FromPool(poolBGP), objects.Families(corev1.IPFamilyPolicySingleStack, corev1.IPv4Protocol)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		seen, err := iw.next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		prefix := hostPrefix(seen.ips[0])
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		one, err := e.w.Wait(wctx, prefix, func(st routers.RouteState) bool { return st.Present })
		if err == nil {
			var st routers.RouteState
			st, err = e.w.Wait(wctx, prefix, func(st routers.RouteState) bool { return len(st.Gateways) == len(e.Nodes) })
			all = append(all, st.Since.Sub(seen.at))
		}
		wcancel()
		if err != nil {
			t.Fatalf("%s (%v): %v", name, prefix, err)
		}
		first = append(first, one.Since.Sub(seen.at))
		if err := e.Kube.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.w.Wait(ctx, prefix, func(st routers.RouteState) bool { return !st.Present }); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("IP seen by a watch -> route in FRR's kernel via the first node: %s", summary(first))
	t.Logf("IP seen by a watch -> route in FRR's kernel via all %d nodes: %s", len(e.Nodes), summary(all))
}

// SIGTERM of a speaker -> its next hop gone from FRR's kernel (target
// 200 ms, bound 1 s); 10 runs with HERALD_MEASURE=1.
func TestMeasureSIGTERMToWithdrawal(t *testing.T) {
	e := herald(t)
	w := e.failureWorkload(t, "term")
	e.measureDrops(t, hostPrefix(w.IPs[0]), lab.FaultTerm, runs(10), sigtermDropBound)
}

// SIGKILL, SIGSTOP and link cut of a node with BFD 100 ms x 3 -> its next
// hop gone from FRR's kernel (target 1 s, bound 3 s); 10 runs each with
// HERALD_MEASURE=1.
func TestMeasureBFDDrops(t *testing.T) {
	e := herald(t)
	w := e.failureWorkload(t, "bfdm")
	for _, f := range []lab.NodeFault{lab.FaultKill, lab.FaultStop, lab.FaultCut} {
		e.measureDrops(t, hostPrefix(w.IPs[0]), f, runs(10), bfdDropBound)
	}
}

// The same without BFD, hold time 9 s: SIGKILL closes the TCP session
// (fast regardless), SIGSTOP and a link cut wait for the hold timer.
// Measured only with HERALD_MEASURE=1 (TestWithoutBFDTheHoldTimerDecides
// checks the bound); 5 runs each.
func TestMeasureDropsWithoutBFD(t *testing.T) {
	if !labtest.Measuring() {
		t.Skip("HERALD_MEASURE=1 runs this measurement (about 3 minutes)")
	}
	e := herald(t)
	e.withoutBFD(t)
	w := e.failureWorkload(t, "nobfdm")
	for _, f := range []lab.NodeFault{lab.FaultKill, lab.FaultStop, lab.FaultCut} {
		e.measureDrops(t, hostPrefix(w.IPs[0]), f, 5, 15*time.Second)
	}
}

// measureDrops applies f to each node in turn, n times in all, and logs
// how long FRR kept the failed node as a next hop.
func (e *env) measureDrops(t *testing.T, prefix netip.Prefix, f lab.NodeFault, n int, bound time.Duration) {
	t.Helper()
	var took []time.Duration
	for i := range n {
		victim := e.Nodes[(len(e.Nodes) - 1 - i%len(e.Nodes))].Name
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		d, err := e.nextHopDrop(ctx, prefix, victim, f, bound)
		if err == nil {
			took = append(took, d)
			err = e.recover(ctx, prefix, victim, f)
		}
		cancel()
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	t.Logf("%s on a node -> its next hop gone from FRR's kernel: %s", f.What, summary(took))
}
