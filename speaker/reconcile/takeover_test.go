package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/heraldlb/herald/speaker/presence"
	"github.com/heraldlb/herald/speaker/takeover"
)

// lease writes a speaker Lease for node as its heartbeat would.
func (h *harness) lease(node string) {
	h.t.Helper()
	now := metav1.NewMicroTime(time.Now())
	h.create(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: v1beta1.Namespace, Name: presence.LeaseName(node), Labels: presence.Labels},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), LeaseDurationSeconds: ptr.To(int32(30)), RenewTime: &now},
	})
}

func (h *harness) l2Setup() {
	h.create(&v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"198.51.100.0/24"}}})
	h.create(&v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan"}}}})
}

func (h *harness) condition(typ string) (metav1.Condition, error) {
	st, err := h.speakerStatus()
	if err != nil {
		return metav1.Condition{}, err
	}
	c := apimeta.FindStatusCondition(st.Conditions, typ)
	if c == nil {
		return metav1.Condition{}, fmt.Errorf("no %s condition in %+v", typ, st.Conditions)
	}
	return *c, nil
}

// A speaker that sees only itself while the API server shows two more
// speakers running (a firewall dropped the memberlist port, say) takes
// nothing over, ever: it says so in its status, its readiness and an Event
// on its Node. Once it sees the others it settles and takes what it owns.
func TestSpeakerExpectsTheSpeakersTheAPIServerShows(t *testing.T) {
	h := startHarness(t, func(o *Options) { o.IsolatedEventAfter = 500 * time.Millisecond })
	h.lease("n2")
	h.lease("n3")
	h.members.setAlive("n1")
	h.l2Setup()
	mine := rankedIP([]string{"n1", "n2", "n3"}, "n1")
	h.service("web", false, mine)

	h.eventually("NoQuorum in the status, with what it expects", func() error {
		st, err := h.speakerStatus()
		if err != nil {
			return err
		}
		c, err := h.condition(ConditionReady)
		if err != nil {
			return err
		}
		if st.MembersAlive != 1 || st.MembersExpected != 3 || c.Status != metav1.ConditionFalse || c.Reason != "NoQuorum" || !strings.Contains(c.Message, "sees 1 of the 3") {
			return fmt.Errorf("status: alive %d expected %d ready %+v", st.MembersAlive, st.MembersExpected, c)
		}
		return nil
	})
	if err := h.spk.Ready(); err == nil || !strings.Contains(err.Error(), "memberlist port") {
		t.Fatalf("readiness %v, want it to say the memberlist port may be blocked", err)
	}
	h.eventually("an Event on the Node", func() error {
		return h.event("default", "n1", ReasonSpeakerIsolated, "sees 1 of the 3 speakers")
	})
	// The sign that the Service was processed is its skip reason; then
	// nothing is announced for a while.
	h.eventually("the address is skipped for want of quorum", func() error {
		st, err := h.speakerStatus()
		if err != nil {
			return err
		}
		if len(st.L2Skipped) != 1 || st.L2Skipped[0].Reason != v1beta1.L2SkipNoQuorum {
			return fmt.Errorf("skipped %+v", st.L2Skipped)
		}
		return nil
	})
	testkit.Holds(t, 4*time.Second, "nothing announced while isolated", func() error {
		if got := h.l2.announced(); got != "[]" {
			return fmt.Errorf("announces %s", got)
		}
		return nil
	})

	// The others become visible: settle, then take over.
	h.members.setAlive("n1", "n2", "n3")
	for _, n := range []string{"n2", "n3"} {
		h.inbox.Message(members.Message{Kind: members.KindRelease, From: n}.Marshal())
	}
	h.eventually("announces its address once it sees a majority", func() error {
		if got, want := h.l2.announced(), fmt.Sprint([]netip.Addr{mine}); got != want {
			return fmt.Errorf("announced %s, want %s", got, want)
		}
		return h.spk.Ready()
	})
	h.eventually("an Event says it rejoined", func() error {
		return h.event("default", "n1", ReasonSpeakerRejoined, "sees 3 of the 3")
	})
}

