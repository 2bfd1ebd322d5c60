package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
)

// nodeFault is one way a node fails, and how to undo it.
type nodeFault struct {
	name       string
	do, undo   func(ctx context.Context, e *env, node string) error
	closesConn bool // the speaker's TCP sessions are closed by its kernel
}

var (
	faultKill = nodeFault{name: "SIGKILL", closesConn: true,
		do:   func(_ context.Context, e *env, n string) error { return e.speaker(n).Kill() },
		undo: func(_ context.Context, e *env, n string) error { return e.speaker(n).Start() }}
	faultStop = nodeFault{name: "SIGSTOP",
		do:   func(_ context.Context, e *env, n string) error { return e.speaker(n).Pause() },
		undo: func(_ context.Context, e *env, n string) error { return e.speaker(n).Resume() }}
	faultCut = nodeFault{name: "link cut",
		do:   func(ctx context.Context, e *env, n string) error { return e.CutLink(ctx, n) },
		undo: func(ctx context.Context, e *env, n string) error { return e.RestoreLink(ctx, n) }}
	faultTerm = nodeFault{name: "SIGTERM", closesConn: true,
		do:   func(_ context.Context, e *env, n string) error { return e.speaker(n).Terminate(10 * time.Second) },
		undo: func(_ context.Context, e *env, n string) error { return e.speaker(n).Start() }}
)

func (e *env) speaker(node string) interface {
	Kill() error
	Pause() error
	Resume() error
	Start() error
	Terminate(time.Duration) error
} {
	return e.Component("speaker-" + node)
}

// nextHopDrop applies f to victim and returns how long FRR's kernel kept
// victim as a next hop of prefix (timestamped by the route watcher), or
// an error if it did not drop it within limit. FRR must route prefix via
// every node when it is called. The fault stays in place.
func (e *env) nextHopDrop(ctx context.Context, prefix netip.Prefix, victim string, f nodeFault, limit time.Duration) (time.Duration, error) {
	rest := slices.DeleteFunc(e.addrs(prefix.Addr().Is6()), func(a netip.Addr) bool { return a == e.Node(victim).IPv4 || a == e.Node(victim).IPv6 })
	start := time.Now()
	if err := f.do(ctx, e, victim); err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	st, err := e.w.Wait(wctx, prefix, func(st routers.RouteState) bool {
		return st.Present && st.Since.After(start) && slices.Equal(st.Gateways, rest)
	})
	if err != nil {
		return 0, fmt.Errorf("%s of %s: FRR's kernel still routes %v via %v after %v", f.name, victim, prefix, st.Gateways, limit)
	}
	return st.Since.Sub(start), nil
}

// recover undoes f and waits until every session is up and FRR routes
// prefix via every node again.
func (e *env) recover(ctx context.Context, prefix netip.Prefix, victim string, f nodeFault) error {
	if err := f.undo(ctx, e, victim); err != nil {
		return err
	}
	return e.steady(ctx, prefix)
}

// steady waits until every session is up (BFD too) and FRR routes prefix
// via every node.
func (e *env) steady(ctx context.Context, prefix netip.Prefix) error {
	want := e.addrs(prefix.Addr().Is6())
	return poll(ctx, 100*time.Millisecond, func() error {
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
