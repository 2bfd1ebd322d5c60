package netif

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"

	"github.com/heraldlb/herald/speaker/announce/lantest"
)

// List inside a namespace of the test LAN agrees with the net package
// (names, indexes, MACs, addresses) and adds what it hides: IFF_NOARP and
// the carrier flag.
func TestListAgreesWithTheNetPackage(t *testing.T) {
	sw := lantest.NewSwitch(t)
	ns := sw.AddHost(t, "h")
	sw.Plug(t, ns, "eth0", "10.70.0.1/24", "2001:db8:70::1/64")
	sw.Plug(t, ns, "eth1", "10.71.0.1/24")
	ctx := context.Background()
	ns.MustRun(ctx, "ip", "link", "set", "eth1", "arp", "off")
	// A point-to-point address: the interface's own is 10.9.0.1, not the peer.
	ns.MustRun(ctx, "ip", "addr", "add", "10.9.0.1", "peer", "10.9.0.2/32", "dev", "eth1")

	var list []Interface
	var want []net.Interface
	wantAddrs := map[string][]netip.Addr{}
	err := ns.Do(func() error {
		var err error
		if list, err = List(); err != nil {
			return err
		}
		if want, err = net.Interfaces(); err != nil {
			return err
		}
		for _, ifi := range want {
			addrs, err := ifi.Addrs()
			if err != nil {
				return err
			}
			for _, a := range addrs {
				ip, _ := netip.AddrFromSlice(a.(*net.IPNet).IP)
				wantAddrs[ifi.Name] = append(wantAddrs[ifi.Name], ip.Unmap())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(want) {
		t.Fatalf("List: %d interfaces, the net package %d", len(list), len(want))
	}
	byName := map[string]Interface{}
	for i, got := range list {
		w := want[i]
		var addrs []netip.Addr
		for _, p := range got.Prefixes {
			addrs = append(addrs, p.Addr())
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		slices.SortFunc(wantAddrs[w.Name], netip.Addr.Compare)
		if got.Index != w.Index || got.Name != w.Name || (w.HardwareAddr != nil && got.MAC.String() != w.HardwareAddr.String()) ||
			!slices.Equal(addrs, wantAddrs[w.Name]) {
			t.Errorf("List has %+v, the net package %+v with %v", got, w, wantAddrs[w.Name])
		}
		byName[got.Name] = got
	}

	eth0, eth1, lo := byName["eth0"], byName["eth1"], byName["lo"]
	if eth0.Flags&syscall.IFF_UP == 0 || eth0.Flags&syscall.IFF_RUNNING == 0 || eth0.Flags&syscall.IFF_NOARP != 0 || len(eth0.MAC) != 6 ||
		!slices.Contains(eth0.Prefixes, netip.MustParsePrefix("10.70.0.1/24")) ||
		!slices.Contains(eth0.Prefixes, netip.MustParsePrefix("2001:db8:70::1/64")) {
		t.Errorf("eth0 listed as %+v", eth0)
	}
	if eth1.Flags&syscall.IFF_NOARP == 0 || !slices.Contains(eth1.Prefixes, netip.MustParsePrefix("10.9.0.1/32")) {
		t.Errorf("eth1 (ARP off, point-to-point address 10.9.0.1) listed as %+v", eth1)
	}
	if lo.Flags&syscall.IFF_LOOPBACK == 0 || !slices.Contains(lo.Prefixes, netip.MustParsePrefix("127.0.0.1/8")) {
		t.Errorf("lo listed as %+v", lo)
	}
}
