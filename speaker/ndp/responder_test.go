package ndp_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/speaker/announce/lantest"
	"github.com/heraldlb/herald/speaker/ndp"
)

// groups lists the IPv6 multicast groups eth0 of ns is a member of.
func groups(t *testing.T, ns *netns.NS) string {
	t.Helper()
	return ns.MustRun(context.Background(), "ip", "-6", "maddr", "show", "dev", "eth0")
}

func TestAnswersOnlyForOwnedAddressesAndTakeoverMovesTheClient(t *testing.T) {
	lan := lantest.New(t)
	ctx := context.Background()
	vip := netip.MustParseAddr(lantest.VIP6)
	group := "ff02::1:ff00:5"
	macA, macB := lantest.MAC(t, lan.NodeA, "eth0"), lantest.MAC(t, lan.NodeB, "eth0")

	a := ndp.New("eth0", nil)
	a.Set([]netip.Addr{vip, netip.MustParseAddr(lantest.VIP4)}) // the IPv4 one is ignored
	b := ndp.New("eth0", nil)
	b.Set([]netip.Addr{netip.MustParseAddr("2001:db8:100::6")})
	lantest.Serve(t, lan.NodeA, a)
	lantest.Serve(t, lan.NodeB, b)

	if !strings.Contains(groups(t, lan.NodeA), group) {
		t.Fatalf("node A did not join %s:\n%s", group, groups(t, lan.NodeA))
	}
	if got := lan.Ndisc(t, lantest.VIP6); !slices.Equal(got, []string{macA}) {
		t.Fatalf("ndisc6 %s: advertisements for %v, want exactly one for node A (%s); B is %s", vip, got, macA, macB)
	}
	if got := lan.Ndisc(t, "2001:db8:100::7"); len(got) != 0 {
		t.Fatalf("an address nobody owns was answered with %v", got)
	}
	if got := lan.Ndisc(t, "2001:db8:100::6"); !slices.Equal(got, []string{macB}) {
		t.Fatalf("ndisc6 2001:db8:100::6: %v, want node B (%s)", got, macB)
	}

	// The client's kernel resolves the VIP (multicast solicitation), then
	// confirms it with a unicast solicitation once the entry went stale:
	// both must be answered although the kernel drops packets for an
	// address it does not have.
	lan.Resolve(lantest.VIP6)
	if mac, state := lan.Neigh(t, lantest.VIP6); mac != macA || state != "REACHABLE" {
		t.Fatalf("client neighbour entry for %s: %s %s, want node A's %s REACHABLE", vip, mac, state, macA)
	}
	lan.Client.MustRun(ctx, "sysctl", "-qw", "net.ipv6.neigh.eth0.delay_first_probe_time=1")
	lan.Client.MustRun(ctx, "ip", "neigh", "change", lantest.VIP6, "lladdr", macA, "dev", "eth0", "nud", "stale")
	before := a.Stats().Answered
	lan.Resolve(lantest.VIP6)
	testkit.For(t, 4*time.Second, "condition", func() error {
		if mac, state := lan.Neigh(t, lantest.VIP6); mac != macA || state != "REACHABLE" {
			return fmt.Errorf("client neighbour entry for %s: %s %s after the unicast probe, want node A's %s REACHABLE", vip, mac, state, macA)
		}
		return nil
	})
	if a.Stats().Answered == before {
		t.Fatal("the entry became reachable without node A answering the unicast probe")
	}

	// B takes over and announces: the client moves without soliciting.
	b.Set([]netip.Addr{vip})
	a.Set(nil)
	if err := b.Gratuitous(vip); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, time.Second, "condition", func() error {
		if mac, state := lan.Neigh(t, lantest.VIP6); mac != macB {
			return fmt.Errorf("client still has %s (%s) for %s, want node B's %s", mac, state, vip, macB)
		}
		return nil
	})
	if strings.Contains(groups(t, lan.NodeA), group) {
		t.Fatalf("node A still in %s after dropping %s", group, vip)
	}
	if !strings.Contains(groups(t, lan.NodeB), group) || !slices.Contains(b.Groups(), netip.MustParseAddr(group)) {
		t.Fatalf("node B did not join %s: %v\n%s", group, b.Groups(), groups(t, lan.NodeB))
	}
	answeredA := a.Stats().Answered
	if got := lan.Ndisc(t, lantest.VIP6); !slices.Equal(got, []string{macB}) {
		t.Fatalf("after the takeover: advertisements for %v, want node B (%s)", got, macB)
	}
	if got := a.Stats().Answered; got != answeredA {
		t.Fatalf("node A answered %d solicitations after it dropped %s", got-answeredA, vip)
	}
	if s := b.Stats(); s.Gratuitous != 2 {
		t.Fatalf("node B sent %d unsolicited advertisements, want 2 (2001:db8:100::6 when Run started, then the takeover)", s.Gratuitous)
	}

	b.Set(nil)
	if got := lan.Ndisc(t, lantest.VIP6); len(got) != 0 {
		t.Fatalf("after every owner dropped %s it was answered with %v", vip, got)
	}
	for _, ns := range []*netns.NS{lan.NodeA, lan.NodeB} {
		if out := ns.MustRun(ctx, "ip", "addr"); strings.Contains(out, "2001:db8:100:") {
			t.Fatalf("a service address was configured in %s:\n%s", ns.Name, out)
		}
	}
}
