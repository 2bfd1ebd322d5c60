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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/testkit"
)

// A dual-stack Service gets one route per family from every node: at FRR
// (BGP table, zebra's FIB, kernel) with three ECMP next hops, and at BIRD;
// with the advertisement's communities (one well-known) and large
// community, and no LOCAL_PREF on eBGP. The external client behind FRR
// reaches pods on several nodes through it. Changing the advertisement
// and the Service updates the routes without resetting a session;
// deleting the Service withdraws both routes everywhere.
func TestDualStackServiceIsRoutedByEveryNode(t *testing.T) {
	e := herald(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	before, err := e.resetCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "web", Nodes: e.NodeNames(), Pool: poolBGP})
	for _, ip := range w.IPs {
		prefix := hostPrefix(ip)
		want := e.NodeAddrs(prefix.Addr().Is6())
		testkit.For(t, 20*time.Second, fmt.Sprintf("%v at FRR and BIRD via every node", prefix), func() error {
			if err := e.frrHops(ctx, prefix, want); err != nil {
				return err
			}
			return e.birdHops(ctx, prefix, want)
		})
		if err := e.attributesAt(ctx, prefix, bgpCommunities); err != nil {
			t.Error(err)
		}
		// kube-proxy applies a Service's endpoints up to its minimum sync
		// period (1 s) after the EndpointSlices list them, and may have
		// programmed the first ready pod alone: rounds of 30 requests until
		// one is spread.
		var seen extAnswers
		testkit.For(t, 15*time.Second, fmt.Sprintf("30 requests to %s through FRR reach pods on several nodes", ip), func() error {
			var err error
			if seen, err = e.getFromExt(ctx, ip, 30); err != nil {
				return err
			}
			if len(seen.nodes) < 2 {
				return fmt.Errorf("pods on %v only", seen)
			}
			return nil
		})
		t.Logf("%v: next hops %v at FRR and BIRD; 30 requests from ext answered on %v", prefix, want, seen)
	}
	st, err := e.SpeakerStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes {
		for _, s := range st[n.Name].BGPSessions {
			if s.Peer != peerFRR6 && s.PrefixesSent < 2 {
				t.Errorf("%s sends %d prefixes to %s, want both of %v", n.Name, s.PrefixesSent, s.Peer, w.IPs)
			}
		}
	}

	// An advertisement change: one more community, at both routers.
	adv := &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: poolBGP}}
	if err := lab.Update(ctx, e.API, adv, func(a *v1beta1.BGPAdvertisement) { a.Spec.Communities = append(a.Spec.Communities, "64500:300") }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = lab.Update(context.Background(), e.API, adv, func(a *v1beta1.BGPAdvertisement) {
			a.Spec.Communities = slices.DeleteFunc(a.Spec.Communities, func(c v1beta1.Community) bool { return c == "64500:300" })
		})
	})
	for _, ip := range w.IPs {
		testkit.For(t, 10*time.Second, "the new community at FRR and BIRD", func() error {
			return e.attributesAt(ctx, hostPrefix(ip), append(slices.Clone(bgpCommunities), "64500:300"))
		})
	}
	// A Service change that keeps its IPs.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name}}
	if err := lab.Update(ctx, e.API, svc, func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "alt", Port: 8081})
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.noResetSince(ctx, before); err != nil {
		t.Error(err)
	}

	if err := e.Delete(ctx, w); err != nil {
		t.Fatal(err)
	}
	for _, ip := range w.IPs {
		testkit.For(t, 20*time.Second, "withdrawn at FRR and BIRD", func() error {
			if err := e.frrHops(ctx, hostPrefix(ip), nil); err != nil {
				return err
			}
			return e.birdHops(ctx, hostPrefix(ip), nil)
		})
	}
	if err := e.noResetSince(ctx, before); err != nil {
		t.Error(err)
	}
}

