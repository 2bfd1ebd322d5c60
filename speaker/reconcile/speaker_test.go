package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
	"github.com/heraldlb/herald/speaker/bgp"
	"github.com/heraldlb/herald/speaker/election"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/heraldlb/herald/speaker/status"
)

// harness runs one Speaker for node n1 against a real API server, with
// memberlist, the announcer and the BGP router faked.
type harness struct {
	t       *testing.T
	c       client.Client
	members *fakeMembers
	l2      *fakeL2
	router  *fakeRouter
	inbox   *Inbox
	spk     *Speaker
	writer  *status.Writer
	stop    context.CancelFunc
	done    chan error
}

var key32 = []byte(strings.Repeat("k", 32))

func startHarness(t *testing.T, tweaks ...func(*Options)) *harness {
	t.Helper()
	env := testenv.Start(t, testenv.WithoutControllerManager())
	mgr, err := k8s.NewManager(env.Config, k8s.ManagerOptions{MetricsBindAddress: "0", HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	direct, err := client.New(env.Config, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, c: direct, members: newFakeMembers("n1", "n2", "n3"), router: newFakeRouter(), inbox: NewInbox()}
	h.l2 = &fakeL2{onChange: h.inbox.L2Changed, onLinks: h.inbox.LinksChanged}
	ctx := context.Background()
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v1beta1.Namespace}})
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}})
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: v1beta1.Namespace, Name: k8s.MemberlistSecretName}, Data: map[string][]byte{"key": key32}})
	for i, name := range []string{"n1", "n2", "n3"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"rack": map[bool]string{true: "a", false: "b"}[i < 2]}}}
		h.create(n)
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.0.0.%d", 11+i)}, {Type: corev1.NodeInternalIP, Address: fmt.Sprintf("fd00:10::%d", 11+i)}}
		if err := direct.Status().Update(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	events := &k8s.EventSink{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Controller: "herald-speaker", Log: slog.New(slog.DiscardHandler)}
	if err := mgr.Add(events); err != nil {
		t.Fatal(err)
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() { stopMgr(); _ = <-mgrDone })

	h.spk, err = New(Options{
		Node: "n1", NodeIP: netip.MustParseAddr("10.0.0.11"), Cache: mgr.GetCache(),
		MemberlistSecret: k8s.MemberlistSecretName,
		Events:           events,
		Members:          h.members, L2: h.l2, BGP: h.router, Inbox: h.inbox,
		Registerer: prometheus.NewRegistry(),
	}.with(tweaks))
	if err != nil {
		t.Fatal(err)
	}
	h.writer, err = status.New(status.Options{Client: direct, Node: "n1", Source: h.spk.Status, Announcements: h.spk.Announcements, Changed: h.spk.StatusChanged(), MinInterval: 100 * time.Millisecond, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	h.stop, h.done = stop, make(chan error, 2)
	go func() { h.done <- h.spk.Run(runCtx) }()
	go func() { h.done <- h.writer.Run(runCtx) }()
	t.Cleanup(h.shutdown)
	return h
}

func (h *harness) shutdown() {
	if h.stop == nil {
		return
	}
	h.stop()
	h.stop = nil
	for range 2 {
		if err := <-h.done; err != nil {
			h.t.Error(err)
		}
	}
}

func (h *harness) create(obj client.Object) {
	h.t.Helper()
	if err := h.c.Create(context.Background(), obj); err != nil {
		h.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func (h *harness) eventually(what string, cond func() error) {
	h.t.Helper()
	testkit.For(h.t, 15*time.Second, what, cond)
}

// with applies tweaks to the options.
func (o Options) with(tweaks []func(*Options)) Options {
	for _, f := range tweaks {
		f(&o)
	}
	return o
}

// service creates a LoadBalancer Service and writes its ingress IPs.
func (h *harness) service(name string, local bool, ips ...netip.Addr) {
	h.t.Helper()
	s := objects.Service("demo", name)
	if local {
		objects.LocalTraffic(s)
	}
	h.create(s)
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip.String()})
	}
	if err := h.c.Status().Update(context.Background(), s); err != nil {
		h.t.Fatal(err)
	}
}

// endpoints writes the Service's one EndpointSlice: an endpoint per node, ready or not.
func (h *harness) endpoints(svc string, ready map[string]bool) {
	h.t.Helper()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "demo", Name: svc + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	i := 0
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range ready {
			if !yield(n) {
				return
			}
		}
	}) {
		i++
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.244.%d.2", i)}, NodeName: ptr.To(n), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready[n])}})
	}
	ctx := context.Background()
	var cur discoveryv1.EndpointSlice
	if err := h.c.Get(ctx, client.ObjectKeyFromObject(es), &cur); err == nil {
		cur.Endpoints = es.Endpoints
		if err := h.c.Update(ctx, &cur); err != nil {
			h.t.Fatal(err)
		}
		return
	}
	h.create(es)
}

