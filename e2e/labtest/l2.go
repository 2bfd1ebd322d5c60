package labtest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/testkit/objects"
	"github.com/heraldlb/herald/speaker/election"
)

// L2Pool makes a pool that only Services naming it use, with one
// L2Advertisement, removed after the test.
func L2Pool(t testing.TB, h *lab.Herald, name string, ranges []v1beta1.AddressRange, adv v1beta1.L2AdvertisementSpec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adv.PoolSelection = v1beta1.PoolSelection{IPPools: []string{name}}
	p := objects.Pool(name, false, ranges...)
	a := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: adv}
	if err := h.Create(ctx, p, a); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = h.API.Delete(ctx, a)
		_ = h.API.Delete(ctx, p)
	})
}

// RankedAddrs picks, for each node, an IPv4 and an IPv6 address of
// 198.51.100.<from-to> and 2001:db8:100::<from-to> that the node ranks
// first for among all of them.
func RankedAddrs(t testing.TB, nodes []string, from, to int) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	used := map[string]bool{}
	for _, n := range nodes {
		var pair [2]string
		for fam := range 2 {
			for i := from; i <= to && pair[fam] == ""; i++ {
				ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
				if fam == 1 {
					ip = netip.MustParseAddr(fmt.Sprintf("2001:db8:100::%d", i))
				}
				if election.Owner(ip, nodes) == n && !used[ip.String()] {
					pair[fam] = ip.String()
					used[ip.String()] = true
				}
			}
			if pair[fam] == "" {
				t.Fatalf("no address in %d-%d ranks %s first", from, to, n)
			}
		}
		out[n] = pair
	}
	return out
}

// OwnedEverywhere deploys, in a pool of its own (198.51.100.<from-to>,
// 2001:db8:100::<from-to>), one dual-stack Service per node with addresses
// that node ranks first for, waits until each has one owner, and returns
// every address, sorted.
func OwnedEverywhere(t testing.TB, h *lab.Herald, name string, from, to int) []string {
	t.Helper()
	L2Pool(t, h, name, []v1beta1.AddressRange{
		v1beta1.AddressRange(fmt.Sprintf("198.51.100.%d-198.51.100.%d", from, to)),
		v1beta1.AddressRange(fmt.Sprintf("2001:db8:100::%d-2001:db8:100::%d", from, to)),
	}, v1beta1.L2AdvertisementSpec{})
	var ips []string
	for node, pair := range RankedAddrs(t, h.NodeNames(), from, to) {
		w := Deploy(t, h.Lab, lab.WorkloadSpec{Name: name + "-" + node, Replicas: 1, Pool: name,
			Annotations: map[string]string{"herald.dev/load-balancer-ips": pair[0] + "," + pair[1]}})
		ips = append(ips, w.IPs...)
	}
	slices.Sort(ips)
	ctx := Context(t, time.Minute)
	for _, ip := range ips {
		if _, err := h.WaitOwner(ctx, ip); err != nil {
			t.Fatal(err)
		}
	}
	return ips
}
