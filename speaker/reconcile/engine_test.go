package reconcile

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/speaker/advertise"
	"github.com/heraldlb/herald/speaker/election"
	"github.com/heraldlb/herald/speaker/takeover"
)

var (
	t0      = time.Unix(1000, 0)
	allNode = []string{"n1", "n2", "n3"}
	nodes   = []advertise.Node{
		{Name: "n1", Labels: map[string]string{"rack": "a"}},
		{Name: "n2", Labels: map[string]string{"rack": "a"}},
		{Name: "n3", Labels: map[string]string{"rack": "b"}},
	}
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Unix(0, 0))}
}

// testModel: pool lan (198.51.100.0/24, 2001:db8:100::/64) announced on
// every node with the default interface; pool rack (198.51.101.0/24)
// announced only by rack a on eth1; pool routed (203.0.113.0/24) only by BGP.
func testModel(t testing.TB) *config.Model {
	t.Helper()
	m := config.Build(config.Input{
		Pools: []v1beta1.IPPool{
			{ObjectMeta: meta("lan"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"198.51.100.0/24", "2001:db8:100::/64"}}},
			{ObjectMeta: meta("rack"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"198.51.101.0/24"}}},
			{ObjectMeta: meta("routed"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/24"}}},
		},
		L2Advertisements: []v1beta1.L2Advertisement{
			{ObjectMeta: meta("lan"), Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan"}}}},
			{ObjectMeta: meta("rack"), Spec: v1beta1.L2AdvertisementSpec{
				PoolSelection: v1beta1.PoolSelection{IPPools: []string{"rack"}},
				NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "a"}}},
				Interfaces:    []string{"eth1"},
			}},
		},
	}, nil)
	if len(m.Problems) > 0 {
		t.Fatalf("model problems: %+v", m.Problems)
	}
	return m
}

func svc(key string, local bool, endpoints []string, ips ...string) Service {
	s := Service{Service: advertise.Service{Key: key, LocalTraffic: local, EndpointNodes: slices.Sorted(slices.Values(endpoints))}, UID: types.UID("uid-" + key)}
	for _, ip := range ips {
		s.IPs = append(s.IPs, addr(ip))
	}
	return s
}

// cluster runs one engine per node with the same inputs.
type cluster map[string]*Engine

func newCluster(t *testing.T, services ...Service) cluster {
	c := cluster{}
	for _, n := range allNode {
		e := NewEngine(n)
		e.SetNodes(nodes)
		e.SetModel(testModel(t))
		for _, s := range services {
			e.UpsertService(s)
		}
		c[n] = e
	}
	return c
}