func (h *harness) speakerStatus() (v1beta1.SpeakerStatusStatus, error) {
	var ss v1beta1.SpeakerStatus
	err := h.c.Get(context.Background(), client.ObjectKey{Name: "n1"}, &ss)
	return ss.Status, err
}

// event finds an Event with reason about the named object whose note contains text.
func (h *harness) event(ns, name, reason, text string) error {
	var list eventsv1.EventList
	if err := h.c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return err
	}
	var seen []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason && strings.Contains(e.Note, text) {
			return nil
		}
		seen = append(seen, e.Reason+": "+e.Note)
	}
	return fmt.Errorf("no %s Event on %s with %q; have %q", reason, name, text, seen)
}

// rankedIP finds an address in 198.51.100.0/24, not used before, whose
// ranking among nodes starts with want.
var usedIPs = map[netip.Addr]bool{}

func rankedIP(nodes []string, want ...string) netip.Addr {
	for i := 10; i < 250; i++ {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if !usedIPs[ip] && slices.Equal(election.Rank(ip, nodes)[:len(want)], want) {
			usedIPs[ip] = true
			return ip
		}
	}
	panic("no such address")
}

func TestSpeakerAgainstAPIServer(t *testing.T) {
	h := startHarness(t)
	all := []string{"n1", "n2", "n3"}
	mine := rankedIP(all, "n1")
	theirs := rankedIP(all, "n2", "n1")
	local := rankedIP([]string{"n1", "n2"}, "n1")
	h.create(&v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"198.51.100.0/24"}}})
	adv := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan"}}}}
	h.create(adv)
	h.service("web", false, mine)
	h.service("other", false, theirs)
	h.service("local", true, local)
	h.endpoints("local", map[string]bool{"n2": true, "n1": false})

	// n1 settles once n2 and n3 have told it what they yield (they see it join).
	for _, n := range []string{"n2", "n3"} {
		h.inbox.Message(members.Message{Kind: members.KindRelease, From: n}.Marshal())
	}
	// n1 announces the address it ranks first for, not the others.
	h.eventually("n1 announces its address", func() error {
		if got, want := h.l2.announced(), fmt.Sprint([]netip.Addr{mine}); got != want {
			return fmt.Errorf("announced %s, want %s", got, want)
		}
		return nil
	})
	h.eventually("Event on the Service", func() error {
		return h.event("demo", "web", ReasonAnnouncingL2, fmt.Sprintf("announcing %s from n1 on eth0", mine))
	})
	if got := h.members.peers; fmt.Sprint(got) != "[10.0.0.12 10.0.0.13]" {
		t.Errorf("memberlist peers %v, want the other nodes' IPv4 InternalIPs", got)
	}
	h.eventually("SpeakerStatus", func() error {
		st, err := h.speakerStatus()
		if err != nil {
			return err
		}
		skips := map[string]string{}
		for _, s := range st.L2Skipped {
			skips[s.IP] = string(s.Reason) + "/" + s.Owner
		}
		if st.MembersAlive != 3 || st.AnnouncedIPs != 1 || len(st.L2Announcements) != 1 || st.L2Announcements[0].IP != mine.String() ||
			skips[theirs.String()] != "OwnedByOtherNode/n2" || skips[local.String()] != "NoLocalEndpoint/n2" || st.UpdatedAt == nil {
			return fmt.Errorf("status %+v (skips %v)", st, skips)
		}
		return nil
	})

	// externalTrafficPolicy Local: the address moves to n1 once n1 has a
	// ready endpoint (n1 ranks first among n1 and n2).
	h.endpoints("local", map[string]bool{"n2": true, "n1": true})
	h.eventually("n1 announces the Local address", func() error {
		if got := h.l2.announced(); !strings.Contains(got, local.String()) {
			return fmt.Errorf("announced %s, want %s among them", got, local)
		}
		return nil
	})
	h.endpoints("local", map[string]bool{"n2": true, "n1": false})
	h.eventually("n1 stops when its endpoint turns unready", func() error {
		if strings.Contains(h.l2.announced(), local.String()) {
			return fmt.Errorf("still announcing %s", local)
		}
		return h.event("demo", "local", ReasonStoppedAnnouncingL2, "no ready endpoint on n1")
	})

	// n2 fails: n1 is next for "theirs" and takes it over; n2 returns: n1
	// gives it back and announces its own addresses again (a heal).
	h.members.setAlive("n1", "n3")
	h.eventually("n1 takes over from n2", func() error {
		if got := h.l2.announced(); !strings.Contains(got, theirs.String()) {
			return fmt.Errorf("announced %s", got)
		}
		return nil
	})
	h.members.setAlive("n1", "n2", "n3")
	h.eventually("n1 gives the address back with a release message", func() error {
		if got := h.l2.announced(); strings.Contains(got, theirs.String()) {
			return fmt.Errorf("still announcing %s", theirs)
		}
		if got := h.members.releasesTo("n2"); !slices.Contains(got, fmt.Sprint([]netip.Addr{theirs})) {
			return fmt.Errorf("releases to n2: %v, want one with %s", got, theirs)
		}
		return h.event("demo", "other", ReasonStoppedAnnouncingL2, "n2 announces it now")
	})
	// A release for an address n1 announces already makes it announce it again.
	h.inbox.Message(members.Message{Kind: members.KindRelease, From: "n3", IPs: []netip.Addr{mine}}.Marshal())
	h.eventually("a release makes n1 announce again", func() error {
		h.l2.mu.Lock()
		defer h.l2.mu.Unlock()
		if len(h.l2.reannounce) == 0 || !slices.Contains(h.l2.reannounce[len(h.l2.reannounce)-1], mine) {
			return fmt.Errorf("re-announcements %v, want %s", h.l2.reannounce, mine)
		}
		return nil
	})

	// A bad edit of the L2Advertisement keeps the last valid version.
	adv.Spec.NodeSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: "Bogus"}}}}
	if err := h.c.Update(context.Background(), adv); err != nil {
		t.Fatal(err)
	}
	h.eventually("the speaker sees the bad edit", func() error {
		if n := testutil.ToFloat64(h.spk.metrics.configProblems); n != 1 {
			return fmt.Errorf("herald_speaker_config_problems %v, want 1", n)
		}
		return nil
	})
	if got, want := h.l2.announced(), fmt.Sprint([]netip.Addr{mine}); got != want {
		t.Fatalf("after a bad edit: announced %s, want %s still", got, want)
	}

	// BGP: a peer and an advertisement reach the router with the node's
	// addresses; a session event becomes an Event on the BGPPeer.
	asn := int64(64512)
	peer := &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "frr"}, Spec: v1beta1.BGPPeerSpec{MyASN: 64500, PeerASN: &asn, PeerAddress: "10.0.0.1"}}
	h.create(peer)
	h.create(&v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/24"}}})
	h.create(&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1beta1.BGPAdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}}})
	h.service("routed", false, netip.MustParseAddr("203.0.113.7"))
	h.eventually("BGP desired state", func() error {
		d := h.router.last()
		if d.RouterID != netip.MustParseAddr("10.0.0.11") || len(d.Peers) != 1 || d.Peers[0].NextHopIPv6 != netip.MustParseAddr("fd00:10::11") ||
			fmt.Sprint(d.Paths["frr"]) != "[{203.0.113.7/32 [] [] <nil>}]" {
			return fmt.Errorf("desired %+v", d)
		}
		return nil
	})
	h.inbox.BGPEvent(bgp.Event{Peer: "frr", Address: netip.MustParseAddr("10.0.0.1"), Up: true, State: bgp.StateEstablished})
	h.eventually("BGP session Event", func() error {
		return h.event("default", "frr", ReasonBGPSessionUp, "n1: BGP session to 10.0.0.1 established")
	})
	h.eventually("SpeakerStatus BGP sessions", func() error {
		st, err := h.speakerStatus()
		if err != nil {
			return err
		}
		if st.Sessions != 1 || st.SessionsEstablished != 1 || len(st.BGPSessions) != 1 || st.BGPSessions[0].PrefixesSent != 1 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	// Graceful stop: the address goes to its successor by a direct
	// message, the others hear an empty hand-over, then memberlist is left.
	// The BGP router stops meanwhile: its withdrawal does not wait for
	// the hand-over.
	succ := election.Rank(mine, all)[1]
	bgpFirst := false
	h.members.onLeave = func() {
		select {
		case <-h.router.stopped:
			bgpFirst = true
		case <-time.After(2 * time.Second):
		}
	}
	h.shutdown()
	if !bgpFirst {
		t.Error("the BGP router was still running when the speaker left memberlist: its withdrawal waited for the hand-over")
	}
	h.members.mu.Lock()
	defer h.members.mu.Unlock()
	if !h.members.left || fmt.Sprint(h.members.sent[succ]) != fmt.Sprint([]netip.Addr{mine}) || len(h.members.sent) != 2 {
		t.Fatalf("hand-over: sent %v left %v; want %s to %s and an empty one to the other", h.members.sent, h.members.left, mine, succ)
	}
	if h.l2.announced() != "[]" {
		t.Fatalf("still announcing %s after the stop", h.l2.announced())
	}
}

// The memberlist key is waited for, with its size checked.
func TestWaitForMemberlistKey(t *testing.T) {
	env := testenv.Start(t, testenv.WithoutControllerManager())
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v1beta1.Namespace}}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if _, err := WaitForMemberlistKey(short, c, "k", discard()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without the Secret: %v, want a deadline", err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: v1beta1.Namespace, Name: "k"}, Data: map[string][]byte{"key": []byte("short")}}
	if err := c.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	// The wait logs why it keeps waiting: the sign that it read the short
	// key and refused it. Only then does the key become valid.
	var logged testkit.Buffer
	type result struct {
		key []byte
		err error
	}
	done := make(chan result, 1)
	wait, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	go func() {
		k, err := WaitForMemberlistKey(wait, c, "k", slog.New(slog.NewTextHandler(&logged, nil)))
		done <- result{k, err}
	}()
	testkit.For(t, 10*time.Second, "the short key refused", func() error {
		if !strings.Contains(logged.String(), "waiting for the memberlist key") {
			return fmt.Errorf("log: %q", logged.String())
		}
		return nil
	})
	select {
	case r := <-done:
		t.Fatalf("accepted a short key: %q, %v", r.key, r.err)
	default:
	}
	sec.Data["key"] = key32
	if err := c.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || string(r.key) != string(key32) {
		t.Fatalf("key %q, %v", r.key, r.err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