// A node that cannot announce an address is no candidate: its owner hands
// it to the next node, and takes it back (after the release) when it can
// announce again; a peer that publishes it cannot announce makes this node
// the owner of that peer's address.
func TestSpeakerFollowsTheDataPath(t *testing.T) {
	h := startHarness(t)
	h.l2Setup()
	all := []string{"n1", "n2", "n3"}
	mine := rankedIP(all, "n1", "n2")
	theirs := rankedIP(all, "n2", "n1")
	h.service("mine", false, mine)
	h.service("theirs", false, theirs)
	for _, n := range []string{"n2", "n3"} {
		h.inbox.Message(members.Message{Kind: members.KindRelease, From: n}.Marshal())
	}
	h.eventually("n1 announces its address", func() error {
		if got, want := h.l2.announced(), fmt.Sprint([]netip.Addr{mine}); got != want {
			return fmt.Errorf("announced %s, want %s", got, want)
		}
		return nil
	})

	h.l2.setEth0(false)
	h.eventually("eth0 down: n1 publishes it cannot announce, stops, and releases to n2", func() error {
		if got := h.l2.announced(); got != "[]" {
			return fmt.Errorf("still announcing %s", got)
		}
		p, err := takeover.ParsePublished(h.members.Metas()["n1"])
		if err != nil {
			return err
		}
		if !p.Blocked.Has(mine) || !p.Quorum {
			return fmt.Errorf("published %+v, want %s blocked and quorum", p, mine)
		}
		if got := h.members.releasesTo("n2"); !slices.Contains(got, fmt.Sprint([]netip.Addr{mine})) {
			return fmt.Errorf("releases to n2: %v", got) // sent in the background: in any order
		}
		return h.event("demo", "mine", ReasonStoppedAnnouncingL2, "n1 cannot announce it")
	})
	h.eventually("the status says why", func() error {
		st, err := h.speakerStatus()
		if err != nil {
			return err
		}
		for _, k := range st.L2Skipped {
			if k.IP == mine.String() && k.Reason == v1beta1.L2SkipNoInterface && k.Owner == "n2" {
				return nil
			}
		}
		return fmt.Errorf("skipped %+v", st.L2Skipped)
	})

	// eth0 back: n1 is a candidate again but waits for n2's release.
	h.l2.setEth0(true)
	h.eventually("published again: nothing blocked", func() error {
		if p, err := takeover.ParsePublished(h.members.Metas()["n1"]); err != nil {
			return err
		} else if !p.Blocked.Empty() {
			return fmt.Errorf("published %+v", p)
		}
		return nil
	})
	if got := h.l2.announced(); got != "[]" {
		t.Fatalf("n1 took %s back before n2 released it", got)
	}
	h.inbox.Message(members.Message{Kind: members.KindRelease, From: "n2", IPs: []netip.Addr{mine}}.Marshal())
	h.eventually("n1 announces its address again once released", func() error {
		if got, want := h.l2.announced(), fmt.Sprint([]netip.Addr{mine}); got != want {
			return fmt.Errorf("announced %s, want %s", got, want)
		}
		return nil
	})

	// n2 publishes it cannot announce anything and, as a real speaker does,
	// releases its address to n1, next in the ranking: n1 takes it at once.
	all2, _ := takeover.Published{Quorum: true, Blocked: takeover.Blocked{All: true}}.MarshalBinary()
	h.members.setMeta("n2", all2)
	h.inbox.Message(members.Message{Kind: members.KindRelease, From: "n2", IPs: []netip.Addr{theirs}}.Marshal())
	h.eventually("n1 takes n2's address over", func() error {
		if got := h.l2.announced(); !strings.Contains(got, theirs.String()) {
			return fmt.Errorf("announced %s, want %s among them", got, theirs)
		}
		return nil
	})

	// n3 re-joins without seeing a majority itself (its memberlist port
	// blocked one way): it is no candidate, so n1 keeps n3's address.
	third := rankedIP(all, "n3", "n1")
	h.service("third", false, third)
	h.eventually("n1 does not announce n3's address", func() error {
		st, err := h.speakerStatus()
		if err != nil {
			return err
		}
		for _, k := range st.L2Skipped {
			if k.IP == third.String() && k.Owner == "n3" {
				return nil
			}
		}
		return fmt.Errorf("skipped %+v", st.L2Skipped)
	})
	h.members.setAlive("n1", "n2")
	h.eventually("n1 takes n3's address when n3 is gone", func() error {
		if got := h.l2.announced(); !strings.Contains(got, third.String()) {
			return fmt.Errorf("announced %s", got)
		}
		return nil
	})
	notReady, _ := takeover.Published{}.MarshalBinary()
	h.members.setMeta("n3", notReady)
	h.members.setAlive("n1", "n2", "n3")
	h.eventually("n1 has seen n3 back (expects it) but does not count it as a candidate", func() error {
		st, err := h.speakerStatus()
		if err != nil {
			return err
		}
		if st.MembersExpected != 3 || st.MembersAlive != 2 {
			return fmt.Errorf("expected %d alive %d", st.MembersExpected, st.MembersAlive)
		}
		return nil
	})
	testkit.Holds(t, time.Second, "n1 keeps n3's address", func() error {
		if got := h.l2.announced(); !strings.Contains(got, third.String()) {
			return fmt.Errorf("announced %s", got)
		}
		return nil
	})
}

