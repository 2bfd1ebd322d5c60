package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
)

// tcpConn is one TCP socket of a namespace.
type tcpConn struct{ local, remote netip.AddrPort }

// sockets lists a namespace's TCP sockets in a state ("listening",
// "established") as ss reports them.
func sockets(t testing.TB, l *lab, ns *netns.NS, state string) []tcpConn {
	t.Helper()
	out, err := ns.Run(l.ctx, "ss", "-Htn", "state", state)
	if err != nil {
		t.Fatal(err)
	}
	var conns []tcpConn
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		parse := func(s string) netip.AddrPort {
			s = strings.Replace(strings.Replace(s, "[", "", 1), "]", "", 1)
			i := strings.LastIndexByte(s, ':')
			a, _ := netip.ParseAddr(strings.TrimSuffix(s[:i], "%un0"))
			port, _ := strconv.ParseUint(s[i+1:], 10, 16)
			return netip.AddrPortFrom(a, uint16(port))
		}
		conns = append(conns, tcpConn{local: parse(f[len(f)-2]), remote: parse(f[len(f)-1])})
	}
	return conns
}

func established(t testing.TB, l *lab, ns *netns.NS) []tcpConn {
	return sockets(t, l, ns, "established")
}

func listensOn(t testing.TB, l *lab, ns *netns.NS, port uint16) bool {
	return slices.ContainsFunc(sockets(t, l, ns, "listening"), func(c tcpConn) bool { return c.local.Port() == port })
}

// startFRRDialing1790 starts FRR with two neighbors: the node's IPv4
// address, which FRR dials on port 1790 (a passive peer of the node), and
// its IPv6 address, which FRR only accepts (an active peer of the node).
func startFRRDialing1790(t *testing.T, l *lab) *routers.FRR {
	t.Helper()
	return l.startFRRWith(t, routers.FRRConfig{
		Neighbors: []routers.Neighbor{
			frrNeighbor(nodeV4, nodeASN),
			frrNeighbor(nodeV6, nodeASN, func(o *routers.SessionOptions) { o.Passive = true }),
		},
		ExtraBGP: []string{"neighbor " + nodeV4.String() + " port 1790"},
	})
}

// TestPassivePeerAtFRR: the node listens only while a passive peer asks
// for it, on the port asked for. FRR dials the node's port 1790 and the
// session carries the route; the node's other, active session is
// re-created when the listener opens and closes (gobgp opens listeners
// only when it starts) and comes back up.
func TestPassivePeerAtFRR(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := startFRRDialing1790(t, l)
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	active := nodePeer("active6", frrV6)
	d := Desired{RouterID: routerID, Peers: []Peer{active}, Paths: map[string][]Path{"passive4": {{Prefix: vip4}}, "active6": {{Prefix: vip6}}}}
	sp.set(t, d)
	waitEstablished(ctx, t, frr, nodeV6)
	testkit.Holds(t, 2*time.Second, "no listener without a passive peer", func() error {
		if listensOn(t, l, l.node, 1790) || listensOn(t, l, l.node, 179) {
			return fmt.Errorf("listening: %v", sockets(t, l, l.node, "listening"))
		}
		return nil
	})

	passive := nodePeer("passive4", frrV4)
	passive.Passive = true
	d.ListenPort, d.Peers = 1790, []Peer{active, passive}
	sp.set(t, d)
	waitEstablished(ctx, t, frr, nodeV4, nodeV6)
	if !slices.ContainsFunc(established(t, l, l.node), func(c tcpConn) bool {
		return c.local == netip.AddrPortFrom(nodeV4, 1790) && c.remote.Addr() == frrV4
	}) {
		t.Fatalf("FRR's session is not one FRR dialed to the node's port 1790: %v", established(t, l, l.node))
	}
	testkit.For(t, 10*time.Second, "route over the passive session at FRR", func() error {
		_, err := frrPathFrom(ctx, frr, vip4, nodeV4)
		return err
	})

	d.ListenPort, d.Peers = 0, []Peer{active}
	sp.set(t, d)
	testkit.For(t, 10*time.Second, "listener closed with the passive peer gone, active session back", func() error {
		if listensOn(t, l, l.node, 1790) {
			return fmt.Errorf("still listening on 1790")
		}
		if err := frrLacksPathFrom(ctx, frr, vip4, nodeV4); err != nil {
			return err
		}
		nb, err := frr.BGPNeighbor(ctx, nodeV6)
		if err != nil {
			return err
		}
		if !nb.Established() {
			return fmt.Errorf("active session %s", nb.State)
		}
		return nil
	})
}

// TestDeletingAGracefulPeerWithTheListenerWithdraws: when one update
// deletes a graceful-restart peer and the last passive peer (so the
// listener closes and every session restarts), the deleted peer's router
// drops the node's route at once instead of keeping it stale for the
// restart time.
func TestDeletingAGracefulPeerWithTheListenerWithdraws(t *testing.T) {
	l := newLab(t)
	ctx := l.ctx
	frr := startFRRDialing1790(t, l)
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	graceful := nodePeer("graceful6", frrV6)
	graceful.GracefulRestart, graceful.RestartTime = true, 60*time.Second
	passive := nodePeer("passive4", frrV4)
	passive.Passive = true
	d := Desired{RouterID: routerID, ListenPort: 1790, Peers: []Peer{graceful, passive},
		Paths: map[string][]Path{"graceful6": {{Prefix: vip6}}, "passive4": {{Prefix: vip4}}}}
	sp.set(t, d)
	waitEstablished(ctx, t, frr, nodeV4, nodeV6)
	testkit.For(t, 10*time.Second, "route over the graceful-restart session at FRR", func() error {
		_, err := frrPathFrom(ctx, frr, vip6, nodeV6)
		return err
	})

	sp.set(t, Desired{RouterID: routerID})
	testkit.For(t, 10*time.Second, "both peers' routes gone at FRR, none kept stale", func() error {
		if err := frrLacksPathFrom(ctx, frr, vip6, nodeV6); err != nil {
			return err
		}
		return frrLacksPathFrom(ctx, frr, vip4, nodeV4)
	})
}

// TestPassiveWithoutListenPortIsRejected: a passive peer in a Desired
// without a listen port is refused with the reason; the others run.
func TestPassiveWithoutListenPortIsRejected(t *testing.T) {
	p := Peer{Name: "p", Address: netip.MustParseAddr("10.0.0.1"), MyASN: 1, PeerASN: 2, Passive: true}
	err := Desired{RouterID: routerID, Peers: []Peer{p}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "passive, but the node listens on no port") {
		t.Fatalf("Validate: %v", err)
	}
	plan := planPeers(nil, []Peer{p, nodePeer("ok", frrV4)})
	rejectUnreachablePassive(&plan, 0)
	if plan.invalid["p"] == nil || len(plan.add) != 1 || plan.add[0].Name != "ok" {
		t.Fatalf("plan %+v", plan)
	}
}
