package announce

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/speaker/announce/lantest"
)

// The system listing and route lookup, run inside node A of the test LAN.
func TestSystemInterfacesAndRoutedInterface(t *testing.T) {
	lan := lantest.New(t)
	lan.NodeA.MustRun(context.Background(), "ip", "link", "set", "eth1", "arp", "off")
	var (
		ifaces          []Interface
		routed, routed6 string
		onEth1          string
	)
	err := lan.NodeA.Do(func() error {
		var err error
		if ifaces, err = systemInterfaces(); err != nil {
			return err
		}
		routed = routedInterface(netip.MustParseAddr("198.51.100.5"), ifaces)
		routed6 = routedInterface(netip.MustParseAddr("2001:db8:100::5"), ifaces)
		onEth1 = routedInterface(netip.MustParseAddr("10.71.0.9"), ifaces)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Interface{}
	for _, i := range ifaces {
		byName[i.Name] = i
	}
	eth0, eth1, lo := byName["eth0"], byName["eth1"], byName["lo"]
	if !eth0.Up || !eth0.Broadcast || eth0.Loopback ||
		!slices.Contains(eth0.Prefixes, netip.MustParsePrefix("10.70.0.1/24")) ||
		!slices.Contains(eth0.Prefixes, netip.MustParsePrefix("2001:db8:70::1/64")) {
		t.Fatalf("eth0 listed as %+v", eth0)
	}
	if eth1.Broadcast || !eth1.Up {
		t.Fatalf("eth1 with ARP off listed as %+v: it must not count as usable", eth1)
	}
	if !lo.Loopback || lo.Broadcast {
		t.Fatalf("lo listed as %+v", lo)
	}
	if routed != "eth0" || routed6 != "eth0" || onEth1 != "eth1" {
		t.Fatalf("routed interfaces: %q, %q, %q; want eth0, eth0, eth1", routed, routed6, onEth1)
	}
	if got := fmt.Sprint(DefaultInterface(netip.MustParseAddr("10.71.0.9"), ifaces, onEth1)); got != "" {
		t.Fatalf("an IP in eth1's subnet with eth1's ARP off went to %q", got)
	}
}

// The kernel's link, address and route changes reach linkEvents, and a
// link whose peer is down (no carrier) is listed as not up.
func TestSystemLinkEvents(t *testing.T) {
	lan := lantest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { done <- lan.NodeA.Do(func() error { return linkEvents(ctx, events) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	expectIn := func(ns *netns.NS, what string, cmd ...string) {
		t.Helper()
		// drain what came before (the subscription may still be settling)
		select {
		case <-events:
		default:
		}
		ns.MustRun(context.Background(), cmd...)
		select {
		case <-events:
		case <-time.After(5 * time.Second):
			t.Fatalf("no link event after %s", what)
		}
	}
	// The subscription is set up on its own goroutine: wait until an event
	// arrives for a harmless change before asserting.
	testkit.For(t, 5*time.Second, "the subscription works", func() error {
		lan.NodeA.MustRun(context.Background(), "ip", "link", "set", "eth1", "mtu", "1400")
		lan.NodeA.MustRun(context.Background(), "ip", "link", "set", "eth1", "mtu", "1500")
		select {
		case <-events:
			return nil
		case <-time.After(200 * time.Millisecond):
			return fmt.Errorf("no event")
		}
	})
	expect := func(what string, cmd ...string) { t.Helper(); expectIn(lan.NodeA, what, cmd...) }
	eth1Up := func() bool {
		var ifaces []Interface
		if err := lan.NodeA.Do(func() (err error) { ifaces, err = systemInterfaces(); return err }); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ifaces, func(i Interface) bool { return i.Name == "eth1" })
		return i >= 0 && ifaces[i].Up
	}
	// The switch port of eth1 goes down: eth1 loses its carrier.
	expectIn(lan.Switch, "the carrier going away", "ip", "link", "set", "p2", "down")
	if eth1Up() {
		t.Fatal("eth1 without carrier is listed as up")
	}
	expectIn(lan.Switch, "the carrier coming back", "ip", "link", "set", "p2", "up")
	testkit.For(t, 5*time.Second, "eth1 listed as up with its carrier back", func() error {
		if !eth1Up() {
			return fmt.Errorf("eth1 not up")
		}
		return nil
	})
	expect("a link going down", "ip", "link", "set", "eth1", "down")
	expect("a link coming up", "ip", "link", "set", "eth1", "up")
	expect("a route added", "ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
	expect("a route removed", "ip", "route", "del", "203.0.113.0/24", "dev", "eth0")
}
