package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/speaker/advertise"
	"github.com/heraldlb/herald/speaker/election"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/heraldlb/herald/speaker/takeover"
)

func TestExclusionPhases(t *testing.T) {
	now := time.Unix(1000, 0)
	var x exclusion
	if x.phase(now) != advertise.Advertising || x.condition(now).Status != metav1.ConditionFalse {
		t.Fatalf("in service: %v %+v", x.phase(now), x.condition(now))
	}
	x = x.next(now, ReasonDrain, "herald.dev/drain is \"true\"", 10*time.Second, false)
	if x.phase(now.Add(9*time.Second)) != advertise.GracefulShutdown || x.phase(now.Add(10*time.Second)) != advertise.Withdrawn {
		t.Fatalf("drained: phases %v %v", x.phase(now.Add(9*time.Second)), x.phase(now.Add(10*time.Second)))
	}
	if c := x.condition(now); c.Status != metav1.ConditionTrue || c.Reason != ReasonDrain || !strings.Contains(c.Message, "GRACEFUL_SHUTDOWN until") {
		t.Fatalf("condition while marked: %+v", c)
	}
	// Another cause while excluded keeps the withdrawal time.
	later := x.next(now.Add(5*time.Second), ReasonNetworkUnavailable, "its NetworkUnavailable condition is true", 10*time.Second, false)
	if !later.withdrawAt.Equal(x.withdrawAt) || later.reason != ReasonNetworkUnavailable {
		t.Fatalf("a second cause moved the withdrawal: %+v", later)
	}
	if c := x.condition(now.Add(time.Minute)); !strings.Contains(c.Message, "announces nothing") {
		t.Fatalf("condition once withdrawn: %+v", c)
	}
	if back := x.next(now, "", "", 10*time.Second, false); back.phase(now) != advertise.Advertising {
		t.Fatalf("back in service: %+v", back)
	}
	// A speaker that starts on an excluded node advertises nothing at all.
	if first := (exclusion{}).next(now, ReasonDrain, "x", 10*time.Second, true); first.phase(now) != advertise.Withdrawn {
		t.Fatalf("first look: %v", first.phase(now))
	}
	for _, tc := range []struct {
		node   nodeInfo
		reason string
		why    string
	}{
		{nodeInfo{}, "", ""},
		{nodeInfo{drain: true}, ReasonDrain, `herald.dev/drain is "true"`},
		{nodeInfo{labels: map[string]string{corev1.LabelNodeExcludeBalancers: ""}}, ReasonExcludeLabel, "labelled node.kubernetes.io/exclude-from-external-load-balancers"},
		{nodeInfo{networkUnavailable: true}, ReasonNetworkUnavailable, "its NetworkUnavailable condition is true"},
		{nodeInfo{drain: true, networkUnavailable: true}, ReasonDrain, `herald.dev/drain is "true", its NetworkUnavailable condition is true`},
	} {
		if r, w := excludedBecause(tc.node); r != tc.reason || w != tc.why {
			t.Errorf("excludedBecause(%+v) = %q %q, want %q %q", tc.node, r, w, tc.reason, tc.why)
		}
	}
}

// setDrain sets or removes herald.dev/drain on n1.
func (h *harness) setDrain(on bool) {
	h.t.Helper()
	ctx := context.Background()
	var n corev1.Node
	if err := h.c.Get(ctx, client.ObjectKey{Name: "n1"}, &n); err != nil {
		h.t.Fatal(err)
	}
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	if on {
		n.Annotations[v1beta1.AnnotationDrain] = "true"
	} else {
		delete(n.Annotations, v1beta1.AnnotationDrain)
	}
	if err := h.c.Update(ctx, &n); err != nil {
		h.t.Fatal(err)
	}
}

// routedPaths formats the router's paths toward frr.
func (h *harness) routedPaths() string {
	var out []string
	for _, p := range h.router.last().Paths["frr"] {
		var cs []string
		for _, c := range p.Communities {
			cs = append(cs, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
		}
		out = append(out, fmt.Sprintf("%s%v", p.Prefix, cs))
	}
	slices.Sort(out)
	return fmt.Sprint(out)
}

func (h *harness) bgpSetup() {
	asn := int64(64512)
	h.create(&v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "frr"}, Spec: v1beta1.BGPPeerSpec{MyASN: 64500, PeerASN: &asn, PeerAddress: "10.0.0.1"}})
	h.create(&v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/24"}}})
}

