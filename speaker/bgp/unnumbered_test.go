package bgp

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
)

// unnumberedLink joins the node and a router namespace by a veth "un0"
// that has only the kernel's IPv6 link-local addresses: no IPv4 and no
// global address, as on a fabric's unnumbered links. It returns both
// ends' link-local addresses.
func (l *lab) unnumberedLink(t testing.TB, router *netns.NS) (node, peer netip.Addr) {
	t.Helper()
	if err := l.reg.Veth(l.ctx, l.node, "un0", router, "un0"); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []*netns.NS{l.node, router} {
		if err := routers.WaitIPv6Ready(l.ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	return linkLocalOf(t, l, l.node), linkLocalOf(t, l, router)
}

func linkLocalOf(t testing.TB, l *lab, ns *netns.NS) netip.Addr {
	t.Helper()
	out, err := ns.Run(l.ctx, "ip", "-6", "-j", "addr", "show", "dev", "un0", "scope", "link")
	if err != nil {
		t.Fatal(err)
	}
	var ifs []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &ifs); err == nil && len(ifs) == 1 {
		for _, a := range ifs[0].AddrInfo { // ip -j lists an empty entry for filtered-out addresses
			if a.Local != "" {
				return netip.MustParseAddr(a.Local)
			}
		}
	}
	t.Fatalf("link-local address of un0 in %s: %q", ns.Name, out)
	return netip.Addr{}
}

// unnumberedPeer is the node's side of an unnumbered session on un0: no
// address, the AS learnt from the router's OPEN.
func unnumberedPeer(name string) Peer {
	return Peer{Name: name, Interface: "un0", MyASN: nodeASN, DynamicASN: DynamicExternal,
		HoldTime: 3 * time.Second, KeepaliveTime: time.Second, ConnectTime: time.Second}
}

// frrInterfaceNeighbor is FRR's view of its neighbor configured by interface.
type frrInterfaceNeighbor struct {
	Address  string `json:"bgpNeighborAddr"`
	RemoteAS uint32 `json:"remoteAs"`
	State    string `json:"bgpState"`
	Caps     struct {
		ExtendedNexthop string `json:"extendedNexthop"`
	} `json:"neighborCapabilities"`
}

func frrNeighborOn(l *lab, frr *routers.FRR, ifname string) (frrInterfaceNeighbor, error) {
	out, err := frr.Vtysh(l.ctx, "show bgp neighbors "+ifname+" json")
	if err != nil {
		return frrInterfaceNeighbor{}, err
	}
	var m map[string]frrInterfaceNeighbor
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return frrInterfaceNeighbor{}, fmt.Errorf("%w: %s", err, out)
	}
	return m[ifname], nil
}

// routesViaLinkLocal checks that vip4 and vip6 are in a router's kernel
// via the node's link-local address on un0 (vip4 as an IPv4 route with an
// IPv6 next hop).
func routesViaLinkLocal(l *lab, router *netns.NS, nodeLL netip.Addr) error {
	for prefix, want := range map[netip.Prefix]string{
		vip4: "inet6 " + nodeLL.String() + " dev un0",
		vip6: nodeLL.String() + " dev un0",
	} {
		via, err := kernelVia(l, router, prefix)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(via, want) {
			return fmt.Errorf("%v via %q, want %q", prefix, via, want)
		}
	}
	return nil
}

// kernelVia returns the first next hop of prefix in ns's kernel as "ip"
// prints it: "inet6 fe80::1 dev un0" for an IPv4 route over IPv6.
func kernelVia(l *lab, ns *netns.NS, prefix netip.Prefix) (string, error) {
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := ns.Run(l.ctx, "ip", family, "route", "show", prefix.String())
	if err != nil {
		return "", err
	}
	if _, via, ok := strings.Cut(strings.TrimSpace(out), " via "); ok {
		return via, nil
	}
	return "", fmt.Errorf("no route for %v: %q", prefix, out)
}

