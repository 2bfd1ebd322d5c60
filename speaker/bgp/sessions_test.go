package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/testkit"
)

// TestWrongPasswordThenFix: with a wrong TCP MD5 password the session stays
// down and Status says why; fixing the password re-creates that session
// only, the node's other session is not reset.
func TestWrongPasswordThenFix(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	withPassword := func(o *routers.SessionOptions) { o.Password = "right-one" }
	frr := l.startFRR(t, frrNeighbor(nodeV4, nodeASN, withPassword), frrNeighbor(nodeV6, nodeASN))
	sp := startSpeaker(t, l.reg, l.node, "speaker")

	md5 := nodePeer("md5", frrV4)
	md5.Password = "wrong-one"
	other := nodePeer("other", frrV6)
	d := Desired{RouterID: routerID, Peers: []Peer{md5, other}, Paths: map[string][]Path{
		"md5": {{Prefix: vip4}}, "other": {{Prefix: vip6}},
	}}
	sp.set(t, d)
	before := waitEstablished(ctx, t, frr, nodeV6)

	// Down for several connect attempts, and Status says what it sees.
	testkit.Holds(t, 6*time.Second, "session stays down with a wrong MD5 password", func() error {
		n, err := frr.BGPNeighbor(ctx, nodeV4)
		if err == nil && n.Established() {
			return errors.New("established")
		}
		return err
	})
	st, err := sp.status()
	if err != nil {
		t.Fatal(err)
	}
	if st["md5"].Established() || !strings.Contains(st["md5"].LastError, "i/o timeout") {
		t.Fatalf("status of the MD5 peer: %+v", st["md5"])
	}
	t.Logf("status with a wrong password: state %s, last error %q", st["md5"].State, st["md5"].LastError)

	md5.Password = "right-one"
	d.Peers[0] = md5
	sp.set(t, d)
	waitEstablished(ctx, t, frr, nodeV4)
	testkit.For(t, 10*time.Second, "path over the fixed session", func() error {
		_, err := frrPathFrom(ctx, frr, vip4, nodeV4)
		return err
	})
	assertNoReset(t, frr, before)
}

// TestChangedPeerRecreatesOnlyThatPeer: changing one peer's timers resets
// that session and no other.
func TestChangedPeerRecreatesOnlyThatPeer(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := l.startFRR(t, frrNeighbor(nodeV4, nodeASN), frrNeighbor(nodeV6, nodeASN))
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	a, b := nodePeer("a", frrV4), nodePeer("b", frrV6)
	d := Desired{RouterID: routerID, Peers: []Peer{a, b}, Paths: map[string][]Path{"a": {{Prefix: vip4}}, "b": {{Prefix: vip6}}}}
	sp.set(t, d)
	before := waitEstablished(ctx, t, frr, nodeV4, nodeV6)

	a.HoldTime, a.KeepaliveTime = 6*time.Second, 2*time.Second
	d.Peers[0] = a
	sp.set(t, d)
	testkit.For(t, 20*time.Second, "session a re-created with the new hold time", func() error {
		n, err := frr.BGPNeighbor(ctx, nodeV4)
		if err != nil {
			return err
		}
		if !n.Established() || n.ConnectionsEstablished <= before[nodeV4].ConnectionsEstablished {
			return fmt.Errorf("a: %s, %d connections", n.State, n.ConnectionsEstablished)
		}
		// FRR takes the lower hold time of the two OPENs: its own is 3 s.
		if n.HoldTimeMsecs != 3000 {
			return fmt.Errorf("a: hold time %d ms", n.HoldTimeMsecs)
		}
		_, err = frrPathFrom(ctx, frr, vip4, nodeV4)
		return err
	})
	delete(before, nodeV4)
	assertNoReset(t, frr, before)
	// The user is told: a's session went down because its settings
	// changed, and came back; b's only came up.
	testkit.For(t, 5*time.Second, "events: a up, down (re-created), up; b up", func() error {
		evs, err := sp.events()
		if err != nil {
			return err
		}
		var a, b []string
		for _, ev := range evs {
			s := "up"
			if !ev.Up {
				s = "down: " + ev.Reason
			}
			if ev.Peer == "a" {
				a = append(a, s)
			} else {
				b = append(b, s)
			}
		}
		if len(a) != 3 || a[0] != "up" || !strings.Contains(a[1], "re-created") || a[2] != "up" || len(b) != 1 || b[0] != "up" {
			return fmt.Errorf("a: %q, b: %q", a, b)
		}
		return nil
	})
}

