package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// Per-Service communities (MetalLB #934): a second BGPAdvertisement of the
// pool selects Services labelled tier=gold and adds 64500:900. Labelling
// one Service gives its routes the community at FRR and BIRD, leaves the
// other Service's routes alone and resets no session; unlabelling takes
// it away again.
func TestServiceSelectorsGivePerServiceCommunities(t *testing.T) {
	e := herald(t)
	e.withoutBFD(t) // a loaded machine flaps 300 ms BFD sessions; this test counts resets
	ctx := labtest.Context(t, 3*time.Minute)
	before, err := e.resetCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gold := &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "gold"}, Spec: v1beta1.BGPAdvertisementSpec{
		PoolSelection: v1beta1.PoolSelection{IPPools: []string{poolBGP}}, Peers: []string{peerFRR4, peerBIRD4, peerBIRD6},
		ServiceSelectors: []v1beta1.LabelSelector{{MatchLabels: map[string]v1beta1.LabelValue{"tier": "gold"}}},
		Communities:      []v1beta1.Community{"64500:900"},
	}}
	if err := e.Create(ctx, gold); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.API.Delete(context.Background(), gold) })
	a := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "plain", Replicas: 1, Pool: poolBGP})
	b := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "gold", Replicas: 1, Pool: poolBGP})
	withGold := append(slices.Clone(bgpCommunities), "64500:900")
	communitiesAre := func(w *lab.Workload, want []string) func() error {
		return func() error {
			for _, ip := range w.IPs {
				if err := e.frrHops(ctx, hostPrefix(ip), e.NodeAddrs(hostPrefix(ip).Addr().Is6())); err != nil {
					return err
				}
				if err := e.attributesAt(ctx, hostPrefix(ip), want); err != nil {
					return err
				}
			}
			return nil
		}
	}
	testkit.For(t, 30*time.Second, "both Services with the base communities", func() error {
		if err := communitiesAre(a, bgpCommunities)(); err != nil {
			return err
		}
		return communitiesAre(b, bgpCommunities)()
	})
	label := func(w *lab.Workload, labels map[string]string) {
		t.Helper()
		if err := lab.Update(ctx, e.API, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name}}, func(s *corev1.Service) { s.Labels = labels }); err != nil {
			t.Fatal(err)
		}
	}
	unchanged := map[string]time.Time{}
	for _, ip := range a.IPs {
		unchanged[ip] = e.w.Route(hostPrefix(ip)).Since
	}
	label(b, map[string]string{"tier": "gold"})
	testkit.For(t, 30*time.Second, "the labelled Service's routes carry 64500:900", communitiesAre(b, withGold))
	if err := communitiesAre(a, bgpCommunities)(); err != nil {
		t.Errorf("the other Service: %v", err)
	}
	for _, ip := range a.IPs {
		if since := e.w.Route(hostPrefix(ip)).Since; !since.Equal(unchanged[ip]) {
			t.Errorf("FRR's kernel route for the other Service's %s changed at %v", ip, since)
		}
	}
	label(b, nil)
	testkit.For(t, 30*time.Second, "unlabelled: the base communities again", communitiesAre(b, bgpCommunities))
	if err := e.noResetSince(ctx, before); err != nil {
		t.Error(err)
	}
}

// pathFrom is the path FRR holds for prefix from the node at addr.
func (e *env) pathFrom(ctx context.Context, prefix netip.Prefix, addr netip.Addr) (routers.BGPPath, error) {
	rt, err := e.FRR.FRR.BGPRoute(ctx, prefix)
	if err != nil {
		return routers.BGPPath{}, err
	}
	for _, p := range rt.Paths {
		if p.PeerID == addr.String() {
			return p, nil
		}
	}
	return routers.BGPPath{}, fmt.Errorf("FRR has no path for %v from %v: %+v: %w", prefix, addr, rt.Paths, routers.ErrNotFound)
}

// failedExcept fails the test for every failed request of samples, except
// connections reset while FRR's kernel route for the address changed
// (changes: when): a flow open through one next hop that the router's ECMP
// hash moves to another node is reset there (that node has no state for
// it; the lab's FRR has no resilient hashing), which is the router's doing
// and no lost path.
func failedExcept(t *testing.T, what string, samples []lab.Sample, changes []time.Time, log string) {
	t.Helper()
	sum := lab.Summarize(samples)
	rehashed := 0
	for _, x := range samples {
		switch {
		case x.OK():
		case strings.Contains(x.Err, "connection reset") && slices.ContainsFunc(changes, func(c time.Time) bool {
			return !x.Sent.After(c.Add(5*time.Millisecond)) && !x.Sent.Add(x.Latency).Before(c.Add(-5*time.Millisecond))
		}):
			rehashed++
		default:
			t.Errorf("%s: the request sent at %s failed: %s (log %s)", what, x.Sent.Format("15:04:05.000"), x.Err, log)
		}
	}
	t.Logf("%s: %d requests, %d failed (%d reset by FRR's ECMP rehash), answered through %v", what, sum.Total, sum.Failed, rehashed, sum.ByNode)
	if sum.Total < 50 {
		t.Errorf("%s: only %d requests", what, sum.Total)
	}
}

