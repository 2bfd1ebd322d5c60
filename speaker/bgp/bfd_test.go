package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/testkit"
)

// bfdPeerFast is the node's side of a BFD session at 100 ms x 3.
func bfdPeerFast(name string, addr netip.Addr) Peer {
	p := nodePeer(name, addr)
	p.HoldTime, p.KeepaliveTime = 30*time.Second, 10*time.Second
	p.BFD = &BFD{ReceiveInterval: bfdTestInterval, TransmitInterval: bfdTestInterval, DetectMultiplier: 3}
	return p
}

// withFastBFD is FRR's side: the "fast" profile and long BGP timers, so
// only BFD can bring the session down quickly.
func withFastBFD(o *routers.SessionOptions) {
	o.BFDProfile = "fast"
	o.Keepalive, o.Hold = 10*time.Second, 30*time.Second
}

// TestBFDNewSessionDoesNotFlap: a new BGP session with BFD comes up once
// and stays up while BFD comes up with FRR's bfdd, both for the first
// session FRR sees from the node and after the speaker restarts. RFC 5882
// (3.2): a BFD session that has never been Up must not take BGP down.
func TestBFDNewSessionDoesNotFlap(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := l.startFRR(t, frrNeighbor(nodeV4, nodeASN, withFastBFD))
	d := Desired{RouterID: routerID, Peers: []Peer{bfdPeerFast("tor", frrV4)}, Paths: map[string][]Path{"tor": {{Prefix: vip4}}}}
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	sp.set(t, d)
	waitEstablished(ctx, t, frr, nodeV4)
	steadyWithBFD(ctx, t, frr, sp, 1, 0)

	// A restarted speaker: FRR's BFD session already has its addresses.
	if err := sp.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-sp.proc.Done()
	sp = startSpeaker(t, l.reg, l.node, "speaker-again")
	sp.set(t, d)
	testkit.For(t, 30*time.Second, "second session established", func() error {
		n, err := frr.BGPNeighbor(ctx, nodeV4)
		if err != nil {
			return err
		}
		if !n.Established() || n.ConnectionsEstablished < 2 {
			return fmt.Errorf("%s, %d established", n.State, n.ConnectionsEstablished)
		}
		return nil
	})
	steadyWithBFD(ctx, t, frr, sp, 2, 1)
}

// steadyWithBFD checks for 10 s that FRR's session with the node stays up
// with the given counts of established and dropped connections, that
// FRR's BFD session comes up in that time, and then that the speaker saw
// one session-up event and no down.
func steadyWithBFD(ctx context.Context, t *testing.T, frr *routers.FRR, sp *speaker, established, dropped int) {
	t.Helper()
	const quiet = 10 * time.Second
	bfdUp := false
	testkit.Holds(t, quiet, "the session stays up", func() error {
		n, err := frr.BGPNeighbor(ctx, nodeV4)
		if err != nil {
			return err
		}
		if !n.Established() || n.ConnectionsEstablished != established || n.ConnectionsDropped != dropped {
			return fmt.Errorf("FRR's session: %s, %d established, %d dropped (last reset: %s)",
				n.State, n.ConnectionsEstablished, n.ConnectionsDropped, n.LastResetDueTo)
		}
		if !bfdUp {
			peers, err := frr.BFDPeers(ctx)
			if err != nil {
				return err
			}
			bfdUp = len(peers) == 1 && peers[0].Status == "up"
		}
		return nil
	})
	if !bfdUp {
		peers, _ := frr.BFDPeers(ctx)
		t.Fatalf("BFD not up at FRR within %v: %+v", quiet, peers)
	}
	testkit.For(t, 5*time.Second, "speaker sees BFD up, one session-up event and no down", func() error {
		st, err := sp.status()
		if err != nil {
			return err
		}
		if st["tor"].BFD != "up" || !st["tor"].Established() {
			return fmt.Errorf("speaker status %+v", st["tor"])
		}
		evs, err := sp.events()
		if err != nil {
			return err
		}
		if len(evs) != 1 || !evs[0].Up {
			return fmt.Errorf("events %+v, want one session-up", evs)
		}
		return nil
	})
}
