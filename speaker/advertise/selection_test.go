package advertise

import (
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
)

func matchLabels(kv ...string) v1beta1.LabelSelector {
	s := v1beta1.LabelSelector{MatchLabels: map[string]v1beta1.LabelValue{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = v1beta1.LabelValue(kv[i+1])
	}
	return s
}

// selectionNodes: n1 rack a zone a, n2 rack a zone b, n3 rack b zone b.
var selectionNodes = []Node{
	{Name: "n1", Labels: map[string]string{"rack": "a", "zone": "a"}},
	{Name: "n2", Labels: map[string]string{"rack": "a", "zone": "b"}},
	{Name: "n3", Labels: map[string]string{"rack": "b", "zone": "b"}},
}

// selectionModel: pool lan (Layer 2) with advertisement "gold" (Services
// tier=gold, on eth1, preferring zone b, then rack a) and "edge" (Services
// exposure=lan, rack a only, withdrawn without endpoints); pool routed
// (BGP) with "base" (every Service, 64500:1), "gold" (tier=gold,
// 64500:900) and "quiet" (site=b, 64500:2, withdrawn without endpoints).
func selectionModel(t *testing.T) *config.Model {
	t.Helper()
	m := config.Build(config.Input{
		Pools: []v1beta1.IPPool{
			{ObjectMeta: obj("lan"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"198.51.100.0/24"}}},
			{ObjectMeta: obj("routed"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/24"}}},
		},
		L2Advertisements: []v1beta1.L2Advertisement{
			{ObjectMeta: obj("gold"), Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan"}}, Interfaces: []string{"eth1"},
				ServiceSelectors:       []v1beta1.LabelSelector{matchLabels("tier", "gold")},
				PreferredNodeSelectors: []v1beta1.LabelSelector{matchLabels("zone", "b"), matchLabels("rack", "a")}}},
			{ObjectMeta: obj("edge"), Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan"}},
				NodeSelectors:            []metav1.LabelSelector{rackA},
				ServiceSelectors:         []v1beta1.LabelSelector{matchLabels("exposure", "lan")},
				WithdrawWithoutEndpoints: true}},
		},
		Peers: []v1beta1.BGPPeer{{ObjectMeta: obj("ibgp"), Spec: v1beta1.BGPPeerSpec{MyASN: 64500, PeerASN: ptr(int64(64500)), PeerAddress: "10.0.0.1"}}},
		BGPAdvertisements: []v1beta1.BGPAdvertisement{
			{ObjectMeta: obj("base"), Spec: v1beta1.BGPAdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, Communities: []v1beta1.Community{"64500:1"}}},
			{ObjectMeta: obj("gold"), Spec: v1beta1.BGPAdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, Communities: []v1beta1.Community{"64500:900"},
				ServiceSelectors: []v1beta1.LabelSelector{matchLabels("tier", "gold")}}},
			{ObjectMeta: obj("quiet"), Spec: v1beta1.BGPAdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, Communities: []v1beta1.Community{"64500:2"},
				ServiceSelectors: []v1beta1.LabelSelector{matchLabels("site", "b")}, WithdrawWithoutEndpoints: true}},
		},
	}, nil)
	for _, p := range m.Problems {
		t.Fatalf("model problem: %+v", p)
	}
	return m
}

