package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/speaker/advertise"
	"github.com/heraldlb/herald/speaker/election"
	"github.com/heraldlb/herald/speaker/members"
)

func labelSelector(k, v string) v1beta1.LabelSelector {
	return v1beta1.LabelSelector{MatchLabels: map[string]v1beta1.LabelValue{k: v1beta1.LabelValue(v)}}
}

// selectionEngineModel: pool lan announced for Services tier=gold,
// preferring zone b; withdrawn without endpoints.
func selectionEngineModel(t testing.TB) *config.Model {
	t.Helper()
	m := config.Build(config.Input{
		Pools: []v1beta1.IPPool{{ObjectMeta: meta("lan"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"198.51.100.0/24"}}}},
		L2Advertisements: []v1beta1.L2Advertisement{{ObjectMeta: meta("gold"), Spec: v1beta1.L2AdvertisementSpec{
			ServiceSelectors: []v1beta1.LabelSelector{labelSelector("tier", "gold")}, PreferredNodeSelectors: []v1beta1.LabelSelector{labelSelector("zone", "b")},
			WithdrawWithoutEndpoints: true,
		}}},
	}, nil)
	if len(m.Problems) > 0 {
		t.Fatalf("model problems: %+v", m.Problems)
	}
	return m
}

var zoned = []advertise.Node{
	{Name: "n1", Labels: map[string]string{"zone": "a"}},
	{Name: "n2", Labels: map[string]string{"zone": "b"}},
	{Name: "n3", Labels: map[string]string{"zone": "b"}},
}

func goldSvc(key string, ready bool, ips ...string) Service {
	s := svc(key, false, nil, ips...)
	s.Labels = map[string]string{"tier": "gold"}
	s.ReadyEndpoint = ready
	return s
}

// The preferred nodes own the addresses; the hash decides between them
// and, when none is live, among the rest. Successors follow the same order.
func TestEnginePreferredNodes(t *testing.T) {
	var ips []string
	for i := 1; i <= 20; i++ {
		ips = append(ips, fmt.Sprintf("198.51.100.%d", i))
	}
	c := cluster{}
	for _, n := range allNode {
		e := NewEngine(n)
		e.SetNodes(zoned)
		e.SetModel(selectionEngineModel(t))
		e.UpsertService(goldSvc("d/g", true, ips...))
		c[n] = e
	}
	owners := map[string]int{}
	for _, o := range splitPairs(c.elect(allNode)) {
		owners[o]++
	}
	if owners["n1"] != 0 || owners["n2"] == 0 || owners["n3"] == 0 || owners["n2"]+owners["n3"] != len(ips) {
		t.Fatalf("owners %v: want every address on n2 and n3 (zone b), shared", owners)
	}
	// n1 gets nothing while a zone b node lives; n2's successor is n3.
	for node, ips := range c["n2"].Successors() {
		if node != "n3" {
			t.Fatalf("n2 hands %v to %s, want n3 (the other preferred node)", ips, node)
		}
	}
	// Both zone b nodes gone: the hash among the rest (n1 alone).
	if got := c.elect([]string{"n1"}); len(splitPairs(got)) != len(ips) {
		t.Fatalf("with n1 alone: %s", got)
	}
}

// splitPairs turns "ip=n1 ip=n2" into the owners, one per address.
func splitPairs(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if _, owner, ok := strings.Cut(f, "="); ok {
			out = append(out, owner)
		}
	}
	return out
}

// A Service's label change recomputes that Service only: its addresses
// are the only ones to elect again.
func TestEngineServiceLabelChangeTouchesThatServiceOnly(t *testing.T) {
	e := NewEngine("n1")
	e.SetNodes(zoned)
	e.SetModel(selectionEngineModel(t))
	for i := 1; i <= 50; i++ {
		e.UpsertService(goldSvc(fmt.Sprintf("d/s%d", i), true, fmt.Sprintf("198.51.100.%d", i)))
	}
	e.SetLive(allNode)
	e.Elect(t0, true, nil)
	if len(e.dirty) != 0 {
		t.Fatalf("dirty after the election: %d", len(e.dirty))
	}
	plain := goldSvc("d/s7", true, "198.51.100.7")
	plain.Labels = map[string]string{"tier": "bronze"}
	e.UpsertService(plain)
	if len(e.dirty) != 1 || !e.dirty[addr("198.51.100.7")] {
		t.Fatalf("a label change marked %d addresses to elect again, want only 198.51.100.7", len(e.dirty))
	}
	if e.ips[addr("198.51.100.7")] != nil {
		t.Fatal("a Service no advertisement selects any more still has a Layer 2 target")
	}
}

