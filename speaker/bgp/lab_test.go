package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
)

// The test lab: a node namespace linked to a router namespace (FRR) by
// eth0 and, when asked, to a second router namespace (BIRD) by eth1.
//
//	node 10.10.0.2, 10.10.0.3, fd00:10::2  <-eth0->  frr 10.10.0.1, 10.10.0.11, fd00:10::1
//	node 10.20.0.2, fd00:20::2             <-eth1->  bird 10.20.0.1, fd00:20::1
var (
	nodeV4   = netip.MustParseAddr("10.10.0.2")
	nodeV4b  = netip.MustParseAddr("10.10.0.3") // source of the iBGP session
	nodeV6   = netip.MustParseAddr("fd00:10::2")
	frrV4    = netip.MustParseAddr("10.10.0.1")
	frrV4b   = netip.MustParseAddr("10.10.0.11") // FRR's address for the iBGP session
	frrV6    = netip.MustParseAddr("fd00:10::1")
	nodeBV4  = netip.MustParseAddr("10.20.0.2")
	nodeBV6  = netip.MustParseAddr("fd00:20::2")
	birdV4   = netip.MustParseAddr("10.20.0.1")
	birdV6   = netip.MustParseAddr("fd00:20::1")
	routerID = netip.MustParseAddr("10.10.0.2")
)

const (
	routerASN = 64512
	nodeASN   = 64513
)

type lab struct {
	ctx             context.Context
	reg             *netns.Registry
	node, frr, bird *netns.NS
}