func TestL2ServiceSelectionPreferencesAndWithdrawal(t *testing.T) {
	m := selectionModel(t)
	lanIP := []netip.Addr{ip("198.51.100.5")}
	for _, tc := range []struct {
		name   string
		svc    Service
		want   string // IP Eligible Selected Interfaces Preferred NoEndpoint
		reason map[string]v1beta1.L2SkipReason
	}{
		{"a Service no advertisement selects is not announced",
			Service{Key: "d/plain", IPs: lanIP, Labels: map[string]string{"app": "web"}, ReadyEndpoint: true}, "[]", nil},
		{"tier=gold: every node, on eth1, zone b first, then rack a",
			Service{Key: "d/gold", IPs: lanIP, Labels: map[string]string{"tier": "gold"}, ReadyEndpoint: true},
			"[198.51.100.5 [n1 n2 n3] [n1 n2 n3] map[n1:[eth1] n2:[eth1] n3:[eth1]] map[n1:1 n2:0 n3:0] false]", nil},
		{"exposure=lan with a ready endpoint: rack a, default interface, nobody preferred",
			Service{Key: "d/lan", IPs: lanIP, Labels: map[string]string{"exposure": "lan"}, ReadyEndpoint: true},
			"[198.51.100.5 [n1 n2] [n1 n2] map[] map[] false]", nil},
		{"exposure=lan without a ready endpoint anywhere: withdrawn",
			Service{Key: "d/lan", IPs: lanIP, Labels: map[string]string{"exposure": "lan"}},
			"[198.51.100.5 [] [n1 n2] map[] map[] true]",
			map[string]v1beta1.L2SkipReason{"n1": v1beta1.L2SkipNoEndpoint, "n3": v1beta1.L2SkipNodeNotSelected}},
		{"both advertisements: their union; the default interface wins where both apply",
			Service{Key: "d/both", IPs: lanIP, Labels: map[string]string{"exposure": "lan", "tier": "gold"}, ReadyEndpoint: true},
			"[198.51.100.5 [n1 n2 n3] [n1 n2 n3] map[n3:[eth1]] map[n1:1 n2:0 n3:0] false]", nil},
		{"both, without endpoints: only the advertisement that does not withdraw",
			Service{Key: "d/both", IPs: lanIP, Labels: map[string]string{"exposure": "lan", "tier": "gold"}},
			"[198.51.100.5 [n1 n2 n3] [n1 n2 n3] map[n1:[eth1] n2:[eth1] n3:[eth1]] map[n1:1 n2:0 n3:0] false]", nil},
		{"Local without endpoints and withdrawn: no endpoint anywhere is the reason",
			Service{Key: "d/lan", IPs: lanIP, Labels: map[string]string{"exposure": "lan"}, LocalTraffic: true},
			"[198.51.100.5 [] [n1 n2] map[] map[] true]",
			map[string]v1beta1.L2SkipReason{"n2": v1beta1.L2SkipNoEndpoint}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			targets := L2ForService(m, tc.svc, selectionNodes)
			for _, tg := range targets {
				got = append(got, fmt.Sprint(tg.IP, " ", tg.Eligible, " ", tg.Selected, " ", tg.Interfaces, " ", tg.Preferred, " ", tg.NoEndpoint))
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
			for node, want := range tc.reason {
				if r := targets[0].SkipReason(node); r != want {
					t.Errorf("SkipReason(%s) = %s, want %s", node, r, want)
				}
			}
		})
	}
}

func TestBGPServiceSelectionWithdrawalAndGracefulShutdown(t *testing.T) {
	m := selectionModel(t)
	routedIP := []netip.Addr{ip("203.0.113.9")}
	n1 := selectionNodes[0]
	gshut, gone := n1, n1
	gshut.Withdrawal, gone.Withdrawal = GracefulShutdown, Withdrawn
	for _, tc := range []struct {
		name string
		svc  Service
		node Node
		want string
	}{
		{"every Service: the base advertisement", Service{Key: "d/a", IPs: routedIP, ReadyEndpoint: true}, n1, "[ibgp 203.0.113.9/32 [64500:1]]"},
		{"tier=gold: its own community on top (per-Service communities)", Service{Key: "d/g", IPs: routedIP, Labels: map[string]string{"tier": "gold"}, ReadyEndpoint: true}, n1, "[ibgp 203.0.113.9/32 [64500:1 64500:900]]"},
		{"site=b with a ready endpoint: quiet's community too", Service{Key: "d/q", IPs: routedIP, Labels: map[string]string{"site": "b"}, ReadyEndpoint: true}, n1, "[ibgp 203.0.113.9/32 [64500:1 64500:2]]"},
		{"site=b without endpoints: quiet withdraws, base stays", Service{Key: "d/q", IPs: routedIP, Labels: map[string]string{"site": "b"}}, n1, "[ibgp 203.0.113.9/32 [64500:1]]"},
		{"a node in graceful shutdown: GRACEFUL_SHUTDOWN on every route", Service{Key: "d/g", IPs: routedIP, Labels: map[string]string{"tier": "gold"}, ReadyEndpoint: true}, gshut, "[ibgp 203.0.113.9/32 [64500:1 64500:900 65535:0]]"},
		{"a withdrawn node: nothing", Service{Key: "d/g", IPs: routedIP, ReadyEndpoint: true}, gone, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range Merge(BGPForService(m, tc.svc, tc.node)) {
				var cs []string
				for _, c := range r.Communities {
					cs = append(cs, config.CommunityString(c))
				}
				got = append(got, fmt.Sprintf("%s %s %v", r.Peer, r.Prefix, cs))
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
	// The graceful shutdown community is added to a copy: the model's
	// communities stay as they were.
	_ = BGPForService(m, Service{Key: "d/a", IPs: routedIP, ReadyEndpoint: true}, gshut)
	if c := m.BGPAdvertisements[0].Communities; len(c) != 1 {
		t.Fatalf("the model's communities changed: %v", c)
	}
}