// A drained node marks its routes GRACEFUL_SHUTDOWN (RFC 8326) first: FRR,
// which lowers such routes' LOCAL_PREF to 0, stops using the node while
// it still advertises and forwards; the withdrawal that follows changes
// nothing in FRR's forwarding. No session resets, no request lost while
// the external client probes through FRR. Back in service, the node is a
// next hop again.
func TestDrainShutsBGPRoutesDownGracefully(t *testing.T) {
	e := herald(t)
	e.withoutBFD(t) // a loaded machine flaps 300 ms BFD sessions, which would withdraw for us
	ctx := labtest.Context(t, 3*time.Minute)
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "gshut", Nodes: e.NodeNames(), Pool: poolBGP})
	node := e.Nodes[1]
	t.Cleanup(func() { _ = e.Drain(context.Background(), node.Name, false) })
	for _, ip := range w.IPs {
		if err := poll.Until(ctx, 100*time.Millisecond, func() error { return e.steady(ctx, hostPrefix(ip)) }); err != nil {
			t.Fatal(err)
		}
		// Every node's kube-proxy must forward the address (it follows the
		// EndpointSlices up to a second late) before the probes start.
		testkit.For(t, 15*time.Second, "requests through FRR reach the pods of every node", func() error {
			seen, err := e.getFromExt(ctx, ip, 30)
			if err == nil && (len(seen.nodes) < len(e.Nodes) || len(seen.failed) > 0) {
				err = fmt.Errorf("answers %v", seen)
			}
			return err
		})
	}
	before, err := e.resetCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	probes := map[string]*lab.Probe{}
	for _, ip := range w.IPs {
		probes[ip] = e.Ext.StartProbe(lab.URL(ip, 80), lab.ProbeOptions{Interval: 20 * time.Millisecond})
	}
	time.Sleep(300 * time.Millisecond)
	drained := time.Now()
	if err := e.Drain(ctx, node.Name, true); err != nil {
		t.Fatal(err)
	}
	changes := map[string][]time.Time{}
	for _, ip := range w.IPs {
		prefix := hostPrefix(ip)
		addr := node.IPv4
		if prefix.Addr().Is6() {
			addr = node.IPv6
		}
		rest := slices.DeleteFunc(e.NodeAddrs(prefix.Addr().Is6()), func(a netip.Addr) bool { return a == addr })
		took := testkit.For(t, 10*time.Second, fmt.Sprintf("FRR keeps %s's path for %v, marked, and stops using it", node.Name, prefix), func() error {
			p, err := e.pathFrom(ctx, prefix, node.IPv4)
			if err != nil {
				return err
			}
			if !slices.Contains(p.Communities, "graceful-shutdown") || p.LocalPref == nil || *p.LocalPref != 0 || p.Best || p.Multipath {
				return fmt.Errorf("%s's path: communities %v, local-pref %v, best %v, multipath %v", node.Name, p.Communities, p.LocalPref, p.Best, p.Multipath)
			}
			return e.frrHops(ctx, prefix, rest)
		})
		changes[ip] = append(changes[ip], e.w.Route(prefix).Since)
		t.Logf("%v: FRR moved off %s %v after the drain", prefix, node.Name, took.Round(time.Millisecond))
	}
	testkit.For(t, 5*time.Second, node.Name+"'s status says its routes are marked", func() error {
		st, err := e.SpeakerStatuses(ctx)
		if err != nil {
			return err
		}
		if c := apimeta.FindStatusCondition(st[node.Name].Conditions, "Excluded"); c == nil || c.Status != "True" || !strings.Contains(c.Message, "GRACEFUL_SHUTDOWN until") {
			return fmt.Errorf("Excluded condition %+v", c)
		}
		return nil
	})
	// Then the withdrawal (after --bgp-graceful-shutdown-time, 10 s):
	// FRR's forwarding does not change.
	for _, ip := range w.IPs {
		prefix := hostPrefix(ip)
		testkit.For(t, 20*time.Second, fmt.Sprintf("%s withdraws %v", node.Name, prefix), func() error {
			if _, err := e.pathFrom(ctx, prefix, node.IPv4); err == nil {
				return errors.New("still there")
			} else if !errors.Is(err, routers.ErrNotFound) {
				return err
			}
			return nil
		})
		if since := e.w.Route(prefix).Since; !since.Equal(changes[ip][0]) {
			t.Errorf("FRR's kernel route for %v changed again at %v, when the marked path was withdrawn", prefix, since)
		}
	}
	t.Logf("withdrawn %v after the drain", time.Since(drained).Round(time.Millisecond))
	if err := e.Event(ctx, "", node.Name, "WithdrawnFromLoadBalancing", "announces nothing now"); err != nil {
		t.Error(err)
	}

	if err := e.Drain(ctx, node.Name, false); err != nil {
		t.Fatal(err)
	}
	for _, ip := range w.IPs {
		prefix := hostPrefix(ip)
		testkit.For(t, 20*time.Second, fmt.Sprintf("%s is a next hop for %v again", node.Name, prefix), func() error {
			p, err := e.pathFrom(ctx, prefix, node.IPv4)
			if err != nil {
				return err
			}
			if slices.Contains(p.Communities, "graceful-shutdown") {
				return fmt.Errorf("still marked: %v", p.Communities)
			}
			return e.frrHops(ctx, prefix, e.NodeAddrs(prefix.Addr().Is6()))
		})
		changes[ip] = append(changes[ip], e.w.Route(prefix).Since)
	}
	time.Sleep(500 * time.Millisecond)
	for ip, p := range probes {
		failedExcept(t, "through FRR to "+ip, p.Stop(), changes[ip], p.LogPath)
	}
	if err := e.noResetSince(ctx, before); err != nil {
		t.Error(err)
	}
}

