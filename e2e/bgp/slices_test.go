package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// advertised is what a node's slice should say of a Service's address.
type advertised struct {
	ip, prefix string
	peers      []string
}

// rightBGP checks that the slices say exactly this: each Service's address
// advertised by BGP by every node of nodes, with its prefix, to peers.
func rightBGP(want map[string]advertised, nodes []string) func([]lab.Announced) error {
	return func(as []lab.Announced) error {
		by := map[string][]string{}
		for _, a := range as {
			w, ok := want[a.Service]
			if !ok || a.IP != w.ip || a.Protocol != v1beta1.ProtocolBGP || a.Prefix != w.prefix || !slices.Equal(a.Peers, w.peers) {
				return fmt.Errorf("unexpected entry %+v", a)
			}
			by[a.Service] = append(by[a.Service], a.Node)
		}
		wrong := 0
		var example string
		for svc := range want {
			if got := by[svc]; !slices.Equal(got, nodes) {
				wrong++
				example = fmt.Sprintf("%s announced by %v, want %v", svc, got, nodes)
			}
		}
		if wrong > 0 {
			return fmt.Errorf("%d Services not right, e.g. %s", wrong, example)
		}
		return nil
	}
}

// serviceIPs lists the single address of each Service of namespace ns, by "ns/name".
func (e *env) serviceIPs(ctx context.Context, ns string) (map[string]netip.Addr, error) {
	var list corev1.ServiceList
	if err := e.API.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	out := map[string]netip.Addr{}
	for _, s := range list.Items {
		if ips := k8s.IngressIPs(s.Status.LoadBalancer); len(ips) == 1 {
			out[ns+"/"+s.Name] = ips[0]
		}
	}
	return out, nil
}