// elect sets the live members everywhere, elects (trusted: every node sees
// a majority), and returns which nodes announce each IP (as "ip=n1,n2").
func (c cluster) elect(live []string) string {
	owners := map[netip.Addr][]string{}
	for _, n := range allNode {
		e := c[n]
		e.SetLive(live)
		e.Elect(t0, true, nil)
		for _, ip := range e.Announced() {
			owners[ip] = append(owners[ip], n)
		}
	}
	var out []string
	for ip, ns := range owners {
		out = append(out, ip.String()+"="+strings.Join(ns, ","))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func TestEngineElectsOneOwnerPerIP(t *testing.T) {
	web := svc("d/web", false, nil, "198.51.100.5", "2001:db8:100::5")
	c := newCluster(t, web)
	want := fmt.Sprintf("198.51.100.5=%s 2001:db8:100::5=%s",
		election.Owner(addr("198.51.100.5"), allNode), election.Owner(addr("2001:db8:100::5"), allNode))
	if got := c.elect(allNode); got != want {
		t.Fatalf("owners %s, want %s", got, want)
	}
	// The owner of the IPv4 address dies: the next in rank takes it.
	first := election.Owner(addr("198.51.100.5"), allNode)
	rest := slices.DeleteFunc(slices.Clone(allNode), func(n string) bool { return n == first })
	if got, want := c.elect(rest), "198.51.100.5="+election.Owner(addr("198.51.100.5"), rest); !strings.HasPrefix(got, want+" ") {
		t.Fatalf("after %s died: %s, want %s ...", first, got, want)
	}
}

func TestEngineLocalTrafficFollowsEndpoints(t *testing.T) {
	c := newCluster(t, svc("d/local", true, []string{"n2"}, "198.51.100.6"))
	if got := c.elect(allNode); got != "198.51.100.6=n2" {
		t.Fatalf("owners %s, want only n2 (the only ready endpoint)", got)
	}
	for _, e := range c {
		e.UpsertService(svc("d/local", true, []string{"n3"}, "198.51.100.6"))
	}
	if got := c.elect(allNode); got != "198.51.100.6=n3" {
		t.Fatalf("after the endpoint moved: %s, want n3", got)
	}
	for _, e := range c {
		e.UpsertService(svc("d/local", true, nil, "198.51.100.6"))
	}
	if got := c.elect(allNode); got != "" {
		t.Fatalf("without endpoints: %s, want nobody", got)
	}
}

func TestEngineNodeSelectorsAndInterfaces(t *testing.T) {
	c := newCluster(t, svc("d/rack", false, nil, "198.51.101.7"))
	got := c.elect(allNode)
	owner := election.Owner(addr("198.51.101.7"), []string{"n1", "n2"})
	if got != "198.51.101.7="+owner {
		t.Fatalf("owners %s, want %s (rack a only)", got, owner)
	}
	if d := c[owner].Desired(); len(d) != 1 || !slices.Equal(d[0].Interfaces, []string{"eth1"}) {
		t.Fatalf("desired %+v, want the advertisement's interface eth1", d)
	}
	var st v1beta1.SpeakerStatusStatus
	c["n3"].L2Report(&st, nil)
	if st.L2SkippedCount != 1 || st.L2Skipped[0].Reason != v1beta1.L2SkipNodeNotSelected {
		t.Fatalf("n3 status %+v, want one skip NodeNotSelected", st)
	}
}

func TestEngineUntrustedKeepsButDoesNotTakeOver(t *testing.T) {
	ip := addr("198.51.100.5")
	c := newCluster(t, svc("d/web", false, nil, ip.String()))
	first := election.Owner(ip, allNode)
	c.elect(allNode)
	e := c[first]
	// Cut off: it sees only itself and is not trusted; it keeps its address.
	e.SetLive([]string{first})
	if ch, _ := e.Elect(t0, false, nil); len(ch) != 0 || len(e.Announced()) != 1 {
		t.Fatalf("a cut-off owner changed %v, announces %v; want it to keep its address", ch, e.Announced())
	}
	// Another node, not trusted, does not take the address over, not even
	// when it is the only live node; a hand-over makes it.
	other := e.self
	for _, n := range allNode {
		if n != first {
			other = n
			break
		}
	}
	o := c[other]
	o.SetLive([]string{other})
	if ch, _ := o.Elect(t0, false, nil); len(ch) != 0 {
		t.Fatalf("an untrusted node took over: %v", ch)
	}
	var st v1beta1.SpeakerStatusStatus
	o.L2Report(&st, nil)
	if st.L2Skipped[0].Reason != L2SkipNoQuorum {
		t.Fatalf("skip reason %s, want %s", st.L2Skipped[0].Reason, L2SkipNoQuorum)
	}
	o.MarkAllDirty()
	if ch, _ := o.Elect(t0, false, map[netip.Addr]bool{ip: true}); len(ch) != 1 || !ch[0].Start {
		t.Fatalf("after a hand-over: %v, want a start", ch)
	}
}

func TestEngineSharedIPAndServiceDeletion(t *testing.T) {
	ip := "198.51.100.9"
	c := newCluster(t, svc("d/a", false, nil, ip), svc("d/b", false, nil, ip))
	owner := election.Owner(addr(ip), allNode)
	if got := c.elect(allNode); got != ip+"="+owner {
		t.Fatalf("owners %s, want one owner %s", got, owner)
	}
	e := c[owner]
	var st v1beta1.SpeakerStatusStatus
	e.L2Report(&st, map[netip.Addr][]string{addr(ip): {"eth0"}})
	if st.AnnouncedIPs != 1 || fmt.Sprint(st.L2Announcements[0].Services) != "[d/a d/b]" {
		t.Fatalf("status %+v, want one address for both Services", st)
	}
	e.DeleteService("d/a")
	if ch, _ := e.Elect(t0, true, nil); len(ch) != 0 {
		t.Fatalf("deleting one of two Services stopped the address: %v", ch)
	}
	e.DeleteService("d/b")
	ch, _ := e.Elect(t0, true, nil)
	if len(ch) != 1 || ch[0].Start || ch[0].Why != "no Service uses it any more" || len(ch[0].Services) != 1 || ch[0].Services[0].Key != "d/b" {
		t.Fatalf("after deleting both: %+v", ch)
	}
}

func TestEngineSuccessorsAndStopReasons(t *testing.T) {
	ip := addr("198.51.100.5")
	c := newCluster(t, svc("d/web", false, nil, ip.String()))
	c.elect(allNode)
	rank := election.Rank(ip, allNode)
	e := c[rank[0]]
	if got := e.Successors(); fmt.Sprint(got) != fmt.Sprintf("map[%s:[%s]]", rank[1], ip) {
		t.Fatalf("successors %v, want %s", got, rank[1])
	}
	// The second in rank took it while the first was gone; the first is back.
	s := c[rank[1]]
	s.SetLive(rank[1:])
	s.Elect(t0, true, nil)
	s.SetLive(allNode)
	ch, _ := s.Elect(t0, true, nil)
	if len(ch) != 1 || ch[0].Why != rank[0]+" announces it now" {
		t.Fatalf("stop %+v, want %q", ch, rank[0]+" announces it now")
	}
}

func TestEngineRoutes(t *testing.T) {
	asn := int64(64512)
	m := config.Build(config.Input{
		Pools: []v1beta1.IPPool{{ObjectMeta: meta("routed"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/24"}}}},
		Peers: []v1beta1.BGPPeer{{ObjectMeta: meta("frr"), Spec: v1beta1.BGPPeerSpec{MyASN: 64500, PeerASN: &asn, PeerAddress: "10.0.0.1"}}},
		BGPAdvertisements: []v1beta1.BGPAdvertisement{{ObjectMeta: meta("routed"), Spec: v1beta1.BGPAdvertisementSpec{
			PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}}}},
	}, nil)
	e := NewEngine("n1")
	e.SetNodes(nodes)
	e.SetModel(m)
	e.UpsertService(svc("d/web", false, nil, "203.0.113.7"))
	if r := e.ServiceRoutes("d/web"); fmt.Sprint(r) != "[{frr 203.0.113.7/32 [] [] <nil>}]" {
		t.Fatalf("routes %v, want one /32 to frr", r)
	}
	e.DeleteService("d/web")
	if r := e.ServiceRoutes("d/web"); r != nil {
		t.Fatalf("after deletion: %v, want none", r)
	}
}

// The status report is rebuilt only when Engine.Version moves (status.go),
// so everything the report shows must move it. A node that could not
// announce an address and saw only itself reported no owner for it; when
// the others came back the owner changed while nothing this node
// announced did, and its SpeakerStatus went on saying "no owner" (seen in
// e2e/l2 with 100 ms memberlist probes).
func TestEngineVersionMovesWithWhatTheReportShows(t *testing.T) {
	ip := addr("198.51.100.5")
	c := newCluster(t, svc("d/web", false, nil, ip.String()))
	first := election.Owner(ip, allNode)
	others := slices.DeleteFunc(slices.Clone(allNode), func(n string) bool { return n == first })
	successor := election.Owner(ip, others)
	report := func(e *Engine) v1beta1.L2Skip {
		t.Helper()
		var st v1beta1.SpeakerStatusStatus
		e.L2Report(&st, nil)
		if len(st.L2Skipped) != 1 {
			t.Fatalf("%s skips %+v, want one address", e.self, st.L2Skipped)
		}
		return st.L2Skipped[0]
	}

	// The first in rank cannot announce and sees only itself: no owner.
	e := c[first]
	e.SetBlocked(map[string]takeover.Blocked{first: {All: true}})
	e.SetLive([]string{first})
	e.Elect(t0, false, nil)
	if got := report(e); got.Reason != v1beta1.L2SkipNoInterface || got.Owner != "" {
		t.Fatalf("alone and blocked: %+v, want NoInterface and no owner", got)
	}
	// The others come back: the successor owns it, and the report says so.
	v := e.Version
	e.SetLive(allNode)
	e.Elect(t0, true, nil)
	if e.Version == v {
		t.Fatal("the owner changed but Version did not")
	}
	if got := report(e); got.Reason != v1beta1.L2SkipNoInterface || got.Owner != successor {
		t.Fatalf("with the others back: %+v, want NoInterface and owner %s", got, successor)
	}

	// The successor's own view: owned elsewhere, then it loses its
	// interface; the owner stays, only the reason changes.
	o := c[successor]
	o.SetLive(allNode)
	o.Elect(t0, true, nil)
	if got := report(o); got.Reason != v1beta1.L2SkipOwnedElsewhere || got.Owner != first {
		t.Fatalf("%s: %+v, want OwnedElsewhere by %s", successor, got, first)
	}
	v = o.Version
	o.SetBlocked(map[string]takeover.Blocked{successor: {All: true}})
	o.Elect(t0, true, nil)
	if o.Version == v {
		t.Fatal("this node's blocked addresses changed but Version did not")
	}
	if got := report(o); got.Reason != v1beta1.L2SkipNoInterface || got.Owner != first {
		t.Fatalf("%s blocked: %+v, want NoInterface, owner %s", successor, got, first)
	}
}

// After an even split heals, a member of the other half may be seen before
// its published state says it settled, while it still announces what it
// kept through the split (takeover rule 3). The next in rank must not take
// such an address over (two MACs, seen in e2e/split), but takes it once
// that member leaves, or when it is released.
func TestEngineDoesNotTakeOverWhatAnUnconfirmedMemberRanksFirstFor(t *testing.T) {
	ip := addr("198.51.100.5")
	c := newCluster(t, svc("d/web", false, nil, ip.String()))
	rank := election.Rank(ip, allNode)
	first, second := rank[0], rank[1]
	e := c[second]
	skip := func() v1beta1.L2Skip {
		t.Helper()
		var st v1beta1.SpeakerStatusStatus
		e.L2Report(&st, nil)
		if len(st.L2Skipped) != 1 {
			t.Fatalf("skips %+v, want one address", st.L2Skipped)
		}
		return st.L2Skipped[0]
	}

	// Healed: first is seen, not confirmed; second ranks first among the
	// confirmed and may take over.
	e.SetLive(rank[1:])
	e.SetUnconfirmed([]string{first})
	if ch, _ := e.Elect(t0, true, nil); len(ch) != 0 {
		t.Fatalf("took over %+v while %s, unconfirmed, ranks first", ch, first)
	}
	if got := skip(); got.Reason != v1beta1.L2SkipOwnedElsewhere || got.Owner != first {
		t.Fatalf("report %+v, want OwnedByOtherNode by %s", got, first)
	}
	// A membership change elsewhere re-elects nothing into a takeover.
	e.MarkAllDirty()
	if ch, _ := e.Elect(t0, true, nil); len(ch) != 0 {
		t.Fatalf("took over %+v on a re-election", ch)
	}
	// first confirms: it owns the address; still no takeover here.
	e.SetLive(allNode)
	e.SetUnconfirmed(nil)
	if ch, _ := e.Elect(t0, true, nil); len(ch) != 0 {
		t.Fatalf("took over %+v once %s confirmed", ch, first)
	}
	// first is unconfirmed again (it re-joined), then leaves for good:
	// second takes over then, and only then.
	e.SetLive(rank[1:])
	e.SetUnconfirmed([]string{first})
	if ch, _ := e.Elect(t0, true, nil); len(ch) != 0 {
		t.Fatalf("took over %+v while %s re-joins", ch, first)
	}
	e.SetUnconfirmed(nil)
	if ch, _ := e.Elect(t0, true, nil); len(ch) != 1 || !ch[0].Start || ch[0].IP != ip {
		t.Fatalf("after %s left: %+v, want a takeover of %s", first, ch, ip)
	}

	// A release is taken even while an unconfirmed member ranks first:
	// its sender let go.
	o := c[rank[2]]
	o.SetLive(rank[2:])
	o.SetUnconfirmed(rank[:2])
	o.MarkAllDirty()
	if ch, _ := o.Elect(t0, true, nil); len(ch) != 0 {
		t.Fatalf("%s took over %+v", rank[2], ch)
	}
	o.MarkDirty(map[netip.Addr]bool{ip: true})
	if ch, _ := o.Elect(t0, true, map[netip.Addr]bool{ip: true}); len(ch) != 1 || !ch[0].Start {
		t.Fatalf("released to %s: %+v, want a start", rank[2], ch)
	}
}