// TestUnnumberedAtFRR: BGP unnumbered as a fabric runs it. FRR peers by
// interface ("neighbor un0 interface remote-as external") on a link with
// only link-local addresses; the node is given the interface alone and
// dynamicASN external. The node finds FRR by its Router Advertisements,
// FRR finds the node by the node's, the session comes up with the AS from
// FRR's OPEN, and both the IPv4 and the IPv6 route land in FRR's kernel
// via the node's link-local address (IPv4 with an IPv6 next hop, RFC 8950).
// Passive, the node waits on port 179 and FRR dials it.
func TestUnnumberedAtFRR(t *testing.T) {
	for _, passive := range []bool{false, true} {
		t.Run(fmt.Sprintf("passive=%v", passive), func(t *testing.T) {
			l := newLab(t)
			nodeLL, frrLL := l.unnumberedLink(t, l.frr)
			frr := l.startFRRWith(t, routers.FRRConfig{
				PeerGroups: []routers.PeerGroup{{Name: "FABRIC", SessionOptions: routers.SessionOptions{
					RemoteAS: routers.External, Keepalive: time.Second, Hold: 3 * time.Second, ConnectRetry: time.Second}}},
				ExtraBGP: []string{"neighbor un0 interface peer-group FABRIC"},
			})
			sp := startSpeaker(t, l.reg, l.node, "speaker")
			p := unnumberedPeer("fabric")
			d := Desired{RouterID: routerID, Peers: []Peer{p}, Paths: map[string][]Path{"fabric": {{Prefix: vip4}, {Prefix: vip6}}}}
			if passive {
				d.Peers[0].Passive, d.ListenPort = true, 179
			}
			sp.set(t, d)

			testkit.For(t, 30*time.Second, "FRR's interface neighbor established with the node's AS", func() error {
				n, err := frrNeighborOn(l, frr, "un0")
				if err != nil {
					return err
				}
				if n.State != "Established" || n.RemoteAS != nodeASN || n.Address != nodeLL.String() || n.Caps.ExtendedNexthop != "advertisedAndReceived" {
					return fmt.Errorf("%+v", n)
				}
				return nil
			})
			t.Cleanup(func() {
				if t.Failed() { // what FRR's BGP table and the node said, for a route that never reached the kernel
					out, _ := frr.Vtysh(l.ctx, "show bgp ipv4 unicast "+vip4.String(), "show bgp ipv6 unicast "+vip6.String(), "show bgp neighbors un0")
					st, err := sp.status()
					t.Logf("FRR:\n%s\nnode status: %+v (%v)", out, st, err)
				}
			})
			// 30 s, as for the session: under the race detector on a loaded
			// machine the IPv4 route once took longer than 10 s to appear.
			testkit.For(t, 30*time.Second, "both routes via the node's link-local address in FRR's kernel", func() error {
				return routesViaLinkLocal(l, l.frr, nodeLL)
			})
			st, err := sp.status()
			if err != nil {
				t.Fatal(err)
			}
			if s := st["fabric"]; !s.Established() || s.Address != frrLL.WithZone("un0") || s.PeerASN != routerASN || s.Advertised != 2 {
				t.Fatalf("node's status %+v, want established with %v%%un0, AS %d, 2 prefixes", s, frrLL, routerASN)
			}
			accepted := slices.ContainsFunc(established(t, l, l.node), func(c tcpConn) bool { return c.local.Port() == 179 })
			if accepted != passive {
				t.Fatalf("session accepted on the node's port 179: %v, want %v (%v)", accepted, passive, established(t, l, l.node))
			}
		})
	}
}

// TestUnnumberedWaitsForItsRouter: with no router on the link the peer
// waits and says why; once a router advertises itself there, the session
// comes up without any change on the node.
func TestUnnumberedWaitsForItsRouter(t *testing.T) {
	l := newLab(t)
	l.unnumberedLink(t, l.frr)
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	sp.set(t, Desired{RouterID: routerID, Peers: []Peer{unnumberedPeer("fabric")},
		Paths: map[string][]Path{"fabric": {{Prefix: vip6}}}})
	testkit.For(t, 5*time.Second, "peer waiting for its router", func() error {
		st, err := sp.status()
		if err != nil {
			return err
		}
		if s := st["fabric"]; s.State != StateIdle || !strings.Contains(s.LastError, "no IPv6 router seen on un0") {
			return fmt.Errorf("%+v", s)
		}
		return nil
	})
	frr := l.startFRRWith(t, routers.FRRConfig{
		PeerGroups: []routers.PeerGroup{{Name: "FABRIC", SessionOptions: routers.SessionOptions{
			RemoteAS: routers.External, Keepalive: time.Second, Hold: 3 * time.Second, ConnectRetry: time.Second}}},
		ExtraBGP: []string{"neighbor un0 interface peer-group FABRIC"},
	})
	testkit.For(t, 30*time.Second, "session up once FRR advertises itself", func() error {
		n, err := frrNeighborOn(l, frr, "un0")
		if err != nil {
			return err
		}
		st, err := sp.status()
		if err != nil {
			return err
		}
		if n.State != "Established" || !st["fabric"].Established() || st["fabric"].LastError != "" {
			return fmt.Errorf("FRR %+v, node %+v", n, st["fabric"])
		}
		return nil
	})
}