// A drained node stops answering first, then publishes that it is excluded
// and releases each address to its successor; its BGP routes carry
// GRACEFUL_SHUTDOWN, then go. Back in service, it takes its addresses only
// when they are released to it.
func TestSpeakerDrain(t *testing.T) {
	h := startHarness(t, func(o *Options) { o.GracefulShutdown = 1500 * time.Millisecond })
	all := []string{"n1", "n2", "n3"}
	mine := rankedIP(all, "n1")
	succ := election.Rank(mine, all)[1]
	h.l2Setup()
	h.bgpSetup()
	h.create(&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1beta1.BGPAdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, Communities: []v1beta1.Community{"64500:1"}}})
	h.service("web", false, mine)
	h.service("routed", false, netip.MustParseAddr("203.0.113.7"))
	for _, n := range []string{"n2", "n3"} {
		h.inbox.Message(members.Message{Kind: members.KindRelease, From: n}.Marshal())
	}
	h.eventually("n1 announces its address and route", func() error {
		if got := h.l2.announced(); got != fmt.Sprint([]netip.Addr{mine}) {
			return fmt.Errorf("announced %s", got)
		}
		if got := h.routedPaths(); got != "[203.0.113.7/32[64500:1]]" {
			return fmt.Errorf("paths %s", got)
		}
		return nil
	})

	// Never two owners: whenever n1 says it is excluded or releases an
	// address, it must not answer for it any more.
	var mu sync.Mutex
	var violations []string
	h.members.onMeta = func(b []byte) {
		if p, err := takeover.ParsePublished(b); err == nil && p.Excluded && h.l2.announced() != "[]" {
			mu.Lock()
			violations = append(violations, "published Excluded while announcing "+h.l2.announced())
			mu.Unlock()
		}
	}
	h.members.onSend = func(node string, m members.Message) {
		h.l2.mu.Lock()
		defer h.l2.mu.Unlock()
		for _, ip := range m.IPs {
			if _, on := h.l2.placed[ip]; on {
				mu.Lock()
				violations = append(violations, fmt.Sprintf("released %s to %s while announcing it", ip, node))
				mu.Unlock()
			}
		}
	}

	h.setDrain(true)
	h.eventually("n1 hands its address to its successor and marks its routes", func() error {
		if got := h.l2.announced(); got != "[]" {
			return fmt.Errorf("still announcing %s", got)
		}
		if got := h.members.releasesTo(succ); !slices.Contains(got, fmt.Sprint([]netip.Addr{mine})) {
			return fmt.Errorf("releases to %s: %v", succ, got)
		}
		if p, err := h.members.published(); err != nil {
			return err
		} else if !p.Excluded {
			return fmt.Errorf("published %+v; want Excluded", p)
		}
		if got := h.routedPaths(); got != "[203.0.113.7/32[64500:1 65535:0]]" {
			return fmt.Errorf("paths %s, want GRACEFUL_SHUTDOWN added", got)
		}
		c, err := h.condition(ConditionExcluded)
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionTrue || c.Reason != ReasonDrain || !strings.Contains(c.Message, "GRACEFUL_SHUTDOWN until") {
			return fmt.Errorf("condition %+v", c)
		}
		if err := h.event("demo", "web", ReasonStoppedAnnouncingL2, "n1 is excluded from load balancing (herald.dev/drain is \"true\"); "+succ+" announces it now"); err != nil {
			return err
		}
		return h.event("default", "n1", ReasonExcludedFromLB, "withdrawing them in 2s")
	})
	h.eventually("then withdraws the routes", func() error {
		if got := h.routedPaths(); got != "[]" {
			return fmt.Errorf("paths %s", got)
		}
		c, err := h.condition(ConditionExcluded)
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "announces nothing") {
			return fmt.Errorf("condition %+v", c)
		}
		st, err := h.speakerStatus()
		if err != nil {
			return err
		}
		if len(st.L2Skipped) != 1 || st.L2Skipped[0].Reason != v1beta1.L2SkipNodeExcluded {
			return fmt.Errorf("skipped %+v, want %s as NodeExcluded", st.L2Skipped, mine)
		}
		return h.event("default", "n1", ReasonWithdrawnFromLB, "announces nothing now")
	})
	// A drained node is still ready (it does its job: announce nothing)
	// and still counts the others.
	if err := h.spk.Ready(); err != nil {
		t.Errorf("a drained speaker is not ready: %v", err)
	}

	h.setDrain(false)
	h.eventually("n1 is back in service", func() error {
		if p, err := h.members.published(); err != nil {
			return err
		} else if p.Excluded {
			return fmt.Errorf("published %+v", p)
		}
		if got := h.routedPaths(); got != "[203.0.113.7/32[64500:1]]" {
			return fmt.Errorf("paths %s", got)
		}
		return h.event("default", "n1", ReasonBackInLB, "announces again")
	})
	// In its grace period it takes nothing on its own: the successor
	// still answers and releases the address back.
	if got := h.l2.announced(); got != "[]" {
		t.Fatalf("took %s back on its own, while %s still answers", got, succ)
	}
	h.inbox.Message(members.Message{Kind: members.KindRelease, From: succ, IPs: []netip.Addr{mine}}.Marshal())
	h.eventually("n1 takes its address back when released", func() error {
		if got := h.l2.announced(); got != fmt.Sprint([]netip.Addr{mine}) {
			return fmt.Errorf("announced %s", got)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("two owners possible: %v", violations)
	}
}
