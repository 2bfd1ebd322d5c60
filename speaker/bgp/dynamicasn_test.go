package bgp

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/testkit"
)

func TestCheckPeerAS(t *testing.T) {
	fixed := Peer{MyASN: 64513, PeerASN: 64512}
	ext := Peer{MyASN: 64513, DynamicASN: DynamicExternal}
	in := Peer{MyASN: 64513, DynamicASN: DynamicInternal}
	for _, c := range []struct {
		name string
		p    Peer
		got  uint32
		ok   bool
	}{
		{"fixed AS: gobgp checked it", fixed, 64512, true},
		{"external, other AS", ext, 64512, true},
		{"external, own AS", ext, 64513, false},
		{"external, AS unknown", ext, 0, false},
		{"internal: gobgp checked it", in, 64513, true},
	} {
		if err := checkPeerAS(c.p, c.got); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if ext.peerASN() != 0 || in.peerASN() != 64513 || fixed.peerASN() != 64512 {
		t.Errorf("AS given to gobgp: external %d, internal %d, fixed %d", ext.peerASN(), in.peerASN(), fixed.peerASN())
	}
}

// TestDynamicExternalRefusesInternalPeer: a peer with dynamicASN external
// whose OPEN carries the node's own AS never gets a route: the node resets
// the session and says why. Made internal, the same peer gets the route.
func TestDynamicExternalRefusesInternalPeer(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := l.startFRR(t, frrNeighbor(nodeV4, routerASN)) // FRR expects iBGP
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	p := nodePeer("tor", frrV4)
	p.MyASN, p.PeerASN, p.DynamicASN = routerASN, 0, DynamicExternal
	d := Desired{RouterID: routerID, Peers: []Peer{p}, Paths: map[string][]Path{"tor": {{Prefix: vip4}}}}
	sp.set(t, d)
	testkit.For(t, 20*time.Second, "session refused with the reason", func() error {
		st, err := sp.status()
		if err != nil {
			return err
		}
		nb, err := frr.BGPNeighbor(ctx, nodeV4)
		if err != nil {
			return err
		}
		if s := st["tor"]; !strings.Contains(s.LastError, "the node's own AS") || s.PeerASN != routerASN || nb.ConnectionsEstablished == 0 {
			return fmt.Errorf("node %+v, FRR established %d times", s, nb.ConnectionsEstablished)
		}
		return nil
	})
	testkit.Holds(t, 3*time.Second, "no route and no up event while refused", func() error {
		if err := frrLacksPathFrom(ctx, frr, vip4, nodeV4); err != nil {
			return err
		}
		nb, err := frr.BGPNeighbor(ctx, nodeV4)
		if err != nil {
			return err
		}
		if nb.MessageStats.UpdatesRecv != 0 {
			return fmt.Errorf("FRR received %d UPDATEs", nb.MessageStats.UpdatesRecv)
		}
		evs, err := sp.events()
		if err != nil {
			return err
		}
		if len(evs) != 0 {
			return fmt.Errorf("events %+v", evs)
		}
		return nil
	})

	p.DynamicASN = DynamicInternal
	d.Peers = []Peer{p}
	sp.set(t, d)
	waitEstablished(ctx, t, frr, nodeV4)
	testkit.For(t, 10*time.Second, "route at FRR over the internal session", func() error {
		_, err := frrPathFrom(ctx, frr, vip4, nodeV4)
		return err
	})
}

// TestDynamicExternalAtFRR: the node learns an eBGP peer's AS from its
// OPEN and sends the route only then.
func TestDynamicExternalAtFRR(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := l.startFRR(t, frrNeighbor(nodeV4, nodeASN, func(o *routers.SessionOptions) { o.RemoteAS = routers.External }))
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	p := nodePeer("tor", frrV4)
	p.PeerASN, p.DynamicASN = 0, DynamicExternal
	sp.set(t, Desired{RouterID: routerID, Peers: []Peer{p}, Paths: map[string][]Path{"tor": {{Prefix: vip4}}}})
	waitEstablished(ctx, t, frr, nodeV4)
	testkit.For(t, 10*time.Second, "route at FRR and the learnt AS", func() error {
		path, err := frrPathFrom(ctx, frr, vip4, nodeV4)
		if err != nil {
			return err
		}
		st, err := sp.status()
		if err != nil {
			return err
		}
		if path.ASPath != "64513" || st["tor"].PeerASN != routerASN {
			return fmt.Errorf("AS path %q, node status %+v", path.ASPath, st["tor"])
		}
		return nil
	})
}