// TestUnnumberedPassiveAtBIRD: BIRD 2 peers with the node's link-local
// address (BIRD has no unnumbered mode) and sends Router Advertisements;
// the node, passive on port 1790 with the interface alone, finds BIRD by
// them, BIRD dials it, and both routes reach BIRD's kernel via the node's
// link-local address.
func TestUnnumberedPassiveAtBIRD(t *testing.T) {
	l := newLab(t)
	l.addBIRDLink(t)
	nodeLL, birdLL := l.unnumberedLink(t, l.bird)
	bird := l.startBIRD(t, routers.BIRDConfig{
		Name: "tor2", ASN: routerASN, RouterID: birdV4, RAInterfaces: []string{"un0"},
		Neighbors: []routers.BIRDNeighbor{{Name: "node", Address: nodeLL.WithZone("un0"), Port: 1790, ASN: nodeASN,
			ConnectRetry: time.Second, Hold: 3 * time.Second, Keepalive: time.Second, ExtendedNextHop: true}},
	})
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	p := unnumberedPeer("bird")
	p.Passive = true
	sp.set(t, Desired{RouterID: routerID, ListenPort: 1790, Peers: []Peer{p},
		Paths: map[string][]Path{"bird": {{Prefix: vip4}, {Prefix: vip6}}}})
	testkit.For(t, 30*time.Second, "BIRD's session established", func() error {
		pr, err := bird.Protocol(l.ctx, "node")
		if err != nil {
			return err
		}
		if !pr.Established() {
			return fmt.Errorf("%s %s", pr.BGPState, pr.LastError)
		}
		return nil
	})
	testkit.For(t, 10*time.Second, "routes via the node's link-local address in BIRD's kernel", func() error {
		return routesViaLinkLocal(l, l.bird, nodeLL)
	})
	if conns := established(t, l, l.node); !slices.ContainsFunc(conns, func(c tcpConn) bool { return c.local.Port() == 1790 }) {
		t.Fatalf("no session accepted on the node's port 1790 (BIRD did not dial): %v", conns)
	}
	st, err := sp.status()
	if err != nil {
		t.Fatal(err)
	}
	if s := st["bird"]; s.Address != birdLL.WithZone("un0") || s.PeerASN != routerASN {
		t.Fatalf("node's status %+v, want BIRD at %v%%un0, AS %d", s, birdLL, routerASN)
	}
}

