package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/testkit"
)

// Loose bounds for CI; docs/benchmarks.md (BGP) has the measured figures.
const (
	bfdDropBound     = 3 * time.Second // BFD 100 ms x 3
	sigtermDropBound = time.Second
)

// failureWorkload is an IPv4 Service with a pod on every node, routed by
// FRR via every node.
func (e *env) failureWorkload(t *testing.T, name string) *lab.Workload {
	t.Helper()
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: name, Nodes: e.NodeNames(), Family: "IPv4", Pool: poolBGP})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.steady(ctx, hostPrefix(w.IPs[0])); err != nil {
		t.Fatal(err)
	}
	return w
}

// With a BFDProfile of 100 ms x 3, FRR drops the next hop of a node whose
// speaker is killed or hung, or whose link is cut, within a few hundred
// milliseconds (bound: 3 s), far inside the 9 s hold time.
func TestBFDDropsAFailedNodeQuickly(t *testing.T) {
	e := herald(t)
	w := e.failureWorkload(t, "bfd")
	prefix := hostPrefix(w.IPs[0])
	victim := e.Nodes[2].Name
	for _, f := range []lab.NodeFault{lab.FaultKill, lab.FaultStop, lab.FaultCut} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		took, err := e.nextHopDrop(ctx, prefix, victim, f, bfdDropBound)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Logf("%s on %s: next hop gone from FRR's kernel after %v", f.What, victim, took.Round(time.Millisecond))
		if err := e.frrHops(ctx, prefix, slices.DeleteFunc(e.NodeAddrs(false), func(a netip.Addr) bool { return a == e.Node(victim).IPv4 })); err != nil {
			t.Error(err)
		}
		if err := e.recover(ctx, prefix, victim, f); err != nil {
			cancel()
			t.Fatalf("after %s: %v", f.What, err)
		}
		cancel()
	}
}

// Without BFD, a hung speaker or a cut link is noticed only when the hold
// timer (9 s) expires: FRR keeps the dead next hop for seconds, which is
// why BFD matters.
func TestWithoutBFDTheHoldTimerDecides(t *testing.T) {
	e := herald(t)
	e.withoutBFD(t)
	w := e.failureWorkload(t, "nobfd")
	prefix := hostPrefix(w.IPs[0])
	victim := e.Nodes[2].Name
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := lab.FaultStop.Inject(ctx, e.Lab, victim); err != nil {
		t.Fatal(err)
	}
	testkit.Holds(t, 2*time.Second, "FRR keeps the hung node's next hop within 2 s", func() error {
		if st := e.w.Route(prefix); len(st.Gateways) != len(e.Nodes) {
			return fmt.Errorf("next hops %v after %v", st.Gateways, time.Since(start))
		}
		return nil
	})
	st, err := e.w.Wait(ctx, prefix, func(st routers.RouteState) bool { return st.Since.After(start) && len(st.Gateways) == len(e.Nodes)-1 })
	if err != nil {
		t.Fatal(err)
	}
	took := st.Since.Sub(start)
	t.Logf("SIGSTOP of %s without BFD: next hop gone from FRR's kernel after %v (hold time 9 s)", victim, took.Round(time.Millisecond))
	if took < 6*time.Second {
		t.Errorf("next hop dropped after %v, before the hold timer could expire", took)
	}
	if err := e.recover(ctx, prefix, victim, lab.FaultStop); err != nil {
		t.Fatal(err)
	}
}

// withoutBFD removes the BFD profile from the FRR peer for the test.
func (e *env) withoutBFD(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	peer := &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: peerFRR4}}
	if err := lab.Update(ctx, e.API, peer, func(p *v1beta1.BGPPeer) { p.Spec.BFDProfile = "" }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = lab.Update(context.Background(), e.API, peer, func(p *v1beta1.BGPPeer) { p.Spec.BFDProfile = bfdFast })
	})
	testkit.For(t, 30*time.Second, "sessions re-created without BFD", func() error {
		s, err := e.session(ctx, e.Nodes[0].Name, peerFRR4)
		if err != nil {
			return err
		}
		if s.BFD != "" {
			return fmt.Errorf("session still shows BFD %q", s.BFD)
		}
		return e.sessionsUp(ctx)
	})
}

