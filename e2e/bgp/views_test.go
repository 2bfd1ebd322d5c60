package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/poll"
)

// What the routers and the API say, as a user would read it.

// hostPrefix is the /32 or /128 of ip.
func hostPrefix(ip string) netip.Prefix {
	a := netip.MustParseAddr(ip)
	return netip.PrefixFrom(a, a.BitLen())
}

func sorted(a []netip.Addr) []netip.Addr {
	return slices.Compact(slices.SortedFunc(slices.Values(a), netip.Addr.Compare))
}

// frrHops checks that FRR holds prefix with exactly the next hops want in
// all three places a user would look: the BGP table (best and multipath
// paths), zebra's RIB (selected, installed, every next hop in the FIB) and
// the kernel table. want empty means: nowhere.
func (e *env) frrHops(ctx context.Context, prefix netip.Prefix, want []netip.Addr) error {
	frr := e.FRR.FRR
	rt, err := frr.BGPRoute(ctx, prefix)
	if len(want) == 0 {
		if errors.Is(err, routers.ErrNotFound) {
			_, kerr := routers.KernelRouteFor(ctx, e.FRR.NS, prefix)
			if errors.Is(kerr, routers.ErrNotFound) {
				return nil
			}
			if kerr != nil {
				return kerr
			}
			return fmt.Errorf("%v gone from FRR's BGP table but still in its kernel", prefix)
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("FRR still has %v: %+v", prefix, rt.Paths)
	}
	if err != nil {
		return err
	}
	var bgp []netip.Addr
	for _, p := range rt.Paths {
		if p.Best || p.Multipath {
			for _, nh := range p.NextHops {
				if nh.Scope != "link-local" {
					bgp = append(bgp, nh.IP)
				}
			}
		}
	}
	if bgp = sorted(bgp); !slices.Equal(bgp, want) {
		return fmt.Errorf("FRR's BGP table has %v via %v, want %v", prefix, bgp, want)
	}
	ribs, err := frr.RIBRoutes(ctx, prefix)
	if err != nil {
		return err
	}
	var fib []netip.Addr
	for _, r := range ribs {
		if r.Protocol != "bgp" || !r.Selected || !r.Installed {
			continue
		}
		for _, nh := range r.NextHops {
			if a, err := netip.ParseAddr(nh.IP); err == nil && nh.FIB {
				fib = append(fib, a)
			}
		}
	}
	if fib = sorted(fib); !slices.Equal(fib, want) {
		return fmt.Errorf("zebra has %v in the FIB via %v, want %v (RIB %+v)", prefix, fib, want, ribs)
	}
	gws, err := kernelHops(ctx, e.FRR.NS, prefix)
	if err != nil {
		return err
	}
	if !slices.Equal(gws, want) {
		return fmt.Errorf("FRR's kernel routes %v via %v, want %v", prefix, gws, want)
	}
	return nil
}

// kernelHops returns the next hops of the kernel route for prefix in ns, sorted.
func kernelHops(ctx context.Context, ns *netns.NS, prefix netip.Prefix) ([]netip.Addr, error) {
	k, err := routers.KernelRouteFor(ctx, ns, prefix)
	if err != nil {
		return nil, err
	}
	var gws []netip.Addr
	for _, g := range k.Gateways() {
		if a, err := netip.ParseAddr(g); err == nil {
			gws = append(gws, a)
		}
	}
	return sorted(gws), nil
}

// birdHops checks that BIRD has a BGP route for prefix from each address
// in want (none when want is empty) and that its kernel table has the
// merged ECMP route over them.
func (e *env) birdHops(ctx context.Context, prefix netip.Prefix, want []netip.Addr) error {
	routes, err := e.BIRD.BIRD.Routes(ctx, prefix)
	if len(want) == 0 {
		if errors.Is(err, routers.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("BIRD still has %v: %+v", prefix, routes)
	}
	if err != nil {
		return err
	}
	var via []netip.Addr
	for _, r := range routes {
		for _, nh := range r.Via {
			via = append(via, nh.Addr)
		}
	}
	if via = sorted(via); !slices.Equal(via, want) {
		return fmt.Errorf("BIRD has %v via %v, want %v", prefix, via, want)
	}
	gws, err := kernelHops(ctx, e.BIRD.NS, prefix)
	if err != nil {
		return err
	}
	if !slices.Equal(gws, want) {
		return fmt.Errorf("BIRD's kernel routes %v via %v, want %v", prefix, gws, want)
	}
	return nil
}

// frrNeighbors is FRR's view of the nodes' sessions.
func (e *env) frrNeighbors(ctx context.Context) (map[netip.Addr]routers.BGPNeighbor, error) {
	return e.FRR.FRR.BGPNeighbors(ctx)
}

// birdSessions maps each node address to BIRD's BGP protocol for it.
func (e *env) birdSessions(ctx context.Context) (map[netip.Addr]routers.BIRDProtocol, error) {
	protos, err := e.BIRD.BIRD.Protocols(ctx)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]routers.BIRDProtocol{}
	for _, p := range protos {
		if a, err := netip.ParseAddr(p.NeighborAddress); err == nil && p.Proto == "BGP" {
			if cur, ok := out[a]; !ok || !cur.Established() {
				out[a] = p
			}
		}
	}
	return out, nil
}

// waitSessions waits until every session is up at both ends: FRR's and
// BIRD's view, and every node's SpeakerStatus.
func (e *env) waitSessions(ctx context.Context) error {
	return poll.Until(ctx, 100*time.Millisecond, func() error { return e.sessionsUp(ctx) })
}

func (e *env) sessionsUp(ctx context.Context) error {
	fn, err := e.frrNeighbors(ctx)
	if err != nil {
		return err
	}
	bs, err := e.birdSessions(ctx)
	if err != nil {
		return err
	}
	for _, n := range e.Nodes {
		for _, a := range []netip.Addr{n.IPv4, n.IPv6} {
			if !fn[a].Established() {
				return fmt.Errorf("FRR: session with %v is %q (last reset: %s)", a, fn[a].State, fn[a].LastResetDueTo)
			}
			if !bs[a].Established() {
				return fmt.Errorf("BIRD: session with %v is %q %s", a, bs[a].BGPState, bs[a].LastError)
			}
		}
	}
	st, err := e.SpeakerStatuses(ctx)
	if err != nil {
		return err
	}
	for _, n := range e.Nodes {
		if s := st[n.Name]; s.SessionsEstablished != int32(len(allPeers)) || s.Sessions != int32(len(allPeers)) {
			return fmt.Errorf("%s's SpeakerStatus: %d of %d sessions established: %+v", n.Name, s.SessionsEstablished, s.Sessions, s.BGPSessions)
		}
	}
	return nil
}

// resets is what a session reset would change: FRR's counts of sessions
// that came up and went down per neighbor, and BIRD's protocol
// state-change times.
type resets struct {
	frr  map[netip.Addr][2]int64
	bird map[netip.Addr]routers.BIRDProtocol
}

func (e *env) resetCounters(ctx context.Context) (resets, error) {
	r := resets{frr: map[netip.Addr][2]int64{}, bird: map[netip.Addr]routers.BIRDProtocol{}}
	fn, err := e.frrNeighbors(ctx)
	if err != nil {
		return r, err
	}
	for a, n := range fn {
		r.frr[a] = [2]int64{int64(n.ConnectionsEstablished), int64(n.ConnectionsDropped)}
	}
	bs, err := e.birdSessions(ctx)
	if err != nil {
		return r, err
	}
	for a, p := range bs {
		r.bird[a] = p
	}
	return r, nil
}

// noResetSince reports sessions that were reset since before.
func (e *env) noResetSince(ctx context.Context, before resets) error {
	now, err := e.resetCounters(ctx)
	if err != nil {
		return err
	}
	var reset []string
	for a, v := range before.frr {
		if now.frr[a] != v {
			reset = append(reset, fmt.Sprintf("FRR %v (connections established, dropped) %v -> %v", a, v, now.frr[a]))
		}
	}
	for a, v := range before.bird {
		if p := now.bird[a]; p.Name != v.Name || !v.SameSession(p) {
			reset = append(reset, fmt.Sprintf("BIRD %v %s %s since %s -> %s %s since %s", a, v.Name, v.BGPState, v.Since, p.Name, p.BGPState, p.Since))
		}
	}
	if len(reset) > 0 {
		return fmt.Errorf("sessions reset: %s", strings.Join(reset, "; "))
	}
	return nil
}

// session returns one session of a node's SpeakerStatus.
func (e *env) session(ctx context.Context, node, peer string) (v1beta1.BGPSession, error) { //nolint:unparam // each caller names the peer it checks
	st, err := e.SpeakerStatuses(ctx)
	if err != nil {
		return v1beta1.BGPSession{}, err
	}
	for _, s := range st[node].BGPSessions {
		if s.Peer == peer {
			return s, nil
		}
	}
	return v1beta1.BGPSession{}, fmt.Errorf("%s's SpeakerStatus has no session %q: %+v", node, peer, st[node].BGPSessions)
}

// peerEvents returns the Events on a BGPPeer with reason.
func (e *env) peerEvents(ctx context.Context, peer, reason string) ([]corev1.Event, error) {
	sel := fields.Set{"involvedObject.kind": "BGPPeer", "involvedObject.name": peer, "reason": reason}.AsSelector().String()
	list, err := e.Kube.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// extAnswers is what n requests from the external client saw: how many
// each node's pods answered (replies name the pod's node), and the
// attempts that failed and were retried.
type extAnswers struct {
	nodes  map[string]int
	failed []string
}

func (a extAnswers) String() string {
	if len(a.failed) == 0 {
		return fmt.Sprint(a.nodes)
	}
	return fmt.Sprintf("%v after %d failed attempts (last: %s)", a.nodes, len(a.failed), a.failed[len(a.failed)-1])
}

// getFromExt sends n requests from the external client to ip. Each
// request is retried for up to 10 s while kube-proxy catches up.
func (e *env) getFromExt(ctx context.Context, ip string, n int) (extAnswers, error) {
	a := extAnswers{nodes: map[string]int{}}
	for range n {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := poll.Until(rctx, 100*time.Millisecond, func() error {
			gctx, cancel := context.WithTimeout(rctx, 2*time.Second)
			defer cancel()
			rep, err := e.Ext.Get(gctx, lab.URL(ip, 80))
			if err != nil {
				a.failed = append(a.failed, err.Error())
				return err
			}
			a.nodes[rep.Node]++
			return nil
		})
		cancel()
		if err != nil {
			return a, fmt.Errorf("GET %s from ext: %w", ip, err)
		}
	}
	return a, nil
}