// TestBFDDropsHungSpeaker: BFD at 100 ms x 3 comes up with FRR's bfdd;
// when the speaker process hangs (SIGSTOP), FRR drops its route within
// about a second, long before the 3 s hold timer.
func TestBFDDropsHungSpeaker(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	withBFD := func(o *routers.SessionOptions) {
		o.BFDProfile = "fast"
		o.Keepalive, o.Hold = 10*time.Second, 30*time.Second
	}
	frr := l.startFRR(t, frrNeighbor(nodeV4, nodeASN, withBFD))
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	p := nodePeer("tor", frrV4)
	p.HoldTime, p.KeepaliveTime = 30*time.Second, 10*time.Second
	p.BFD = &BFD{ReceiveInterval: bfdTestInterval, TransmitInterval: bfdTestInterval, DetectMultiplier: 3}
	sp.set(t, Desired{RouterID: routerID, Peers: []Peer{p}, Paths: map[string][]Path{"tor": {{Prefix: vip4}}}})
	waitEstablished(ctx, t, frr, nodeV4)
	testkit.For(t, 15*time.Second, "BFD up on both sides with the route in place", func() error {
		peers, err := frr.BFDPeers(ctx)
		if err != nil {
			return err
		}
		if len(peers) != 1 || peers[0].Status != "up" || peers[0].RemoteMultiplier != 3 || peers[0].RemoteTransmit != int(bfdTestInterval/time.Millisecond) {
			return fmt.Errorf("FRR BFD peers: %+v", peers)
		}
		st, err := sp.status()
		if err != nil {
			return err
		}
		if st["tor"].BFD != "up" {
			return fmt.Errorf("speaker BFD %q", st["tor"].BFD)
		}
		if m, err := sp.metrics(); err != nil {
			return err
		} else if !strings.Contains(m, `herald_bgp_bfd_up{peer="tor"} 1`) {
			return errors.New("BFD metric not up")
		}
		_, err = routers.KernelRouteFor(ctx, l.frr, vip4)
		return err
	})

	if err := sp.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	took := testkit.For(t, 5*time.Second, "route gone at FRR after SIGSTOP", func() error {
		if _, err := frr.BGPRoute(ctx, vip4); err == nil {
			return errStillUp
		}
		return nil
	})
	_ = sp.proc.Signal(syscall.SIGCONT)
	t.Logf("SIGSTOP -> route withdrawn at FRR by BFD in %v", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("BFD took %v to drop the route; 100 ms x 3 should take well under 2 s", took)
	}
}

// TestSIGTERMWithdrawsAtOnce: on SIGTERM, Run withdraws and closes the
// session with a Cease before the process exits.
func TestSIGTERMWithdrawsAtOnce(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := l.startFRR(t, frrNeighbor(nodeV4, nodeASN))
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	sp.set(t, Desired{RouterID: routerID, Peers: []Peer{nodePeer("tor", frrV4)}, Paths: map[string][]Path{"tor": {{Prefix: vip4}, {Prefix: vip6}}}})
	waitEstablished(ctx, t, frr, nodeV4)
	testkit.For(t, 10*time.Second, "route at FRR", func() error {
		_, err := frr.BGPRoute(ctx, vip4)
		return err
	})
	if err := sp.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took := testkit.For(t, 5*time.Second, "route gone at FRR after SIGTERM", func() error {
		if _, err := frr.BGPRoute(ctx, vip4); err == nil {
			return errStillUp
		}
		return nil
	})
	t.Logf("SIGTERM -> withdrawal at FRR in %v (polling every 50 ms through vtysh)", took.Round(time.Millisecond))
	select {
	case <-sp.proc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("speaker did not exit after SIGTERM")
	}
	if err := sp.proc.Wait(); err != nil {
		t.Fatalf("speaker exit: %v", err)
	}
	n, err := frr.BGPNeighbor(ctx, nodeV4)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.ToLower(n.LastResetDueTo), "notification") {
		t.Errorf("FRR saw the session end by %q, want a NOTIFICATION (Cease)", n.LastResetDueTo)
	}
	if took > time.Second {
		t.Errorf("withdrawal took %v", took)
	}
}