// attributesAt checks the paths of prefix from the nodes at FRR and BIRD:
// the nodes' AS path, the communities (as each router prints them), the
// large community, no LOCAL_PREF (eBGP).
func (e *env) attributesAt(ctx context.Context, prefix netip.Prefix, communities []string) error {
	rt, err := e.FRR.FRR.BGPRoute(ctx, prefix)
	if err != nil {
		return err
	}
	communities = slices.Sorted(slices.Values(communities))
	for _, p := range rt.Paths {
		if p.ASPath != "64500" || !slices.Equal(slices.Sorted(slices.Values(p.Communities)), communities) || !slices.Equal(p.LargeCommunities, bgpLargeCommunities) || p.LocalPref != nil {
			return fmt.Errorf("FRR's path for %v from %s: AS path %q, communities %v, large %v, local-pref %v; want 64500, %v, %v, none",
				prefix, p.PeerID, p.ASPath, p.Communities, p.LargeCommunities, p.LocalPref, communities, bgpLargeCommunities)
		}
	}
	// BIRD prints communities as numbers: no-export is 65535:65281.
	var birdWant []string
	for _, c := range communities {
		if c == "no-export" {
			c = "65535:65281"
		}
		birdWant = append(birdWant, c)
	}
	slices.Sort(birdWant)
	routes, err := e.BIRD.BIRD.Routes(ctx, prefix)
	if err != nil {
		return err
	}
	for _, r := range routes {
		got := slices.Sorted(slices.Values(r.Communities))
		if r.ASPath != "64500" || !slices.Equal(got, birdWant) || !slices.Equal(r.LargeCommunities, bgpLargeCommunities) {
			return fmt.Errorf("BIRD's route for %v from %s: AS path %q, communities %v, large %v; want 64500, %v, %v",
				prefix, r.Protocol, r.ASPath, got, r.LargeCommunities, birdWant, bgpLargeCommunities)
		}
	}
	return nil
}

// localPref goes to iBGP peers only: FRR's iBGP paths carry 150, the eBGP
// session to BIRD gets the route without it (BIRD logs any LOCAL_PREF it
// discards from an eBGP neighbor, and logs none), and the advertisement's
// status says so.
func TestLocalPrefGoesToIBGPPeersOnly(t *testing.T) {
	e := herald(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "lp", Nodes: e.NodeNames()[:1], Family: "IPv4", Pool: poolIBGP})
	prefix := hostPrefix(w.IPs[0])
	want := e.NodeAddrs(false)
	testkit.For(t, 20*time.Second, "route at FRR (iBGP) and BIRD (eBGP) via every node", func() error {
		if err := e.frrHops(ctx, prefix, want); err != nil {
			return err
		}
		if err := e.birdHops(ctx, prefix, want); err != nil {
			return err
		}
		rt, err := e.FRR.FRR.BGPRoute(ctx, prefix)
		if err != nil {
			return err
		}
		for _, p := range rt.Paths {
			if p.PeerType != "internal" || p.LocalPref == nil || *p.LocalPref != 150 || !slices.Equal(p.Communities, []string{"64512:200"}) {
				return fmt.Errorf("FRR's path from %s: type %s, local-pref %v, communities %v; want internal, 150, [64512:200]",
					p.PeerID, p.PeerType, p.LocalPref, p.Communities)
			}
		}
		return nil
	})
	if strings.Contains(e.BIRD.BIRD.Logs(), "Discarding LOCAL_PREF") {
		t.Errorf("BIRD discarded a LOCAL_PREF from an eBGP session:\n%s", e.BIRD.BIRD.Logs())
	}
	var adv v1beta1.BGPAdvertisement
	testkit.For(t, 10*time.Second, "the advertisement's status explains localPref", func() error {
		if err := e.API.Get(ctx, client.ObjectKey{Name: poolIBGP}, &adv); err != nil {
			return err
		}
		for _, c := range adv.Status.Conditions {
			if c.Type == v1beta1.ConditionReady && strings.Contains(c.Message, "localPref") && strings.Contains(c.Message, peerBIRD4) {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", adv.Status.Conditions)
	})
	t.Logf("BGPAdvertisement %s: %+v", poolIBGP, adv.Status.Conditions)
}

// aggregationLength 25 / 120 advertises the pool's covering prefixes, not
// the Service's /32 and /128, and traffic follows the aggregate.
func TestAggregationAdvertisesTheCoveringPrefix(t *testing.T) {
	e := herald(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "agg", Nodes: e.NodeNames(), Pool: poolAgg})
	for _, ip := range w.IPs {
		a := netip.MustParseAddr(ip)
		agg := netip.MustParsePrefix("203.0.113.128/25")
		if a.Is6() {
			agg = netip.MustParsePrefix("2001:db8:200::100/120")
		}
		want := e.NodeAddrs(a.Is6())
		testkit.For(t, 20*time.Second, fmt.Sprintf("%v at FRR and BIRD", agg), func() error {
			if err := e.frrHops(ctx, agg, want); err != nil {
				return err
			}
			return e.birdHops(ctx, agg, want)
		})
		if _, err := e.FRR.FRR.BGPRoute(ctx, hostPrefix(ip)); !errors.Is(err, routers.ErrNotFound) {
			t.Errorf("FRR has a route for %v besides the aggregate (%v)", hostPrefix(ip), err)
		}
		if _, err := e.BIRD.BIRD.Routes(ctx, hostPrefix(ip)); !errors.Is(err, routers.ErrNotFound) {
			t.Errorf("BIRD has a route for %v besides the aggregate (%v)", hostPrefix(ip), err)
		}
		seen, err := e.getFromExt(ctx, ip, 10)
		if err != nil {
			t.Fatalf("GET %s from the external client through %v: %v", ip, agg, err)
		}
		t.Logf("%s: advertised as %v via %v, 10 requests answered on %v", ip, agg, want, seen)
	}
}

