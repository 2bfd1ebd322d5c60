package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/testkit"
)

// TestInteropWithBIRD: the same seam against BIRD 2 over IPv4 and IPv6
// sessions: paths arrive with their communities and usable next hops
// (routes in BIRD's kernel), withdrawals work, and path changes leave the
// sessions alone (BIRD's state-change time stays the same).
func TestInteropWithBIRD(t *testing.T) {
	l := newLab(t)
	l.addBIRDLink(t)
	ctx := l.ctx
	bird := l.startBIRD(t, routers.BIRDConfig{
		Name: "tor2", ASN: routerASN, RouterID: birdV4,
		Neighbors: []routers.BIRDNeighbor{
			{Name: "node4", Address: nodeBV4, ASN: nodeASN, ConnectRetry: time.Second},
			{Name: "node6", Address: nodeBV6, ASN: nodeASN, ConnectRetry: time.Second},
		},
	})
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	d := Desired{
		RouterID: routerID,
		Peers:    []Peer{nodePeer("bird4", birdV4), nodePeer("bird6", birdV6)},
		Paths: map[string][]Path{
			"bird4": {{Prefix: vip4, Communities: []uint32{Community(64513, 100)}, LargeCommunities: []LargeCommunity{{64513, 7, 8}}}, {Prefix: vip6}},
			"bird6": {{Prefix: vip6}, {Prefix: vip4b}},
		},
	}
	sp.set(t, d)

	var first map[string]routers.BIRDProtocol
	testkit.For(t, 30*time.Second, "BIRD sessions established", func() error {
		first = map[string]routers.BIRDProtocol{}
		for _, name := range []string{"node4", "node6"} {
			p, err := bird.Protocol(ctx, name)
			if err != nil {
				return err
			}
			if !p.Established() {
				return fmt.Errorf("%s: %s %s", name, p.BGPState, p.LastError)
			}
			first[name] = p
		}
		return nil
	})

	testkit.For(t, 10*time.Second, "routes at BIRD and in its kernel", func() error {
		rts, err := bird.Routes(ctx, vip4)
		if err != nil {
			return err
		}
		r := rts[0]
		if r.Protocol != "node4" || !slices.Equal(r.Communities, []string{"64513:100"}) || !slices.Equal(r.LargeCommunities, []string{"64513:7:8"}) || r.ASPath != "64513" {
			return fmt.Errorf("route %v: %+v", vip4, r)
		}
		for _, c := range []struct {
			prefix netip.Prefix
			via    netip.Addr
		}{{vip4, nodeBV4}, {vip6, nodeBV6}, {vip4b, nodeBV4}} {
			rts, err := bird.Routes(ctx, c.prefix)
			if err != nil {
				return err
			}
			if len(rts[0].Via) == 0 || rts[0].Via[0].Addr != c.via {
				return fmt.Errorf("BIRD: %v via %+v, want %v", c.prefix, rts[0].Via, c.via)
			}
			k, err := routers.KernelRouteFor(ctx, l.bird, c.prefix)
			if err != nil {
				return err
			}
			if !slices.Contains(k.Gateways(), c.via.String()) {
				return fmt.Errorf("BIRD kernel: %v via %v, want %v", c.prefix, k.Gateways(), c.via)
			}
		}
		// The IPv6 prefix came over both sessions.
		if rts, err := bird.Routes(ctx, vip6); err != nil {
			return fmt.Errorf("want %v from both sessions: %w", vip6, err)
		} else if len(rts) != 2 {
			return fmt.Errorf("want %v from both sessions: %+v", vip6, rts)
		}
		return nil
	})

	d.Paths["bird4"] = []Path{{Prefix: vip4, Communities: []uint32{Community(64513, 999)}}}
	sp.set(t, d)
	testkit.For(t, 10*time.Second, "withdrawal and new communities at BIRD", func() error {
		rts, err := bird.Routes(ctx, vip6)
		if err != nil {
			return err
		}
		if len(rts) != 1 || rts[0].Protocol != "node6" {
			return fmt.Errorf("%v still from node4: %+v", vip6, rts)
		}
		rts, err = bird.Routes(ctx, vip4)
		if err != nil {
			return err
		}
		if !slices.Equal(rts[0].Communities, []string{"64513:999"}) || len(rts[0].LargeCommunities) != 0 {
			return fmt.Errorf("%v: %+v", vip4, rts[0])
		}
		return nil
	})
	for name, was := range first {
		p, err := bird.Protocol(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if !was.SameSession(p) {
			t.Errorf("BIRD %s changed state: since %s, now %s (%s)", name, was.Since, p.Since, p.BGPState)
		}
	}
}
