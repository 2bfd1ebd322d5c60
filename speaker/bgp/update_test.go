package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testkit"
)

// TestUpdateMergesIntoThePendingState: an Update made while a Set is
// pending is folded into it; Updates after the Set was taken queue as
// changes by prefix, the last one winning, and a Set drops them (it
// replaces everything).
func TestUpdateMergesIntoThePendingState(t *testing.T) {
	r := New(Options{})
	a, b := pfx("203.0.113.1/32"), pfx("203.0.113.2/32")
	r.Set(Desired{RouterID: routerID, Paths: map[string][]Path{"p": {{Prefix: a}}}})
	r.Update(map[string]PathUpdate{"p": {Set: []Path{{Prefix: b, Communities: []uint32{2, 1, 2}}}, Withdraw: []netip.Prefix{a}}, "q": {Set: []Path{{Prefix: a}}}})
	d, u := r.takeDesired()
	if u != nil || len(d.paths["p"]) != 1 || !slices.Equal(d.paths["p"][b].Communities, []uint32{1, 2}) || len(d.paths["q"]) != 1 {
		t.Fatalf("pending Set after Update: %+v, updates %v", d.paths, u)
	}

	r.Update(map[string]PathUpdate{"p": {Set: []Path{{Prefix: a}}}})
	r.Update(map[string]PathUpdate{"p": {Withdraw: []netip.Prefix{a}, Set: []Path{{Prefix: pfx("203.0.113.3/24")}}}})
	d, u = r.takeDesired()
	if d != nil || len(u["p"]) != 2 || u["p"][a] != nil || u["p"][pfx("203.0.113.0/24")] == nil {
		t.Fatalf("queued updates: %v (Set %v)", u, d)
	}
	r.Update(map[string]PathUpdate{"p": {Set: []Path{{Prefix: a}}}})
	r.Set(Desired{RouterID: routerID})
	if d, u = r.takeDesired(); d == nil || u != nil {
		t.Fatalf("a Set must drop earlier updates: %v %v", d, u)
	}
}

// TestUpdateAtFRR: Updates announce, change and withdraw single paths
// over a running session without a reset, paths for a peer that does not
// run yet wait for it, and a later Set still replaces everything.
func TestUpdateAtFRR(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := l.startFRR(t, frrNeighbor(nodeV4, nodeASN), frrNeighbor(nodeV6, nodeASN))
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	d := Desired{RouterID: routerID, Peers: []Peer{nodePeer("a", frrV4)}, Paths: map[string][]Path{"a": {{Prefix: vip4}}}}
	sp.set(t, d)
	before := waitEstablished(ctx, t, frr, nodeV4)
	testkit.For(t, 10*time.Second, "path from the Set", func() error { _, err := frrPathFrom(ctx, frr, vip4, nodeV4); return err })

	sp.update(t, map[string]PathUpdate{
		"a": {Set: []Path{{Prefix: vip4b, Communities: []uint32{Community(64513, 7)}}, {Prefix: vip6}}},
		"b": {Set: []Path{{Prefix: vip4b}}}, // b does not run yet
	})
	testkit.For(t, 10*time.Second, "paths added by Update", func() error {
		p, err := frrPathFrom(ctx, frr, vip4b, nodeV4)
		if err != nil {
			return err
		}
		if !slices.Equal(p.Communities, []string{"64513:7"}) {
			return fmt.Errorf("communities %v", p.Communities)
		}
		_, err = frrPathFrom(ctx, frr, vip6, nodeV4)
		return err
	})
	sp.update(t, map[string]PathUpdate{"a": {Withdraw: []netip.Prefix{vip4}, Set: []Path{{Prefix: vip4b}}}})
	testkit.For(t, 10*time.Second, "one path withdrawn, one changed", func() error {
		if err := frrLacksPathFrom(ctx, frr, vip4, nodeV4); err != nil {
			return err
		}
		p, err := frrPathFrom(ctx, frr, vip4b, nodeV4)
		if err == nil && len(p.Communities) != 0 {
			err = fmt.Errorf("communities still %v", p.Communities)
		}
		return err
	})
	assertNoReset(t, frr, before)

	// Peer b appears with the next Set, which carries b's paths again: the
	// earlier Update for b is part of the state the caller keeps.
	d.Peers = append(d.Peers, nodePeer("b", frrV6))
	d.Paths = map[string][]Path{"a": {{Prefix: vip4b}}, "b": {{Prefix: vip4b}}}
	sp.set(t, d)
	waitEstablished(ctx, t, frr, nodeV6)
	testkit.For(t, 10*time.Second, "b's path and a's state after the Set", func() error {
		if err := frrLacksPathFrom(ctx, frr, vip6, nodeV4); err != nil {
			return err
		}
		_, err := frrPathFrom(ctx, frr, vip4b, nodeV6)
		return err
	})
	assertNoReset(t, frr, before)
}