// withdrawWithoutEndpoints: no ready endpoint anywhere, nobody announces
// the Service; the engine reports the withdrawal once, and its end.
func TestEngineWithdrawsWithoutEndpoints(t *testing.T) {
	c := cluster{}
	for _, n := range allNode {
		e := NewEngine(n)
		e.SetNodes(zoned)
		e.SetModel(selectionEngineModel(t))
		e.UpsertService(goldSvc("d/g", true, "198.51.100.9"))
		c[n] = e
	}
	if got := c.elect(allNode); len(splitPairs(got)) != 1 {
		t.Fatalf("with endpoints: %s", got)
	}
	owner := splitPairs(c.elect(allNode))[0]
	for _, e := range c {
		e.TakeWithdrawals()
		e.UpsertService(goldSvc("d/g", false, "198.51.100.9"))
	}
	if got := c.elect(allNode); got != "" {
		t.Fatalf("without endpoints: %s, want nobody", got)
	}
	w := c[owner].TakeWithdrawals()
	if len(w) != 1 || fmt.Sprint(w[0].By) != "[L2Advertisement/gold]" {
		t.Fatalf("withdrawals %+v", w)
	}
	var st v1beta1.SpeakerStatusStatus
	c[owner].L2Report(&st, nil)
	if len(st.L2Skipped) != 1 || st.L2Skipped[0].Reason != v1beta1.L2SkipNoEndpoint {
		t.Fatalf("skipped %+v", st.L2Skipped)
	}
	// The same state again: no new withdrawal.
	c[owner].UpsertService(goldSvc("d/g", false, "198.51.100.9"))
	if w := c[owner].TakeWithdrawals(); len(w) != 0 {
		t.Fatalf("an unchanged Service reported again: %+v", w)
	}
	c[owner].UpsertService(goldSvc("d/g", true, "198.51.100.9"))
	if w := c[owner].TakeWithdrawals(); len(w) != 1 || len(w[0].By) != 0 {
		t.Fatalf("end of the withdrawal: %+v", w)
	}
}

// setServiceLabels replaces a Service's labels.
func (h *harness) setServiceLabels(name string, labels map[string]string) {
	h.t.Helper()
	ctx := context.Background()
	var s corev1.Service
	if err := h.c.Get(ctx, client.ObjectKey{Namespace: "demo", Name: name}, &s); err != nil {
		h.t.Fatal(err)
	}
	s.Labels = labels
	if err := h.c.Update(ctx, &s); err != nil {
		h.t.Fatal(err)
	}
}

// routedIP finds an address in 203.0.113.0/24 that n1 ranks first for
// among the nodes (so n1 is the speaker that reports on its Service).
func routedIP(skip int) netip.Addr {
	for i := 1; i < 250; i++ {
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		if election.Owner(ip, allNode) == "n1" {
			if skip == 0 {
				return ip
			}
			skip--
		}
	}
	panic("no such address")
}

