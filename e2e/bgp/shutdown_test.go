package bgp

import (
	"context"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/poll"
)

// shutdownBound is what the DaemonSet gives a speaker to stop
// (terminationGracePeriodSeconds: 10); its own timeout is 8 s.
const shutdownBound = 10 * time.Second

// A speaker's graceful stop (hand-over, BGP withdrawal, leave) fits the
// pod's grace period even when its peers are slow: one BGPPeer's address
// answers nothing at all, and FRR, which holds the node's routes, is
// frozen (SIGSTOP of bgpd and bfdd: its sessions stay open and it reads
// nothing). Measured: SIGTERM to exit (HERALD_MEASURE=1: five runs).
func TestStopFitsTheGracePeriodWithSlowPeers(t *testing.T) {
	e := herald(t)
	w := e.failureWorkload(t, "slowpeers")
	ctx := labtest.Context(t, 5*time.Minute)
	silent := lab.BGPPeer("silent", netip.MustParseAddr("10.0.0.250"), lab.NodeASN, 64999)
	if err := e.Create(ctx, silent); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.API.Delete(context.Background(), silent) })
	runs := 1
	if labtest.Measuring() {
		runs = 5
	}
	var took []time.Duration
	prefix := hostPrefix(w.IPs[0])
	for i := range runs {
		victim := e.Nodes[i%len(e.Nodes)].Name
		// (steady counts the sessions of the suite's peers only; the
		// silent peer never comes up.)
		if err := poll.Until(ctx, 100*time.Millisecond, func() error { return e.frrHops(ctx, prefix, e.NodeAddrs(false)) }); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"bgpd", "bfdd"} {
			if err := e.FRR.FRR.Signal(d, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}
		thaw := func() {
			for _, d := range []string{"bgpd", "bfdd"} {
				_ = e.FRR.FRR.Signal(d, syscall.SIGCONT)
			}
		}
		start := time.Now()
		err := e.Speaker(victim).Terminate(shutdownBound)
		d := time.Since(start)
		thaw()
		if err != nil {
			t.Fatalf("%s's speaker did not stop within %v with a silent peer and a frozen FRR: %v\n%s", victim, shutdownBound, err, e.Speaker(victim).LogTail(20))
		}
		took = append(took, d)
		t.Logf("run %d: %s's speaker stopped %v after SIGTERM", i+1, victim, d.Round(time.Millisecond))
		if err := e.Speaker(victim).Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.API.Delete(ctx, silent); err != nil {
		t.Fatal(err)
	}
	if err := e.steady(ctx, prefix); err != nil {
		t.Fatal(err)
	}
	slices.Sort(took)
	t.Logf("MEASURE speaker stop with a silent peer and a frozen FRR: median %v, worst %v over %d runs",
		took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), len(took))
}
