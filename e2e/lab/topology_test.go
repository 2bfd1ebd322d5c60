package lab_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
)

func TestTopologyLinksAndAddressesWork(t *testing.T) {
	l := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	members := []*lab.Host{&l.FRR.Host, &l.BIRD.Host, l.Client}
	for _, n := range l.Nodes {
		members = append(members, &n.Host)
	}
	ports, err := l.LAN.Run(ctx, "ip", "-o", "link", "show", "master", "br0")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range members {
		if !strings.Contains(ports, " "+h.Port+"@") || !strings.Contains(ports, "state UP") {
			t.Errorf("LAN bridge port %s of %s missing or down; bridge ports:\n%s", h.Port, h.Name, ports)
		}
	}

	// Every LAN member reaches every other over IPv4 and IPv6.
	var pings []pingCheck
	for _, from := range members {
		for _, to := range members {
			if from != to {
				pings = append(pings, pingCheck{from, to.IPv4.String(), to.Name}, pingCheck{from, to.IPv6.String(), to.Name})
			}
		}
	}
	// The external client reaches both routers, and the LAN through FRR.
	pings = append(pings,
		pingCheck{l.Ext, "10.1.0.1", "frr (ext link)"}, pingCheck{l.Ext, "fd00:11::1", "frr (ext link)"},
		pingCheck{l.Ext, "10.2.0.1", "bird (ext link)"}, pingCheck{l.Ext, "fd00:12::1", "bird (ext link)"},
		pingCheck{l.Ext, l.Nodes[0].IPv4.String(), "node1 via frr"}, pingCheck{l.Ext, l.Nodes[0].IPv6.String(), "node1 via frr"})
	for _, err := range runPings(ctx, pings) {
		t.Error(err)
	}

	// Node addresses follow the plan: node i is 10.0.0.(10+i) and fd00:10::(10+i).
	for i, n := range l.Nodes {
		if want := fmt.Sprintf("10.0.0.%d", 11+i); n.IPv4.String() != want {
			t.Errorf("%s has IPv4 %s, want %s", n.Name, n.IPv4, want)
		}
		if want := fmt.Sprintf("fd00:10::%d", 11+i); n.IPv6.String() != want {
			t.Errorf("%s has IPv6 %s, want %s", n.Name, n.IPv6, want)
		}
	}
	// arping and ndisc6 from the LAN client return the node's own MAC.
	n1 := l.Nodes[0]
	mac, err := n1.MAC()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Client.Arping(ctx, n1.IPv4.String()); err != nil || got.String() != mac.String() {
		t.Errorf("arping %s from the client: %v, %v; want %s", n1.IPv4, got, err, mac)
	}
	if got, err := l.Client.Ndisc6(ctx, n1.IPv6.String()); err != nil || got.String() != mac.String() {
		t.Errorf("ndisc6 %s from the client: %v, %v; want %s", n1.IPv6, got, err, mac)
	}
	if got, err := l.Client.Neighbor(ctx, n1.IPv4.String()); err != nil || got.String() != mac.String() {
		t.Errorf("client neighbour entry for %s: %v, %v; want %s", n1.IPv4, got, err, mac)
	}

	// The LAN client treats the Layer 2 pool as on-link: it would ARP for it.
	route, err := l.Client.Run(ctx, "ip", "route", "get", "198.51.100.20")
	if err != nil || strings.Contains(route, " via ") || !strings.Contains(route, "dev eth0") {
		t.Errorf("LAN client route to the L2 pool should be on-link via eth0, got %q (%v)", route, err)
	}
}

func TestRoutersAnswerOnTheirControlSockets(t *testing.T) {
	l := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if l.FRR.FRR == nil || l.BIRD.BIRD == nil {
		t.Fatal("the lab started without its routers")
	}
	out, err := l.FRR.FRR.Vtysh(ctx, "show version")
	if err != nil || !strings.Contains(out, "FRRouting") {
		t.Fatalf("FRR vtysh show version: %v\n%s", err, out)
	}
	bgp, err := l.FRR.FRR.Vtysh(ctx, "show running-config")
	if err != nil || !strings.Contains(bgp, "router bgp 64512") || !strings.Contains(bgp, "bgp listen range 10.0.0.0/24 peer-group nodes") {
		t.Fatalf("FRR running config lacks the lab's BGP setup (router bgp 64512, listen range for the LAN): %v\n%s", err, bgp)
	}
	if _, err := l.FRR.FRR.BGPNeighbors(ctx); err != nil {
		t.Fatalf("FRR BGP neighbors query: %v", err)
	}
	protos, err := l.BIRD.BIRD.Protocols(ctx)
	if err != nil {
		t.Fatalf("birdc show protocols: %v", err)
	}
	for _, name := range []string{"nodes4", "nodes6", "kernel_ipv4", "kernel_ipv6"} {
		if _, ok := protos[name]; !ok {
			t.Errorf("BIRD has no protocol %s; has %v", name, keys(protos))
		}
	}
}

type pingCheck struct {
	from *lab.Host
	addr string
	what string
}

// runPings runs the pings in parallel, a few at a time, and returns the failures.
func runPings(ctx context.Context, checks []pingCheck) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
	)
	for _, c := range checks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if out, err := c.from.Run(ctx, "ping", "-c1", "-W2", c.addr); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s cannot ping %s (%s): %w\n%s", c.from.Name, c.addr, c.what, err, out))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