// TestGracefulRestartKeepsRoutes: a peer with graceful restart advertises
// the capability with its restart time; when the speaker stops, the router
// keeps the node's route (stale) instead of withdrawing it.
func TestGracefulRestartKeepsRoutes(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := l.startFRR(t, frrNeighbor(nodeV4, nodeASN))
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	p := nodePeer("tor", frrV4)
	p.GracefulRestart, p.RestartTime = true, 30*time.Second
	sp.set(t, Desired{RouterID: routerID, Peers: []Peer{p}, Paths: map[string][]Path{"tor": {{Prefix: vip4}}}})
	n := waitEstablished(ctx, t, frr, nodeV4)[nodeV4]
	if n.GracefulRestart.RemoteMode != "Restart" || n.GracefulRestart.Timers.ReceivedRestartTimer != 30 {
		t.Fatalf("FRR sees graceful restart %+v, want mode Restart with 30 s", n.GracefulRestart)
	}
	testkit.For(t, 10*time.Second, "route at FRR", func() error {
		_, err := frrPathFrom(ctx, frr, vip4, nodeV4)
		return err
	})
	if err := sp.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-sp.proc.Done()
	testkit.For(t, 5*time.Second, "FRR holds the route as stale", func() error {
		nb, err := frr.BGPNeighbor(ctx, nodeV4)
		if err != nil {
			return err
		}
		path, err := frrPathFrom(ctx, frr, vip4, nodeV4)
		if err != nil {
			return err
		}
		if nb.Established() || !path.Stale {
			return fmt.Errorf("neighbor %s, path %+v", nb.State, path)
		}
		return nil
	})
	testkit.Holds(t, 2*time.Second, "route stays in FRR's kernel during the restart time", func() error {
		_, err := routers.KernelRouteFor(ctx, l.frr, vip4)
		return err
	})
}

// TestEBGPMultihop: an eBGP session to a router two hops away stays down
// with the default TTL of 1 and comes up with EBGPMultiHop; the route's
// next hop is the node's own address on the far link.
func TestEBGPMultihop(t *testing.T) {
	l := newLab(t)
	l.addRoutedPath(t)
	ctx := l.ctx
	nodeFar, frrFar := netip.MustParseAddr("10.30.0.2"), netip.MustParseAddr("10.40.0.2")
	frr := l.startFRR(t, frrNeighbor(nodeFar, nodeASN, func(o *routers.SessionOptions) { o.EBGPMultihop = 255 }))
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	p := nodePeer("far", frrFar)
	d := Desired{RouterID: routerID, Peers: []Peer{p}, Paths: map[string][]Path{"far": {{Prefix: vip4}}}}
	sp.set(t, d)
	testkit.Holds(t, 4*time.Second, "no session with TTL 1 across a router", func() error {
		n, err := frr.BGPNeighbor(ctx, nodeFar)
		if err == nil && n.Established() {
			return errors.New("established")
		}
		return err
	})
	p.EBGPMultiHop = true
	d.Peers[0] = p
	sp.set(t, d)
	waitEstablished(ctx, t, frr, nodeFar)
	testkit.For(t, 10*time.Second, "route via the node's far address in FRR's kernel", func() error {
		k, err := routers.KernelRouteFor(ctx, l.frr, vip4)
		if err != nil {
			return err
		}
		if gw := k.Gateways(); len(gw) != 1 || gw[0] != "10.40.0.1" {
			// FRR resolves next hop 10.30.0.2 through mid (10.40.0.1).
			return fmt.Errorf("gateways %v", gw)
		}
		path, err := frrPathFrom(ctx, frr, vip4, nodeFar)
		if err != nil {
			return err
		}
		if len(path.NextHops) == 0 || path.NextHops[0].IP != nodeFar {
			return fmt.Errorf("next hop %+v", path.NextHops)
		}
		return nil
	})
}