// A memberlist member that cannot start (its port taken) makes the
// speaker unready and is reported with an Event on the Node.
func TestSpeakerReportsAFailedMemberlist(t *testing.T) {
	h := startHarness(t)
	h.members.setErr(errors.New("members: cannot start on 10.0.0.11:7946: listen udp 10.0.0.11:7946: bind: address already in use"))
	h.eventually("an Event on the Node", func() error {
		return h.event("default", "n1", ReasonMemberlistFailed, "address already in use")
	})
	if err := h.spk.Ready(); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("readiness %v", err)
	}
	h.eventually("the Ready condition says why", func() error {
		c, err := h.condition(ConditionReady)
		if err != nil {
			return err
		}
		if c.Reason != "MemberlistFailed" {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
}

// A new key in the Secret is rotated to (no restart); a bad one is
// reported in the status and the current key stays.
func TestSpeakerTakesNewKeysAndReportsBadOnes(t *testing.T) {
	h := startHarness(t)
	ctx := context.Background()
	var sec corev1.Secret
	key := client.ObjectKey{Namespace: v1beta1.Namespace, Name: k8s.MemberlistSecretName}
	update := func(b []byte) {
		t.Helper()
		if err := h.c.Get(ctx, key, &sec); err != nil {
			t.Fatal(err)
		}
		sec.Data["key"] = b
		if err := h.c.Update(ctx, &sec); err != nil {
			t.Fatal(err)
		}
	}
	update([]byte("seven b"))
	h.eventually("the bad key is reported", func() error {
		c, err := h.condition(ConditionMemberlistKey)
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionFalse || c.Reason != "InvalidKey" || !strings.Contains(c.Message, "holds 7") {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
	k16 := []byte(strings.Repeat("n", 16))
	update(k16)
	h.eventually("the new key is handed to memberlist", func() error {
		h.members.mu.Lock()
		defer h.members.mu.Unlock()
		if string(h.members.key) != string(k16) {
			return fmt.Errorf("memberlist key %q", h.members.key)
		}
		return nil
	})
	h.eventually("the condition is good again", func() error {
		c, err := h.condition(ConditionMemberlistKey)
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionTrue {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
}

// flakyCache fails the first reads of one Service, as a cache can while it
// resyncs: the loop must retry them, not drop them.
type flakyCache struct {
	cache.Cache
	fail map[string]int
}

func (f *flakyCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Service); ok && f.fail[key.Name] > 0 {
		f.fail[key.Name]--
		return errors.New("injected read failure")
	}
	return f.Cache.Get(ctx, key, obj, opts...)
}

func TestSpeakerRetriesWhatFailed(t *testing.T) {
	h := startHarness(t, func(o *Options) { o.Cache = &flakyCache{Cache: o.Cache, fail: map[string]int{"flaky": 3}} })
	h.l2Setup()
	for _, n := range []string{"n2", "n3"} {
		h.inbox.Message(members.Message{Kind: members.KindRelease, From: n}.Marshal())
	}
	ip := rankedIP([]string{"n1", "n2", "n3"}, "n1")
	h.service("flaky", false, ip)
	h.eventually("the Service is announced although its first reads failed", func() error {
		if got, want := h.l2.announced(), fmt.Sprint([]netip.Addr{ip}); got != want {
			return fmt.Errorf("announced %s, want %s", got, want)
		}
		return nil
	})
}

// During the grace period after settling, a node takes an address released
// to it at once (the grace period only holds back what nobody released).
func TestSpeakerTakesWhatIsReleasedDuringItsGrace(t *testing.T) {
	h := startHarness(t, func(o *Options) { o.Grace = time.Hour })
	h.l2Setup()
	mine := rankedIP([]string{"n1", "n2", "n3"}, "n1")
	h.service("grace", false, mine)
	for _, n := range []string{"n2", "n3"} {
		h.inbox.Message(members.Message{Kind: members.KindRelease, From: n}.Marshal())
	}
	h.eventually("settled, in its grace period", func() error {
		c, err := h.condition(ConditionReady)
		if err != nil {
			return err
		}
		if c.Reason != "Settling" || !strings.Contains(c.Message, "release") {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
	if got := h.l2.announced(); got != "[]" {
		t.Fatalf("announces %s during its grace period, before anything was released", got)
	}
	h.inbox.Message(members.Message{Kind: members.KindRelease, From: "n2", IPs: []netip.Addr{mine}}.Marshal())
	h.eventually("announces the released address long before the grace period ends", func() error {
		if got, want := h.l2.announced(), fmt.Sprint([]netip.Addr{mine}); got != want {
			return fmt.Errorf("announced %s, want %s", got, want)
		}
		return nil
	})
}
