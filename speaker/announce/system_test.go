package announce

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

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
