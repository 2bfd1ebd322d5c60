package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/poll"
)

// nextHopDrop applies f to victim and returns how long FRR's kernel kept
// victim as a next hop of prefix (timestamped by the route watcher), or
// an error if it did not drop it within limit. FRR must route prefix via
// every node when it is called. The fault stays in place.
func (e *env) nextHopDrop(ctx context.Context, prefix netip.Prefix, victim string, f lab.NodeFault, limit time.Duration) (time.Duration, error) {
	rest := slices.DeleteFunc(e.NodeAddrs(prefix.Addr().Is6()), func(a netip.Addr) bool { return a == e.Node(victim).IPv4 || a == e.Node(victim).IPv6 })
	start := time.Now()
	if err := f.Inject(ctx, e.Lab, victim); err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	st, err := e.w.Wait(wctx, prefix, func(st routers.RouteState) bool {
		return st.Present && st.Since.After(start) && slices.Equal(st.Gateways, rest)
	})
	if err != nil {
		return 0, fmt.Errorf("%s on %s: FRR's kernel still routes %v via %v after %v", f.What, victim, prefix, st.Gateways, limit)
	}
	return st.Since.Sub(start), nil
}

// recover undoes f and waits until every session is up and FRR routes
// prefix via every node again.
func (e *env) recover(ctx context.Context, prefix netip.Prefix, victim string, f lab.NodeFault) error {
	if err := f.Restore(ctx, e.Lab, victim); err != nil {
		return err
	}
	return e.steady(ctx, prefix)
}

// steady waits until every session is up (BFD too) and FRR routes prefix
// via every node.
func (e *env) steady(ctx context.Context, prefix netip.Prefix) error {
	want := e.NodeAddrs(prefix.Addr().Is6())
	return poll.Until(ctx, 100*time.Millisecond, func() error {
		if err := e.sessionsUp(ctx); err != nil {
			return err
		}
		if err := e.bfdUp(ctx); err != nil {
			return err
		}
		return e.frrHops(ctx, prefix, want)
	})
}

// bfdUp checks that FRR's BFD sessions with the nodes are up when the
// BGPPeer uses BFD (SpeakerStatus shows a BFD state then).
func (e *env) bfdUp(ctx context.Context) error {
	s, err := e.session(ctx, e.Nodes[0].Name, peerFRR4)
	if err != nil || s.BFD == "" {
		return err
	}
	peers, err := e.FRR.FRR.BFDPeers(ctx)
	if err != nil {
		return err
	}
	up := map[string]bool{}
	for _, p := range peers {
		up[p.Peer] = p.Status == "up"
	}
	for _, n := range e.Nodes {
		if !up[n.IPv4.String()] {
			return fmt.Errorf("FRR's BFD session with %s is not up: %+v", n.Name, peers)
		}
	}
	return nil
}