// Against the real API server: relabelling a Service changes its routes
// only (a path update, no full BGP state); a Service that loses its last
// ready endpoint is withdrawn from BGP and Layer 2, with an Event, and
// comes back with one.
func TestSpeakerServiceSelectorsAndEndpoints(t *testing.T) {
	h := startHarness(t)
	all := []string{"n1", "n2", "n3"}
	mine := rankedIP(all, "n1")
	a, b := routedIP(0), routedIP(1)
	h.bgpSetup()
	h.create(&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "base"}, Spec: v1beta1.BGPAdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, Communities: []v1beta1.Community{"64500:1"}}})
	h.create(&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "gold"}, Spec: v1beta1.BGPAdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, Communities: []v1beta1.Community{"64500:900"},
		ServiceSelectors: []v1beta1.LabelSelector{labelSelector("tier", "gold")}, WithdrawWithoutEndpoints: true}})
	h.create(&v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"198.51.100.0/24"}}})
	h.create(&v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan"}},
		ServiceSelectors: []v1beta1.LabelSelector{labelSelector("exposure", "lan")}, WithdrawWithoutEndpoints: true}})
	h.service("a", false, a)
	h.service("b", false, b)
	h.endpoints("b", map[string]bool{"n2": true})
	h.service("lan", false, mine)
	h.endpoints("lan", map[string]bool{"n3": true})
	for _, n := range []string{"n2", "n3"} {
		h.inbox.Message(members.Message{Kind: members.KindRelease, From: n}.Marshal())
	}
	want := func(paths string) func() error {
		return func() error {
			if got := h.routedPaths(); got != paths {
				return fmt.Errorf("paths %s, want %s", got, paths)
			}
			return nil
		}
	}
	h.eventually("both Services advertised by base only", want(fmt.Sprintf("[%s/32[64500:1] %s/32[64500:1]]", a, b)))
	// The lan Service has no exposure=lan label yet: no Layer 2 at all.
	if got := h.l2.announced(); got != "[]" {
		t.Fatalf("announcing %s for a Service no L2Advertisement selects", got)
	}

	sets := func() int { h.router.mu.Lock(); defer h.router.mu.Unlock(); return h.router.sets }
	setsBefore := sets()
	h.setServiceLabels("b", map[string]string{"tier": "gold"})
	h.eventually("b gets gold's community", want(fmt.Sprintf("[%s/32[64500:1] %s/32[64500:1 64500:900]]", a, b)))
	if sets() != setsBefore {
		t.Errorf("a Service's label change set the whole BGP state (%d Sets, was %d); want a path update", sets(), setsBefore)
	}
	h.setServiceLabels("lan", map[string]string{"exposure": "lan"})
	h.eventually("the labelled Service is announced in Layer 2", func() error {
		if got := h.l2.announced(); got != fmt.Sprint([]netip.Addr{mine}) {
			return fmt.Errorf("announced %s", got)
		}
		return nil
	})

	// Unlabelled, lan is no longer announced; labelled again, it is.
	h.setServiceLabels("lan", nil)
	h.eventually("lan unlabelled: n1 stops, saying why", func() error {
		if got := h.l2.announced(); got != "[]" {
			return fmt.Errorf("announced %s", got)
		}
		return h.event("demo", "lan", ReasonStoppedAnnouncingL2, "no L2Advertisement announces its Service any more")
	})
	h.setServiceLabels("lan", map[string]string{"exposure": "lan"})
	h.eventually("lan labelled again", func() error {
		if got := h.l2.announced(); got != fmt.Sprint([]netip.Addr{mine}) {
			return fmt.Errorf("announced %s", got)
		}
		return nil
	})

	// b loses its last ready endpoint: gold withdraws it (base stays).
	h.endpoints("b", map[string]bool{"n2": false})
	h.eventually("gold withdraws b", want(fmt.Sprintf("[%s/32[64500:1] %s/32[64500:1]]", a, b)))
	h.eventually("Event on b", func() error {
		return h.event("demo", "b", ReasonWithdrawnWithoutEndpoints, fmt.Sprintf("%s withdrawn by BGPAdvertisement/gold", b))
	})
	// lan loses its endpoint: nobody answers for it.
	h.endpoints("lan", map[string]bool{"n3": false})
	h.eventually("n1 stops answering for lan", func() error {
		if got := h.l2.announced(); got != "[]" {
			return fmt.Errorf("announced %s", got)
		}
		if err := h.event("demo", "lan", ReasonStoppedAnnouncingL2, "no ready endpoint anywhere (withdrawWithoutEndpoints)"); err != nil {
			return err
		}
		st, err := h.speakerStatus()
		if err != nil {
			return err
		}
		if len(st.L2Skipped) != 1 || st.L2Skipped[0].Reason != v1beta1.L2SkipNoEndpoint {
			return fmt.Errorf("skipped %+v", st.L2Skipped)
		}
		return nil
	})
	h.endpoints("lan", map[string]bool{"n3": true})
	h.eventually("an endpoint is back: lan is announced again", func() error {
		if got := h.l2.announced(); got != fmt.Sprint([]netip.Addr{mine}) {
			return fmt.Errorf("announced %s", got)
		}
		return nil
	})
}