// withdrawWithoutEndpoints: a Service with externalTrafficPolicy Cluster
// whose only pod turns unready is withdrawn by every node, so FRR sends
// its traffic to the other site (here a static route toward BIRD with a
// worse distance, as a route learnt from another site would be); once the
// pod is ready, every node advertises it again.
func TestWithdrawWithoutEndpointsLetsAnotherSiteServe(t *testing.T) {
	e := herald(t)
	e.withoutBFD(t) // a loaded machine flaps 300 ms BFD sessions, which would withdraw for us
	ctx := labtest.Context(t, 3*time.Minute)
	pool := objects.Pool("wwe", false, "2001:db8:200::300/122")
	adv := &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "wwe"}, Spec: v1beta1.BGPAdvertisementSpec{
		PoolSelection: v1beta1.PoolSelection{IPPools: []string{"wwe"}}, Peers: []string{peerFRR4}, WithdrawWithoutEndpoints: true,
	}}
	if err := e.Create(ctx, pool, adv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.API.Delete(context.Background(), adv)
		_ = e.API.Delete(context.Background(), pool)
	})
	pinned := e.Nodes[0].Name
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "wwe", Nodes: []string{pinned}, Pool: "wwe", Family: "IPv6"})
	prefix := hostPrefix(w.IPs[0])
	otherSite := e.BIRD.IPv6
	if _, err := e.FRR.FRR.Vtysh(ctx, "configure terminal", fmt.Sprintf("ipv6 route %s %s 250", prefix, otherSite)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = e.FRR.FRR.Vtysh(context.Background(), "configure terminal", fmt.Sprintf("no ipv6 route %s %s 250", prefix, otherSite))
	})
	testkit.For(t, 30*time.Second, fmt.Sprintf("%v via every node", prefix), func() error { return e.frrHops(ctx, prefix, e.NodeAddrs(true)) })
	if _, err := e.Ext.GetEventually(ctx, lab.URL(w.IPs[0], 80)); err != nil {
		t.Fatal(err)
	}

	pod := w.Name + "-" + pinned
	t.Cleanup(func() { _ = e.SetPodReady(context.Background(), w.Namespace, pod, true) })
	if err := e.SetPodReady(ctx, w.Namespace, pod, false); err != nil {
		t.Fatal(err)
	}
	took := testkit.For(t, 20*time.Second, "withdrawn by every node; FRR routes it to the other site", func() error {
		if _, err := e.FRR.FRR.BGPRoute(ctx, prefix); err == nil {
			return fmt.Errorf("FRR still has a BGP route for %v", prefix)
		} else if !errors.Is(err, routers.ErrNotFound) {
			return err
		}
		gws, err := kernelHops(ctx, e.FRR.NS, prefix)
		if err != nil {
			return err
		}
		if !slices.Equal(gws, []netip.Addr{otherSite}) {
			return fmt.Errorf("FRR's kernel routes %v via %v, want the other site %v", prefix, gws, otherSite)
		}
		return nil
	})
	t.Logf("withdrawn %v after the pod turned unready", took.Round(time.Millisecond))
	if err := e.Event(ctx, w.Namespace, w.Name, "WithdrawnWithoutEndpoints", "withdrawn by BGPAdvertisement/wwe"); err != nil {
		t.Error(err)
	}

	if err := e.SetPodReady(ctx, w.Namespace, pod, true); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 20*time.Second, "advertised again by every node", func() error { return e.frrHops(ctx, prefix, e.NodeAddrs(true)) })
	if _, err := e.Ext.GetEventually(ctx, lab.URL(w.IPs[0], 80)); err != nil {
		t.Fatal(err)
	}
	if err := e.Event(ctx, w.Namespace, w.Name, "EndpointReady", "announced again"); err != nil {
		t.Error(err)
	}
}