func newLab(t testing.TB) *lab {
	t.Helper()
	if err := netns.RequireRoot(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &lab{ctx: ctx, reg: netns.New(netns.UniquePrefix(), nil)}
	t.Cleanup(func() {
		cancel()
		if err := l.reg.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
		if left, err := netns.Leftovers(l.reg.Prefix()); err != nil || len(left) > 0 {
			t.Errorf("lab left behind %v (%v)", left, err)
		}
	})
	var err error
	if l.node, err = l.reg.Add(ctx, "node"); err != nil {
		t.Fatal(err)
	}
	if l.frr, err = l.reg.Add(ctx, "frr"); err != nil {
		t.Fatal(err)
	}
	if err := l.reg.Veth(ctx, l.node, "eth0", l.frr, "eth0"); err != nil {
		t.Fatal(err)
	}
	l.addrs(t, l.node, "eth0", "10.10.0.2/24", "10.10.0.3/24", "fd00:10::2/64")
	l.addrs(t, l.frr, "eth0", "10.10.0.1/24", "10.10.0.11/24", "fd00:10::1/64")
	for _, ns := range []*netns.NS{l.node, l.frr} {
		if err := routers.WaitIPv6Ready(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l *lab) addrs(t testing.TB, ns *netns.NS, dev string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if _, err := ns.Run(l.ctx, "ip", "addr", "add", a, "dev", dev, "nodad"); err != nil {
			t.Fatal(err)
		}
	}
}

// addBIRDLink adds the BIRD namespace and its link to the node.
func (l *lab) addBIRDLink(t testing.TB) {
	t.Helper()
	var err error
	if l.bird, err = l.reg.Add(l.ctx, "bird"); err != nil {
		t.Fatal(err)
	}
	if err := l.reg.Veth(l.ctx, l.node, "eth1", l.bird, "eth0"); err != nil {
		t.Fatal(err)
	}
	l.addrs(t, l.node, "eth1", "10.20.0.2/24", "fd00:20::2/64")
	l.addrs(t, l.bird, "eth0", "10.20.0.1/24", "fd00:20::1/64")
	for _, ns := range []*netns.NS{l.node, l.bird} {
		if err := routers.WaitIPv6Ready(l.ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
}

// addRoutedPath joins node and FRR a second way, through a plain Linux
// router namespace "mid", for multihop sessions:
//
//	node 10.30.0.2 <-eth2-> mid 10.30.0.1 | 10.40.0.1 <-eth1-> frr 10.40.0.2
func (l *lab) addRoutedPath(t testing.TB) {
	t.Helper()
	mid, err := l.reg.Add(l.ctx, "mid")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.reg.Veth(l.ctx, l.node, "eth2", mid, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := l.reg.Veth(l.ctx, mid, "eth1", l.frr, "eth1"); err != nil {
		t.Fatal(err)
	}
	l.addrs(t, l.node, "eth2", "10.30.0.2/24")
	l.addrs(t, mid, "eth0", "10.30.0.1/24")
	l.addrs(t, mid, "eth1", "10.40.0.1/24")
	l.addrs(t, l.frr, "eth1", "10.40.0.2/24")
	if err := routers.TuneKernel(mid); err != nil { // forwarding on
		t.Fatal(err)
	}
	if _, err := l.node.Run(l.ctx, "ip", "route", "add", "10.40.0.0/24", "via", "10.30.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.frr.Run(l.ctx, "ip", "route", "add", "10.30.0.0/24", "via", "10.40.0.1"); err != nil {
		t.Fatal(err)
	}
}

// startFRR runs FRR (AS 64512) in the router namespace with the given
// neighbors and a 100 ms x 3 BFD profile "fast".
func (l *lab) startFRR(t testing.TB, neighbors ...routers.Neighbor) *routers.FRR {
	t.Helper()
	return l.startFRRWith(t, routers.FRRConfig{Neighbors: neighbors})
}

// startFRRWith fills in the name, AS, router ID and BFD profile of cfg.
func (l *lab) startFRRWith(t testing.TB, cfg routers.FRRConfig) *routers.FRR {
	t.Helper()
	cfg.Name, cfg.ASN, cfg.RouterID = "tor", routerASN, frrV4
	cfg.BFDProfiles = []routers.BFDProfile{{Name: "fast", ReceiveInterval: bfdTestInterval, TransmitInterval: bfdTestInterval, DetectMultiplier: 3}}
	frr, err := routers.StartFRR(l.ctx, l.reg, l.frr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(frr.Logs())
		}
		_ = frr.Close()
	})
	return frr
}

// startBIRD runs BIRD in the BIRD namespace (addBIRDLink) and shows its
// log when the test fails.
func (l *lab) startBIRD(t testing.TB, cfg routers.BIRDConfig) *routers.BIRD {
	t.Helper()
	bird, err := routers.StartBIRD(l.ctx, l.reg, l.bird, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(bird.Logs())
		}
		_ = bird.Close()
	})
	return bird
}

// frrNeighbor is FRR's side of a session from the node: fast timers, so a
// failed connect is retried within a second or two.
func frrNeighbor(addr netip.Addr, asn uint32, opts ...func(*routers.SessionOptions)) routers.Neighbor {
	n := routers.Neighbor{Address: addr, SessionOptions: routers.SessionOptions{
		RemoteAS: routers.ASN(asn), Keepalive: time.Second, Hold: 3 * time.Second, ConnectRetry: time.Second,
	}}
	for _, o := range opts {
		o(&n.SessionOptions)
	}
	return n
}

// nodePeer is the node's side of a session to FRR, eBGP unless changed.
func nodePeer(name string, addr netip.Addr) Peer {
	return Peer{Name: name, Address: addr, MyASN: nodeASN, PeerASN: routerASN,
		HoldTime: 3 * time.Second, KeepaliveTime: time.Second, ConnectTime: time.Second}
}

// waitEstablished waits until FRR reports every listed neighbor up.
func waitEstablished(ctx context.Context, t testing.TB, frr *routers.FRR, addrs ...netip.Addr) map[netip.Addr]routers.BGPNeighbor {
	t.Helper()
	var ns map[netip.Addr]routers.BGPNeighbor
	testkit.For(t, 30*time.Second, "FRR sessions established", func() error {
		var err error
		if ns, err = frr.BGPNeighbors(ctx); err != nil {
			return err
		}
		for _, a := range addrs {
			if !ns[a].Established() {
				return fmt.Errorf("%v is %q (last reset: %s)", a, ns[a].State, ns[a].LastResetDueTo)
			}
		}
		return nil
	})
	return ns
}

// frrPathFrom returns the path FRR holds for prefix from neighbor peer.
func frrPathFrom(ctx context.Context, frr *routers.FRR, prefix netip.Prefix, peer netip.Addr) (routers.BGPPath, error) {
	rt, err := frr.BGPRoute(ctx, prefix)
	if err != nil {
		return routers.BGPPath{}, err
	}
	for _, p := range rt.Paths {
		if p.PeerID == peer.String() {
			return p, nil
		}
	}
	return routers.BGPPath{}, fmt.Errorf("no path for %v from %v: %w", prefix, peer, routers.ErrNotFound)
}

// frrLacksPathFrom succeeds once FRR has no path for prefix from peer.
func frrLacksPathFrom(ctx context.Context, frr *routers.FRR, prefix netip.Prefix, peer netip.Addr) error {
	_, err := frrPathFrom(ctx, frr, prefix, peer)
	if errors.Is(err, routers.ErrNotFound) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("FRR still has %v from %v", prefix, peer)
	}
	return err
}

func u32(v uint32) *uint32 { return &v }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