// SIGTERM of a speaker withdraws its routes at once (bound 1 s); with
// graceful restart on the BGPPeer, FRR keeps the node's routes (stale)
// across the speaker's restart and traffic through that node never stops.
func TestSIGTERMWithdrawsAndGracefulRestartKeepsForwarding(t *testing.T) {
	e := herald(t)
	w := e.failureWorkload(t, "restart")
	prefix := hostPrefix(w.IPs[0])
	victim := e.Nodes[2].Name
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	took, err := e.nextHopDrop(ctx, prefix, victim, lab.FaultTerm, sigtermDropBound)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGTERM of %s's speaker: next hop gone from FRR's kernel after %v", victim, took.Round(time.Millisecond))
	if err := e.recover(ctx, prefix, victim, lab.FaultTerm); err != nil {
		t.Fatal(err)
	}

	peer := &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: peerFRR4}}
	if err := lab.Update(ctx, e.API, peer, func(p *v1beta1.BGPPeer) { p.Spec.GracefulRestart = true }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = lab.Update(context.Background(), e.API, peer, func(p *v1beta1.BGPPeer) { p.Spec.GracefulRestart = false })
	})
	testkit.For(t, 30*time.Second, "FRR sees graceful restart on every node's session", func() error {
		fn, err := e.frrNeighbors(ctx)
		if err != nil {
			return err
		}
		for _, a := range e.NodeAddrs(false) {
			if n := fn[a]; !n.Established() || n.GracefulRestart.RemoteMode != "Restart" {
				return fmt.Errorf("%v: %s, graceful restart %+v", a, n.State, n.GracefulRestart)
			}
		}
		return e.steady(ctx, prefix)
	})
	before := e.w.Route(prefix)
	probe := e.Ext.StartProbe(lab.URL(w.IPs[0], 80), lab.ProbeOptions{Interval: 20 * time.Millisecond})
	if err := e.Speaker(victim).Terminate(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 10*time.Second, "FRR holds the stopped node's path as stale", func() error {
		rt, err := e.FRR.FRR.BGPRoute(ctx, prefix)
		if err != nil {
			return err
		}
		for _, p := range rt.Paths {
			if p.PeerID == e.Node(victim).IPv4.String() && p.Stale {
				return nil
			}
		}
		return fmt.Errorf("no stale path from %s: %+v", victim, rt.Paths)
	})
	testkit.Holds(t, 2*time.Second, "FRR keeps forwarding via every node while the speaker is down", func() error {
		hops, err := kernelHops(ctx, e.FRR.NS, prefix)
		if err == nil && !slices.Equal(hops, e.NodeAddrs(false)) {
			rt, _ := e.FRR.FRR.BGPRoute(ctx, prefix)
			err = fmt.Errorf("FRR's kernel routes %v via %v; BGP table: %+v", prefix, hops, rt.Paths)
		}
		return err
	})
	if rt, err := e.FRR.FRR.BGPRoute(ctx, prefix); err == nil {
		t.Logf("FRR's BGP table during the restart: %+v", rt.Paths)
	}
	if err := e.Speaker(victim).Start(); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, "session back and the path fresh", func() error {
		rt, err := e.FRR.FRR.BGPRoute(ctx, prefix)
		if err != nil {
			return err
		}
		for _, p := range rt.Paths {
			if p.Stale {
				return fmt.Errorf("path from %s still stale", p.PeerID)
			}
		}
		return e.steady(ctx, prefix)
	})
	sum := lab.Summarize(probe.Stop())
	if after := e.w.Route(prefix); after.Since != before.Since {
		t.Errorf("FRR's kernel route changed during the graceful restart: %+v -> %+v", before, after)
	}
	if sum.Failed > 0 {
		t.Errorf("%d of %d requests failed across the graceful restart (longest outage %v)", sum.Failed, sum.Total, sum.LongestOutage)
	}
	t.Logf("graceful restart of %s's speaker: %d requests, %d failed, answered on %v", victim, sum.Total, sum.Failed, sum.ByNode)
}
