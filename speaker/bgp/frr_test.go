package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/testkit"
)

var (
	vip4  = pfx("198.51.100.10/32")
	vip4b = pfx("198.51.100.20/32")
	vip6  = pfx("2001:db8:100::10/128")
)

// TestSessionsAndPathsAtFRR checks, from FRR's own view, eBGP and iBGP
// sessions over IPv4 and an eBGP session over IPv6; per-peer attributes
// (communities, large communities, local-pref on iBGP); IPv6 prefixes over
// the IPv4 session and IPv4 prefixes over the IPv6 session with usable next
// hops (routes in FRR's kernel); withdrawal; and that changing paths never
// resets a session.
func TestSessionsAndPathsAtFRR(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := l.startFRR(t,
		frrNeighbor(nodeV4, nodeASN),
		frrNeighbor(nodeV4b, routerASN), // iBGP
		frrNeighbor(nodeV6, nodeASN),
	)
	sp := startSpeaker(t, l.reg, l.node, "speaker")

	ibgp := nodePeer("ibgp4", frrV4b)
	ibgp.MyASN, ibgp.SourceAddress = routerASN, nodeV4b
	d := Desired{
		RouterID: routerID,
		Peers:    []Peer{nodePeer("ebgp4", frrV4), ibgp, nodePeer("ebgp6", frrV6)},
		Paths: map[string][]Path{
			"ebgp4": {
				{Prefix: vip4, Communities: []uint32{Community(64513, 100)}, LargeCommunities: []LargeCommunity{{64513, 1, 2}}},
				{Prefix: vip6},
			},
			"ibgp4": {{Prefix: vip4, Communities: []uint32{Community(64512, 200)}, LocalPref: u32(150)}},
			"ebgp6": {{Prefix: vip6}, {Prefix: vip4b}},
		},
	}
	sp.set(t, d)
	before := waitEstablished(ctx, t, frr, nodeV4, nodeV4b, nodeV6)

	// Per-peer attributes, as FRR received them.
	testkit.For(t, 10*time.Second, "paths with their attributes at FRR", func() error {
		e, err := frrPathFrom(ctx, frr, vip4, nodeV4)
		if err != nil {
			return err
		}
		if !slices.Equal(e.Communities, []string{"64513:100"}) || !slices.Equal(e.LargeCommunities, []string{"64513:1:2"}) || e.ASPath != "64513" {
			return fmt.Errorf("eBGP path: %+v", e)
		}
		i, err := frrPathFrom(ctx, frr, vip4, nodeV4b)
		if err != nil {
			return err
		}
		if i.PeerType != "internal" || i.LocalPref == nil || *i.LocalPref != 150 || !slices.Equal(i.Communities, []string{"64512:200"}) {
			return fmt.Errorf("iBGP path: %+v", i)
		}
		// Local-pref 150 makes the iBGP path best; its next hop is the session's source address.
		if !i.Best || len(i.NextHops) == 0 || i.NextHops[0].IP != nodeV4b {
			return fmt.Errorf("iBGP path not best via %v: %+v", nodeV4b, i)
		}
		return nil
	})

	// Cross-family prefixes have next hops FRR can use: the routes are in its kernel.
	testkit.For(t, 10*time.Second, "routes in FRR's kernel", func() error {
		for _, c := range []struct {
			prefix netip.Prefix
			via    []netip.Addr
		}{{vip4, []netip.Addr{nodeV4b}}, {vip6, []netip.Addr{nodeV6}}, {vip4b, []netip.Addr{nodeV4}}} {
			k, err := routers.KernelRouteFor(ctx, l.frr, c.prefix)
			if err != nil {
				return err
			}
			for _, gw := range k.Gateways() {
				if !slices.Contains(c.via, netip.MustParseAddr(gw)) {
					return fmt.Errorf("%v via %v, want %v", c.prefix, k.Gateways(), c.via)
				}
			}
		}
		for _, peer := range []netip.Addr{nodeV4, nodeV6} {
			p, err := frrPathFrom(ctx, frr, vip6, peer)
			if err != nil {
				return err
			}
			if len(p.NextHops) == 0 || p.NextHops[0].IP != nodeV6 || !p.NextHops[0].Accessible {
				return fmt.Errorf("IPv6 prefix from %v has next hops %+v, want %v", peer, p.NextHops, nodeV6)
			}
		}
		return nil
	})

	// The node's own view.
	testkit.For(t, 5*time.Second, "speaker status", func() error {
		st, err := sp.status()
		if err != nil {
			return err
		}
		want := map[string]int{"ebgp4": 2, "ibgp4": 1, "ebgp6": 2}
		for name, n := range want {
			if !st[name].Established() || st[name].Advertised != n || st[name].UpdatesSent == 0 {
				return fmt.Errorf("%s: %+v", name, st[name])
			}
		}
		evs, err := sp.events()
		if err != nil {
			return err
		}
		ups := 0
		for _, e := range evs {
			if e.Up {
				ups++
			}
		}
		if ups != 3 {
			return fmt.Errorf("want 3 session-up events, got %+v", evs)
		}
		m, err := sp.metrics()
		if err != nil {
			return err
		}
		for _, line := range []string{
			`herald_bgp_session_up{peer="ebgp4"} 1`,
			`herald_bgp_session_up{peer="ibgp4"} 1`,
			`herald_bgp_prefixes_advertised{peer="ebgp6"} 2`,
		} {
			if !strings.Contains(m, line+"\n") {
				return fmt.Errorf("metrics lack %q", line)
			}
		}
		return nil
	})

	// Withdraw one path and change another's attributes: FRR follows,
	// and no session is reset.
	d.Paths["ebgp4"] = d.Paths["ebgp4"][1:]
	d.Paths["ibgp4"] = []Path{{Prefix: vip4, Communities: []uint32{Community(64512, 300)}, LocalPref: u32(200)}}
	sp.set(t, d)
	testkit.For(t, 10*time.Second, "withdrawal and new attributes at FRR", func() error {
		if err := frrLacksPathFrom(ctx, frr, vip4, nodeV4); err != nil {
			return err
		}
		i, err := frrPathFrom(ctx, frr, vip4, nodeV4b)
		if err != nil {
			return err
		}
		if i.LocalPref == nil || *i.LocalPref != 200 || !slices.Equal(i.Communities, []string{"64512:300"}) {
			return fmt.Errorf("iBGP path not updated: %+v", i)
		}
		return nil
	})
	assertNoReset(t, frr, before)
}

