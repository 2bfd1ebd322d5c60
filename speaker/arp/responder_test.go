package arp_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/speaker/announce/lantest"
	"github.com/heraldlb/herald/speaker/arp"
)

func TestAnswersOnlyForOwnedAddressesAndTakeoverMovesTheClient(t *testing.T) {
	lan := lantest.New(t)
	vip := netip.MustParseAddr(lantest.VIP4)
	macA, macA1, macB := lantest.MAC(t, lan.NodeA, "eth0"), lantest.MAC(t, lan.NodeA, "eth1"), lantest.MAC(t, lan.NodeB, "eth0")

	a := arp.New("eth0", nil)
	a.Set([]netip.Addr{vip, netip.MustParseAddr("2001:db8:100::5")}) // the IPv6 one is ignored
	b := arp.New("eth0", nil)
	b.Set([]netip.Addr{netip.MustParseAddr("198.51.100.6")})
	lantest.Serve(t, lan.NodeA, a)
	lantest.Serve(t, lan.NodeB, b)

	if got := lan.Arping(t, lantest.VIP4, 1); !slices.Equal(got, []string{macA}) {
		t.Fatalf("arping %s: replies from %v, want exactly one from node A (%s)", vip, got, macA)
	}
	if got := lan.Arping(t, lantest.VIP4, 3); !slices.Equal(got, []string{macA, macA, macA}) {
		t.Fatalf("arping -c3 %s: replies from %v, want three from node A (%s); B is %s, A's eth1 %s", vip, got, macA, macB, macA1)
	}
	if got := lan.Arping(t, "198.51.100.7", 2); len(got) != 0 {
		t.Fatalf("an address nobody owns was answered by %v", got)
	}
	if got := lan.Arping(t, "198.51.100.6", 1); !slices.Equal(got, []string{macB}) {
		t.Fatalf("arping 198.51.100.6: replies from %v, want node B (%s)", got, macB)
	}
	if s := a.Stats(); s.Answered != 4 || s.Gratuitous != 1 {
		t.Fatalf("node A stats %+v, want 4 answered and the 1 gratuitous ARP of Run", s)
	}

	// The client talks to the VIP through A; B takes over and announces.
	lan.Resolve(lantest.VIP4)
	if mac, state := lan.Neigh(t, lantest.VIP4); mac != macA {
		t.Fatalf("client neighbour entry for %s: %q (%s), want node A's %s", vip, mac, state, macA)
	}
	b.Set([]netip.Addr{vip})
	a.Set(nil)
	if err := b.Gratuitous(vip); err != nil {
		t.Fatal(err)
	}
	lantest.Eventually(t, time.Second, func() error {
		if mac, state := lan.Neigh(t, lantest.VIP4); mac != macB {
			return fmt.Errorf("client still has %s (%s) for %s, want node B's %s", mac, state, vip, macB)
		}
		return nil
	})

	// A dropped the address: only B answers from now on.
	answeredA := a.Stats().Answered
	if got := lan.Arping(t, lantest.VIP4, 2); !slices.Equal(got, []string{macB, macB}) {
		t.Fatalf("after the takeover replies came from %v, want two from node B (%s)", got, macB)
	}
	if got := a.Stats().Answered; got != answeredA {
		t.Fatalf("node A answered %d requests after it dropped %s", got-answeredA, vip)
	}

	// An ARP probe (sender 0.0.0.0, RFC 5227) for an owned address is
	// answered: the owner defends it.
	out, _ := lan.Client.Run(context.Background(), "arping", "-0", "-i", "eth0", "-c", "1", "-w", "0.3", lantest.VIP4)
	if !strings.Contains(strings.ToLower(out), macB) {
		t.Fatalf("ARP probe for %s not answered by node B:\n%s", vip, out)
	}

	b.Set(nil)
	if got := lan.Arping(t, lantest.VIP4, 2); len(got) != 0 {
		t.Fatalf("after every owner dropped %s it was answered by %v", vip, got)
	}
	for _, ns := range []*netns.NS{lan.NodeA, lan.NodeB} {
		if out := ns.MustRun(context.Background(), "ip", "addr"); strings.Contains(out, "198.51.100.") {
			t.Fatalf("a service address was configured in %s:\n%s", ns.Name, out)
		}
	}
}

func TestGratuitousNeedsOwnershipAndARunningSocket(t *testing.T) {
	r := arp.New("eth0", nil)
	vip := netip.MustParseAddr(lantest.VIP4)
	if err := r.Gratuitous(vip); err == nil || !strings.Contains(err.Error(), "not owned") {
		t.Fatalf("Gratuitous for an address not owned: %v", err)
	}
	r.Set([]netip.Addr{vip})
	if err := r.Gratuitous(vip); !errors.Is(err, arp.ErrNotRunning) {
		t.Fatalf("Gratuitous before Run: %v, want ErrNotRunning", err)
	}
	if !r.Owns(vip) || r.Owns(netip.MustParseAddr("198.51.100.6")) {
		t.Fatal("Owns disagrees with Set")
	}
}