// TestUnnumberedBFDAtFRR: BFD runs on an unnumbered session (link-local
// addresses on both ends) and comes up with FRR's bfdd; when the speaker
// hangs (SIGSTOP), FRR drops the node's route by BFD, long before the 30 s
// hold timer.
func TestUnnumberedBFDAtFRR(t *testing.T) {
	l := newLab(t)
	l.unnumberedLink(t, l.frr)
	frr := l.startFRRWith(t, routers.FRRConfig{
		PeerGroups: []routers.PeerGroup{{Name: "FABRIC", SessionOptions: routers.SessionOptions{RemoteAS: routers.External, ConnectRetry: time.Second}}},
		ExtraBGP:   []string{"neighbor un0 interface peer-group FABRIC"},
	})
	if err := frr.Configure(l.ctx, "router bgp 64512", "neighbor FABRIC bfd profile fast", "neighbor FABRIC timers 10 30"); err != nil {
		t.Fatal(err)
	}
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	p := unnumberedPeer("fabric")
	p.HoldTime, p.KeepaliveTime = 30*time.Second, 10*time.Second
	p.BFD = &BFD{ReceiveInterval: bfdTestInterval, TransmitInterval: bfdTestInterval, DetectMultiplier: 3}
	sp.set(t, Desired{RouterID: routerID, Peers: []Peer{p}, Paths: map[string][]Path{"fabric": {{Prefix: vip6}}}})
	testkit.For(t, 30*time.Second, "BFD up on both sides with the route in place", func() error {
		peers, err := frr.BFDPeers(l.ctx)
		if err != nil {
			return err
		}
		if len(peers) != 1 || peers[0].Status != "up" || peers[0].RemoteTransmit != int(bfdTestInterval/time.Millisecond) {
			return fmt.Errorf("FRR BFD peers: %+v", peers)
		}
		st, err := sp.status()
		if err != nil {
			return err
		}
		if st["fabric"].BFD != "up" {
			return fmt.Errorf("speaker BFD %q", st["fabric"].BFD)
		}
		_, err = routers.KernelRouteFor(l.ctx, l.frr, vip6)
		return err
	})
	if err := sp.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	took := testkit.For(t, 5*time.Second, "route gone at FRR after SIGSTOP", func() error {
		if _, err := frr.BGPRoute(l.ctx, vip6); err == nil {
			return errStillUp
		}
		return nil
	})
	_ = sp.proc.Signal(syscall.SIGCONT)
	t.Logf("SIGSTOP -> route withdrawn at FRR by BFD on the unnumbered session in %v", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("BFD took %v to drop the route; 100 ms x 3 should take well under 2 s", took)
	}
}

// TestUnnumberedFindsAReplacedRouter: the router on the link is replaced
// by one with another MAC and so another link-local address (FRR
// restarted after its un0 went down and up with a new MAC). The node's
// session goes down, the old router's neighbor entry goes with the link,
// and the session comes back with the new router, without any change on
// the node.
func TestUnnumberedFindsAReplacedRouter(t *testing.T) {
	l := newLab(t)
	l.unnumberedLink(t, l.frr)
	cfg := routers.FRRConfig{
		PeerGroups: []routers.PeerGroup{{Name: "FABRIC", SessionOptions: routers.SessionOptions{
			RemoteAS: routers.External, Keepalive: time.Second, Hold: 3 * time.Second, ConnectRetry: time.Second}}},
		ExtraBGP: []string{"neighbor un0 interface peer-group FABRIC"},
	}
	frr := l.startFRRWith(t, cfg)
	sp := startSpeaker(t, l.reg, l.node, "speaker")
	sp.set(t, Desired{RouterID: routerID, Peers: []Peer{unnumberedPeer("fabric")}, Paths: map[string][]Path{"fabric": {{Prefix: vip6}}}})
	sessionWith := func(addr netip.Addr) func() error {
		return func() error {
			st, err := sp.status()
			if err != nil {
				return err
			}
			if s := st["fabric"]; !s.Established() || s.Address != addr {
				return fmt.Errorf("%+v, want established with %v", s, addr)
			}
			return nil
		}
	}
	testkit.For(t, 30*time.Second, "session with the first router", sessionWith(linkLocalOf(t, l, l.frr).WithZone("un0")))

	if err := frr.Close(); err != nil {
		t.Fatal(err)
	}
	// A new switch: another MAC address, hence another link-local address.
	for _, args := range [][]string{
		{"ip", "link", "set", "un0", "down"},
		{"ip", "link", "set", "un0", "address", "02:00:00:00:00:99"},
		{"ip", "link", "set", "un0", "up"},
	} {
		if _, err := l.frr.Run(l.ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := routers.WaitIPv6Ready(l.ctx, l.frr); err != nil {
		t.Fatal(err)
	}
	replacement := linkLocalOf(t, l, l.frr)
	// Stale vty sockets would look like ready daemons to the new FRR.
	stale, _ := filepath.Glob(filepath.Join(frr.Dir, "*.vty"))
	for _, f := range append(stale, filepath.Join(frr.Dir, "zserv.api")) {
		_ = os.Remove(f)
	}
	l.startFRRWith(t, cfg)
	took := testkit.For(t, 60*time.Second, "session with the replacement", sessionWith(replacement.WithZone("un0")))
	t.Logf("replacement router found and peered with in %v", took.Round(100*time.Millisecond))
}