// assertNoReset fails if any session established in before was reset since.
func assertNoReset(t *testing.T, frr *routers.FRR, before map[netip.Addr]routers.BGPNeighbor) {
	t.Helper()
	after, err := frr.BGPNeighbors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for addr, b := range before {
		if !b.Established() {
			continue
		}
		a := after[addr]
		if !a.Established() || a.ConnectionsEstablished != b.ConnectionsEstablished || a.ConnectionsDropped != b.ConnectionsDropped {
			t.Errorf("session %v was reset: before %d up/%d dropped, now %q %d up/%d dropped (last reset: %s)",
				addr, b.ConnectionsEstablished, b.ConnectionsDropped, a.State, a.ConnectionsEstablished, a.ConnectionsDropped, a.LastResetDueTo)
		}
	}
}

var errStillUp = errors.New("still up")

// TestFRRListenRange: FRR configured with a listen range instead of a
// neighbor per node (how the lab lets nodes come and go) accepts the
// node's session, and dropping the peer from Desired ends it.
func TestFRRListenRange(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := l.startFRRWith(t, routers.FRRConfig{PeerGroups: []routers.PeerGroup{{
		Name:           "NODES",
		SessionOptions: routers.SessionOptions{RemoteAS: routers.External, Keepalive: time.Second, Hold: 3 * time.Second},
		ListenRanges:   []netip.Prefix{pfx("10.10.0.0/24")},
	}}})
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	d := Desired{RouterID: routerID, Peers: []Peer{nodePeer("tor", frrV4)}, Paths: map[string][]Path{"tor": {{Prefix: vip4}}}}
	sp.set(t, d)
	n := waitEstablished(ctx, t, frr, nodeV4)[nodeV4]
	if n.PeerGroup != "NODES" {
		t.Fatalf("session not from the listen range: %+v", n)
	}
	testkit.For(t, 10*time.Second, "route at FRR", func() error {
		_, err := frrPathFrom(ctx, frr, vip4, nodeV4)
		return err
	})
	sp.set(t, Desired{RouterID: routerID})
	testkit.For(t, 10*time.Second, "dynamic neighbor gone with its route", func() error {
		if _, err := frr.BGPNeighbor(ctx, nodeV4); err == nil {
			return errStillUp
		}
		return frrLacksPathFrom(ctx, frr, vip4, nodeV4)
	})
	if st, err := sp.status(); err != nil || len(st) != 0 {
		t.Fatalf("status after removing the peer: %+v %v", st, err)
	}
}
