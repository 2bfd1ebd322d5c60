package routers

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
)

var (
	frrV4  = netip.MustParseAddr("10.1.0.1")
	birdV4 = netip.MustParseAddr("10.1.0.2")
	frrV6  = netip.MustParseAddr("fd10:1::1")
	birdV6 = netip.MustParseAddr("fd10:1::2")

	frrNet4  = netip.MustParsePrefix("10.200.0.0/24")
	frrNet6  = netip.MustParsePrefix("2001:db8:200::/64")
	birdNet4 = netip.MustParsePrefix("10.201.0.0/24")
	birdNet6 = netip.MustParsePrefix("2001:db8:201::/64")
)

// TestFRRAndBIRDExchangeRoutes runs FRR and BIRD in two namespaces joined
// by a veth, with an IPv4 session (TCP MD5, BFD 100 ms x 3) and an IPv6
// session, and checks from both routers' own views that the sessions are
// up, that each router's blackhole route reached the other's BGP table and
// kernel, and that Close leaves nothing behind.
func TestFRRAndBIRDExchangeRoutes(t *testing.T) {
	if err := netns.RequireRoot(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := netns.New(netns.UniquePrefix(), nil)
	t.Cleanup(func() { _ = reg.Close() })

	nsF, err := reg.Add(ctx, "frr")
	if err != nil {
		t.Fatal(err)
	}
	nsB, err := reg.Add(ctx, "bird")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Veth(ctx, nsF, "eth0", nsB, "eth0"); err != nil {
		t.Fatal(err)
	}
	nsF.MustRun(ctx, "ip", "addr", "add", frrV4.String()+"/24", "dev", "eth0")
	nsB.MustRun(ctx, "ip", "addr", "add", birdV4.String()+"/24", "dev", "eth0")
	nsF.MustRun(ctx, "ip", "addr", "add", frrV6.String()+"/64", "dev", "eth0", "nodad")
	nsB.MustRun(ctx, "ip", "addr", "add", birdV6.String()+"/64", "dev", "eth0", "nodad")
	for _, ns := range []*netns.NS{nsF, nsB} {
		if err := WaitIPv6Ready(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}

	fast := BFDProfile{Name: "fast", ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3}
	frr, err := StartFRR(ctx, reg, nsF, FRRConfig{
		Name: "r1", ASN: 64512, RouterID: frrV4,
		Neighbors: []Neighbor{
			{Address: birdV4, SessionOptions: SessionOptions{RemoteAS: ASN(64513), Password: "s3cret", BFDProfile: "fast", Keepalive: time.Second, Hold: 3 * time.Second, ConnectRetry: time.Second}},
			{Address: birdV6, SessionOptions: SessionOptions{RemoteAS: ASN(64513), ConnectRetry: time.Second}},
		},
		BFDProfiles: []BFDProfile{fast},
		Statics:     []StaticRoute{{Prefix: frrNet4}, {Prefix: frrNet6}},
		Networks:    []netip.Prefix{frrNet4, frrNet6},
	})
	if err != nil {
		t.Fatal(err)
	}
	bird, err := StartBIRD(ctx, reg, nsB, BIRDConfig{
		Name: "r2", ASN: 64513, RouterID: birdV4,
		Neighbors: []BIRDNeighbor{
			{Name: "frr4", Address: frrV4, ASN: 64512, Password: "s3cret", BFD: true, ConnectRetry: time.Second},
			{Name: "frr6", Address: frrV6, ASN: 64512, ConnectRetry: time.Second},
		},
		Statics: []StaticRoute{{Prefix: birdNet4}, {Prefix: birdNet6}},
		BFD:     fast,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(frr.Logs(), bird.Logs())
		}
	})

	// Both routers answer on their control sockets.
	if out, err := frr.Vtysh(ctx, "show version"); err != nil || !contains(out, "FRRouting") {
		t.Fatalf("vtysh show version: %v %q", err, out)
	}

	testkit.For(t, 30*time.Second, "sessions between FRR and BIRD established", func() error {
		ns, err := frr.BGPNeighbors(ctx)
		if err != nil {
			return err
		}
		for _, a := range []netip.Addr{birdV4, birdV6} {
			if !ns[a].Established() {
				return errors.New("FRR: session to " + a.String() + " is " + ns[a].State)
			}
		}
		if ns[birdV4].AuthenticationEnabled != 1 {
			return errors.New("FRR: MD5 is not on for the IPv4 session")
		}
		for _, name := range []string{"frr4", "frr6"} {
			p, err := bird.Protocol(ctx, name)
			if err != nil {
				return err
			}
			if !p.Established() {
				return errors.New("BIRD: " + name + " is " + p.BGPState + " " + p.LastError)
			}
		}
		return nil
	})

	// FRR learned BIRD's routes, chose them and installed them in its kernel.
	testkit.For(t, 20*time.Second, "BIRD's routes at FRR and in its kernel", func() error {
		for _, c := range []struct {
			prefix netip.Prefix
			via    netip.Addr
		}{{birdNet4, birdV4}, {birdNet6, birdV6}} {
			rt, err := frr.BGPRoute(ctx, c.prefix)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(rt.Paths, func(p BGPPath) bool {
				return p.Best && p.ASPath == "64513" && len(p.NextHops) > 0 && p.NextHops[0].IP == c.via
			}) {
				return errors.New("FRR: no best path via " + c.via.String() + " for " + c.prefix.String())
			}
			rib, err := frr.RIBRoutes(ctx, c.prefix)
			if err != nil {
				return err
			}
			if rib[0].Protocol != "bgp" || !rib[0].Installed {
				return errors.New("FRR: zebra did not install " + c.prefix.String())
			}
			k, err := KernelRouteFor(ctx, nsF, c.prefix)
			if err != nil {
				return err
			}
			// BIRD sends its IPv6 link-local next hop too; FRR forwards to that one.
			if k.Protocol != "bgp" || k.Dev != "eth0" && len(k.NextHops) == 0 ||
				!slices.ContainsFunc(k.Gateways(), func(gw string) bool {
					a, _ := netip.ParseAddr(gw)
					return a == c.via || a.IsLinkLocalUnicast()
				}) {
				return errors.New("FRR kernel: " + c.prefix.String() + " not via " + c.via.String())
			}
		}
		return nil
	})

	// BIRD learned FRR's routes and exported them to its kernel.
	testkit.For(t, 20*time.Second, "FRR's routes at BIRD and in its kernel", func() error {
		for _, c := range []struct {
			prefix netip.Prefix
			via    netip.Addr
		}{{frrNet4, frrV4}, {frrNet6, frrV6}} {
			rts, err := bird.Routes(ctx, c.prefix)
			if err != nil {
				return err
			}
			if !rts[0].Primary || rts[0].ASPath != "64512" || len(rts[0].Via) == 0 || rts[0].Via[0].Addr != c.via {
				return errors.New("BIRD: unexpected route for " + c.prefix.String())
			}
			k, err := KernelRouteFor(ctx, nsB, c.prefix)
			if err != nil {
				return err
			}
			if k.Protocol != "bird" || !slices.Contains(k.Gateways(), c.via.String()) {
				return errors.New("BIRD kernel: " + c.prefix.String() + " not via " + c.via.String())
			}
		}
		return nil
	})

	// BFD is up on both sides with the configured timers.
	testkit.For(t, 10*time.Second, "BFD up on both sides", func() error {
		peers, err := frr.BFDPeers(ctx)
		if err != nil {
			return err
		}
		if len(peers) != 1 || peers[0].Status != "up" || peers[0].TransmitInterval != 100 || peers[0].DetectMultiplier != 3 {
			return errors.New("FRR BFD not up at 100 ms x 3")
		}
		sessions, err := bird.BFDSessions(ctx)
		if err != nil {
			return err
		}
		if len(sessions) != 1 || sessions[0].State != "Up" {
			return errors.New("BIRD BFD not up")
		}
		return nil
	})

	pids := append([]int{bird.PID()}, mapValues(frr.PIDs())...)
	if err := frr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bird.Close(); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	left, err := netns.Leftovers(reg.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Fatalf("router process %d survived Close", pid)
		}
	}
}