// A Service of the bgp pool and one of the aggregated pool: every node's
// AnnouncementSlice lists each address by BGP with the prefix sent (the
// /32, the /120 aggregate) and the peers it goes to; kubectl finds the
// three nodes by the Service's label. A SIGKILL of a speaker: FRR drops
// its next hop, and the janitor deletes its slice, the one write; the
// restarted speaker writes it again.
func TestAnnouncementSlicesListPeers(t *testing.T) {
	e := herald(t)
	ctx := labtest.Context(t, 3*time.Minute)
	sw, err := e.WatchSlices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Stop()
	const ns = "t-bgpslices"
	labtest.Namespace(t, e.Lab, ns)
	for _, s := range []*corev1.Service{objects.Service(ns, "plain", objects.FromPool(poolBGP), objects.Families(corev1.IPFamilyPolicySingleStack, corev1.IPv4Protocol)), objects.Service(ns, "agg", objects.FromPool(poolAgg), objects.Families(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol))} {
		if err := e.API.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var ips map[string]netip.Addr
	testkit.For(t, 20*time.Second, "both Services have an address", func() error {
		if ips, err = e.serviceIPs(ctx, ns); err == nil && len(ips) != 2 {
			err = fmt.Errorf("addresses %v", ips)
		}
		return err
	})
	peers := []string{peerBIRD4, peerBIRD6, peerFRR4}
	plain, agg := ips[ns+"/plain"], ips[ns+"/agg"]
	want := map[string]advertised{
		ns + "/plain": {plain.String(), netip.PrefixFrom(plain, 32).String(), peers},
		ns + "/agg":   {agg.String(), netip.PrefixFrom(agg, 120).Masked().String(), peers},
	}
	all := e.NodeNames()
	if _, err := sw.Wait(ctx, ns, rightBGP(want, all)); err != nil {
		t.Fatal(err)
	}
	label := v1beta1.ServiceLabel(ns, "plain")
	out, err := e.Kubectl(ctx, "get", "announcementslices", "-l", label, "-L", label)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get announcementslices -l %s -L %s:\n%s", label, label, out)
	var nodes []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 2 && f[len(f)-1] == "BGP" {
			nodes = append(nodes, f[1])
		}
	}
	if !slices.Equal(nodes, all) {
		t.Errorf("kubectl lists %v announcing by BGP, want %v", nodes, all)
	}

	victim := all[len(all)-1] // not the janitor
	survivors := all[:len(all)-1]
	c0, t0 := sw.Counts(), time.Now()
	if err := e.Speaker(victim).Kill(); err != nil {
		t.Fatal(err)
	}
	rest := slices.DeleteFunc(e.NodeAddrs(false), func(a netip.Addr) bool { return a == e.Node(victim).IPv4 })
	st, err := e.w.Wait(ctx, netip.PrefixFrom(plain, 32), func(st routers.RouteState) bool {
		return st.Present && st.Since.After(t0) && slices.Equal(st.Gateways, rest)
	})
	if err != nil {
		t.Fatal(err)
	}
	at, err := sw.Wait(ctx, ns, func(as []lab.Announced) error {
		if names := sw.SliceNames(victim); len(names) > 0 {
			return fmt.Errorf("%s's slices %v are still there", victim, names)
		}
		return rightBGP(want, survivors)(as)
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // late writes count too
	writes := sw.Counts().Sub(c0)
	t.Logf("SIGKILL of %s's speaker: its next hop gone at FRR after %v, the slices right after %v, %v", victim,
		st.Since.Sub(t0).Round(time.Millisecond), at.Sub(t0).Round(time.Millisecond), writes)
	if writes != (lab.SliceCounts{Deleted: 1}) {
		t.Errorf("the failover cost %v, want one delete (the victim's slice)", writes)
	}
	if at.Sub(t0) > 10*time.Second {
		t.Errorf("slices right %v after the kill, bound 10 s", at.Sub(t0))
	}
	if err := e.Speaker(victim).Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Wait(ctx, ns, rightBGP(want, all)); err != nil {
		t.Fatal(err)
	}
}

// TestMeasureBGPSliceWrites measures, for docs/benchmarks.md, what a SIGKILL
// costs the AnnouncementSlices with 10,000 IPv6 Services advertised by
// every node to FRR (HERALD_MEASURE_SERVICES, HERALD_MEASURE_TRIALS: 5),
// each trial killing another node's speaker:
//
//	HERALD_MEASURE=1 go test ./e2e/bgp -run TestMeasureBGPSliceWrites -v -timeout 60m
func TestMeasureBGPSliceWrites(t *testing.T) {
	if !labtest.Measuring() {
		t.Skip("measurement: set HERALD_MEASURE=1")
	}
	n, trials := testkit.EnvInt(t, "HERALD_MEASURE_SERVICES", 10000), testkit.EnvInt(t, "HERALD_MEASURE_TRIALS", 5)
	e := herald(t)
	ctx := labtest.Context(t, 50*time.Minute)
	e.scaleSetup(ctx, t)
	sw, err := e.WatchSlices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Stop()
	const ns = "t-bgpslicescale"
	labtest.Namespace(t, e.Lab, ns)
	c0, start := sw.Counts(), time.Now()
	if err := e.CreateServices(ctx, ns, "scale", corev1.IPv6Protocol, n); err != nil {
		t.Fatal(err)
	}
	// The slices list every Service from every node (a watch, not a List
	// per check); then one List reads the addresses.
	if _, err := sw.Wait(ctx, ns, func(as []lab.Announced) error {
		if len(as) < n*len(e.Nodes) {
			return fmt.Errorf("%d of %d entries", len(as), n*len(e.Nodes))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ips, err := e.serviceIPs(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]advertised{}
	for svc, ip := range ips {
		want[svc] = advertised{ip.String(), netip.PrefixFrom(ip, 128).String(), []string{peerFRR6}}
	}
	all := e.NodeNames()
	at, err := sw.Wait(ctx, ns, rightBGP(want, all))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d Services created and right in the slices after %v: %v", n, at.Sub(start).Round(time.Millisecond), sw.Counts().Sub(c0))

	type result struct {
		right, atFRR, restored time.Duration
		failover, restore      lab.SliceCounts
	}
	var results []result
	for i := range trials {
		victim := all[i%len(all)]
		survivors := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == victim })
		var r result
		c0, t0 := sw.Counts(), time.Now()
		if err := e.Speaker(victim).Kill(); err != nil {
			t.Fatal(err)
		}
		at, err := sw.Wait(ctx, ns, func(as []lab.Announced) error {
			if names := sw.SliceNames(victim); len(names) > 0 {
				return fmt.Errorf("%s's slices %v are still there", victim, names)
			}
			return rightBGP(want, survivors)(as)
		})
		if err != nil {
			t.Fatal(err)
		}
		r.right = at.Sub(t0)
		err = poll.Until(ctx, 20*time.Millisecond, func() error {
			c, last, _ := e.w.Count(scalePool, func(st routers.RouteState) bool { return len(st.Gateways) == len(survivors) })
			if c < n {
				return fmt.Errorf("%d of %d routes via the survivors only", c, n)
			}
			r.atFRR = last.Sub(t0)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		r.failover = sw.Counts().Sub(c0)
		t.Logf("slice writes after the kill: %s", strings.Join(sw.Timeline(t0), ", "))
		c1, t1 := sw.Counts(), time.Now()
		if err := e.Speaker(victim).Start(); err != nil {
			t.Fatal(err)
		}
		at, err = sw.Wait(ctx, ns, rightBGP(want, all))
		if err != nil {
			t.Fatal(err)
		}
		r.restored = at.Sub(t1)
		time.Sleep(2 * time.Second)
		r.restore = sw.Counts().Sub(c1)
		t.Logf("trial %d: SIGKILL of %s's speaker: all %d routes via the survivors at FRR after %v, slices right after %v, %v; restart: right after %v, %v",
			i+1, victim, n, r.atFRR.Round(time.Millisecond), r.right.Round(time.Millisecond), r.failover, r.restored.Round(time.Millisecond), r.restore)
		results = append(results, r)
		if err := e.waitSessions(ctx); err != nil {
			t.Fatal(err)
		}
	}
	med := func(get func(result) float64) float64 {
		var xs []float64
		for _, r := range results {
			xs = append(xs, get(r))
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	t.Logf("medians over %d trials, %d Services (each loses a node): failover writes %.0f (deleted %.0f), slices right %.2f s after the kill, all routes via the survivors at FRR after %.2f s; restart: writes %.0f, right %.2f s after the start",
		len(results), n, med(func(r result) float64 { return float64(r.failover.Total()) }), med(func(r result) float64 { return float64(r.failover.Deleted) }),
		med(func(r result) float64 { return r.right.Seconds() }), med(func(r result) float64 { return r.atFRR.Seconds() }),
		med(func(r result) float64 { return float64(r.restore.Total()) }), med(func(r result) float64 { return r.restored.Seconds() }))
}
