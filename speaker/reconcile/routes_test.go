package reconcile

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/heraldlb/herald/speaker/advertise"
	"github.com/heraldlb/herald/speaker/bgp"
)

// The route index sends only what a Service change touched: a prefix two
// Services share (an aggregate) stays while one of them uses it, with the
// union of their communities; peers not in use are left out.
func TestRouteIndexChanges(t *testing.T) {
	agg := netip.MustParsePrefix("203.0.113.0/24")
	host := netip.MustParsePrefix("203.0.113.7/32")
	x := newRouteIndex()
	inUse := map[string]bool{"frr": true}
	show := func(u map[string]bgp.PathUpdate) string { return fmt.Sprint(u) }

	x.setService("a", []advertise.Route{{Peer: "frr", Prefix: agg, Communities: []uint32{1}}, {Peer: "gone", Prefix: agg}})
	x.setService("b", []advertise.Route{{Peer: "frr", Prefix: agg, Communities: []uint32{2}}, {Peer: "frr", Prefix: host}})
	if got, want := show(x.takeChanges(inUse)), "map[frr:{[{203.0.113.0/24 [1 2] [] <nil>} {203.0.113.7/32 [] [] <nil>}] []}]"; got != want {
		t.Fatalf("first changes %s, want %s", got, want)
	}
	if u := x.takeChanges(inUse); u != nil {
		t.Fatalf("changes again without a change: %v", u)
	}
	x.setService("b", []advertise.Route{{Peer: "frr", Prefix: agg, Communities: []uint32{2}}, {Peer: "frr", Prefix: host}})
	if u := x.takeChanges(inUse); u != nil {
		t.Fatalf("an unchanged Service changed routes: %v", u)
	}
	x.setService("b", nil)
	if got, want := show(x.takeChanges(inUse)), "map[frr:{[{203.0.113.0/24 [1] [] <nil>}] [203.0.113.7/32]}]"; got != want {
		t.Fatalf("after b left: %s, want %s", got, want)
	}
	x.setService("a", nil)
	if got, want := show(x.takeChanges(inUse)), "map[frr:{[] [203.0.113.0/24]}]"; got != want {
		t.Fatalf("after a left: %s, want %s", got, want)
	}
	if all := x.all(); len(all) != 0 {
		t.Fatalf("routes left: %v", all)
	}
}