// externalTrafficPolicy Local: only nodes with a ready endpoint advertise,
// and the next hops at FRR follow the endpoints as pods turn unready and
// move.
func TestLocalTrafficAdvertisedOnlyFromNodesWithReadyEndpoints(t *testing.T) {
	e := herald(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n1, n2, n3 := e.Nodes[0].Name, e.Nodes[1].Name, e.Nodes[2].Name
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "local", Local: true, Nodes: []string{n1, n2}, Family: "IPv4", Pool: poolBGP})
	prefix := hostPrefix(w.IPs[0])
	expect := func(what string, nodes ...string) {
		t.Helper()
		want := e.NodeAddrs(false, nodes...)
		took := testkit.For(t, 20*time.Second, what, func() error {
			if err := e.frrHops(ctx, prefix, want); err != nil {
				return err
			}
			return e.birdHops(ctx, prefix, want)
		})
		t.Logf("%s: next hops %v after %v", what, want, took.Round(time.Millisecond))
	}
	expect("pods on "+n1+" and "+n2, n1, n2)
	if err := e.SetPodReady(ctx, w.Namespace, w.Name+"-"+n1, false); err != nil {
		t.Fatal(err)
	}
	expect(n1+"'s pod unready", n2)
	// The pod on n2 moves to n3.
	if err := e.Kube.CoreV1().Pods(w.Namespace).Delete(ctx, w.Name+"-"+n2, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Kube.CoreV1().Pods(w.Namespace).Create(ctx, lab.EchoPod(w, n3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("pod moved from "+n2+" to "+n3, n3)
	if err := e.SetPodReady(ctx, w.Namespace, w.Name+"-"+n1, true); err != nil {
		t.Fatal(err)
	}
	expect(n1+"'s pod ready again", n1, n3)
	seen, err := e.getFromExt(ctx, w.IPs[0], 20)
	if err != nil {
		t.Fatal(err)
	}
	for node := range seen.nodes {
		if node != n1 && node != n3 {
			t.Errorf("Local traffic answered on %s; want only %s and %s (%v)", node, n1, n3, seen)
		}
	}
}
