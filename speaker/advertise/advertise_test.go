package advertise

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
)

func ptr[T any](v T) *T { return &v }

var (
	rackA = metav1.LabelSelector{MatchLabels: map[string]string{"rack": "a"}}
	nodes = []Node{{Name: "n1", Labels: map[string]string{"rack": "a"}}, {Name: "n2", Labels: map[string]string{"rack": "a"}}, {Name: "n3", Labels: map[string]string{"rack": "b"}}}
)

func obj(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Unix(0, 0))}
}

// model: pool "lan" (L2 on rack a, eth1; and everywhere by default from a
// second advertisement for "lan6"), pool "routed" (BGP /24 aggregate to both
// peers, localPref 200), pool "plain" (no advertisement).
func model(t *testing.T) *config.Model {
	t.Helper()
	m := config.Build(config.Input{
		Pools: []v1beta1.IPPool{
			{ObjectMeta: obj("lan"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"198.51.100.0/24"}}},
			{ObjectMeta: obj("lan6"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"2001:db8:100::/64"}}},
			{ObjectMeta: obj("routed"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/24", "2001:db8:200::/64"}}},
			{ObjectMeta: obj("plain"), Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"192.0.2.128/25"}}},
		},
		L2Advertisements: []v1beta1.L2Advertisement{
			{ObjectMeta: obj("rack-a"), Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan"}}, NodeSelectors: []metav1.LabelSelector{rackA}, Interfaces: []string{"eth1"}}},
			{ObjectMeta: obj("v6"), Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan6"}}}},
		},
		Peers: []v1beta1.BGPPeer{
			{ObjectMeta: obj("ibgp"), Spec: v1beta1.BGPPeerSpec{MyASN: 64500, PeerASN: ptr(int64(64500)), PeerAddress: "10.0.0.1"}},
			{ObjectMeta: obj("ebgp"), Spec: v1beta1.BGPPeerSpec{MyASN: 64500, PeerASN: ptr(int64(64512)), PeerAddress: "10.0.0.2", NodeSelectors: []metav1.LabelSelector{rackA}}},
		},
		BGPAdvertisements: []v1beta1.BGPAdvertisement{
			{ObjectMeta: obj("agg"), Spec: v1beta1.BGPAdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, AggregationLength: ptr(int32(24)), LocalPref: ptr(int64(200)), Communities: []v1beta1.Community{"64500:1"}}},
			{ObjectMeta: obj("host"), Spec: v1beta1.BGPAdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, Peers: []string{"ibgp"}, Communities: []v1beta1.Community{"no-export"}}},
		},
	}, nil)
	for _, p := range m.Problems {
		if p.Effect != config.Degraded {
			t.Fatalf("model problem: %+v", p)
		}
	}
	return m
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestL2ForService(t *testing.T) {
	m := model(t)
	cases := []struct {
		name string
		svc  Service
		want string // fmt of IP, Eligible, Selected, Interfaces per target
	}{
		{"IP in a pool without L2Advertisement is not announced",
			Service{Key: "d/x", IPs: []netip.Addr{ip("192.0.2.130")}}, "[]"},
		{"node selector and interfaces",
			Service{Key: "d/web", IPs: []netip.Addr{ip("198.51.100.5")}}, "[198.51.100.5 [n1 n2] [n1 n2] map[n1:[eth1] n2:[eth1]]]"},
		{"default interfaces on every node",
			Service{Key: "d/v6", IPs: []netip.Addr{ip("2001:db8:100::5")}}, "[2001:db8:100::5 [n1 n2 n3] [n1 n2 n3] map[]]"},
		{"Local: only nodes with a ready endpoint",
			Service{Key: "d/l", IPs: []netip.Addr{ip("198.51.100.6")}, LocalTraffic: true, EndpointNodes: []string{"n2", "n3"}}, "[198.51.100.6 [n2] [n1 n2] map[n2:[eth1]]]"},
		{"Local without endpoints: nobody",
			Service{Key: "d/l", IPs: []netip.Addr{ip("2001:db8:100::7")}, LocalTraffic: true}, "[2001:db8:100::7 [] [n1 n2 n3] map[]]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, tg := range L2ForService(m, tc.svc, nodes) {
				got = append(got, fmt.Sprint(tg.IP, " ", tg.Eligible, " ", tg.Selected, " ", tg.Interfaces))
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestSkipReason(t *testing.T) {
	m := model(t)
	tg := L2ForService(m, Service{Key: "d/l", IPs: []netip.Addr{ip("198.51.100.6")}, LocalTraffic: true, EndpointNodes: []string{"n2"}}, nodes)[0]
	for node, want := range map[string]v1beta1.L2SkipReason{"n3": v1beta1.L2SkipNodeNotSelected, "n1": v1beta1.L2SkipNoLocalEndpoint, "n2": v1beta1.L2SkipOwnedElsewhere} {
		if got := tg.SkipReason(node); got != want {
			t.Errorf("SkipReason(%s) = %s, want %s", node, got, want)
		}
	}
}

func TestBGPForService(t *testing.T) {
	m := model(t)
	web := Service{Key: "d/web", IPs: []netip.Addr{ip("203.0.113.7"), ip("2001:db8:200::7")}}
	cases := []struct {
		name string
		svc  Service
		node Node
		want []string
	}{
		{"rack a node: aggregate to both peers, host route to iBGP; localPref only toward iBGP", web, nodes[0], []string{
			"ebgp 203.0.113.0/24 [64500:1] lp=-",
			"ebgp 2001:db8:200::7/128 [64500:1] lp=-",
			"ibgp 203.0.113.0/24 [64500:1] lp=200",
			"ibgp 203.0.113.7/32 [65535:65281] lp=-",
			"ibgp 2001:db8:200::7/128 [64500:1 65535:65281] lp=200",
		}},
		{"rack b node does not peer with ebgp", Service{Key: "d/x", IPs: []netip.Addr{ip("203.0.113.7")}}, nodes[2], []string{
			"ibgp 203.0.113.0/24 [64500:1] lp=200",
			"ibgp 203.0.113.7/32 [65535:65281] lp=-",
		}},
		{"Local without a local endpoint: nothing", Service{Key: "d/l", IPs: []netip.Addr{ip("203.0.113.8")}, LocalTraffic: true, EndpointNodes: []string{"n2"}}, nodes[0], nil},
		{"Local with a local endpoint", Service{Key: "d/l", IPs: []netip.Addr{ip("203.0.113.8")}, LocalTraffic: true, EndpointNodes: []string{"n2"}}, nodes[1], []string{
			"ebgp 203.0.113.0/24 [64500:1] lp=-",
			"ibgp 203.0.113.0/24 [64500:1] lp=200",
			"ibgp 203.0.113.8/32 [65535:65281] lp=-",
		}},
		{"L2 pool is not advertised over BGP", Service{Key: "d/x", IPs: []netip.Addr{ip("198.51.100.5")}}, nodes[0], nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range Merge(BGPForService(m, tc.svc, tc.node)) {
				lp := "-"
				if r.LocalPref != nil {
					lp = fmt.Sprint(*r.LocalPref)
				}
				var cs []string
				for _, c := range r.Communities {
					cs = append(cs, config.CommunityString(c))
				}
				got = append(got, fmt.Sprintf("%s %s %v lp=%s", r.Peer, r.Prefix, cs, lp))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got\n  %v\nwant\n  %v", got, tc.want)
			}
		})
	}
}

func TestMergeAggregatesServicesIntoOneRoute(t *testing.T) {
	m := model(t)
	var all []Route
	for i := 1; i <= 3; i++ {
		all = append(all, BGPForService(m, Service{Key: fmt.Sprint("d/s", i), IPs: []netip.Addr{ip(fmt.Sprint("203.0.113.", i))}}, nodes[2])...)
	}
	merged := Merge(all)
	// One /24 aggregate plus three host routes, all toward ibgp.
	if len(merged) != 4 || merged[0].Prefix.String() != "203.0.113.0/24" {
		t.Fatalf("merged = %+v", merged)
	}
}
