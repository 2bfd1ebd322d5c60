package config

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// bgpAdv is BGPAdvertisement b, as mutate makes it.
func bgpAdv(mutate func(*v1beta1.BGPAdvertisementSpec)) v1beta1.BGPAdvertisement {
	a := v1beta1.BGPAdvertisement{ObjectMeta: meta("b", 0)}
	mutate(&a.Spec)
	return a
}

func TestAdvertisementsResolvePoolsAndPeers(t *testing.T) {
	web := pool("web", 0, "198.51.100.0/24")
	web.Labels = map[string]string{"tier": "web"}
	pools := []v1beta1.IPPool{web, pool("db", 0, "203.0.113.0/24"), pool("bad", 0, "nope")}
	ibgp := peer("ibgp", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.PeerASN = ptr(int64(64500)) })
	ebgp := peer("ebgp", 0, "10.0.0.2")
	cases := []struct {
		name      string
		l2        []v1beta1.L2Advertisement
		bgp       []v1beta1.BGPAdvertisement
		wantPools []string
		wantPeers []string
		problem   *Problem
	}{
		{
			name:      "no pool named: every valid pool",
			l2:        []v1beta1.L2Advertisement{{ObjectMeta: meta("all", 0)}},
			wantPools: []string{"db", "web"},
		},
		{
			name:      "pool by label selector",
			l2:        []v1beta1.L2Advertisement{{ObjectMeta: meta("sel", 0), Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "web"}}}}}}},
			wantPools: []string{"web"},
		},
		{
			name:      "a missing pool is reported; the others are still advertised",
			l2:        []v1beta1.L2Advertisement{{ObjectMeta: meta("x", 0), Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"web", "ghost"}}}}},
			wantPools: []string{"web"},
			problem:   &Problem{Object: Ref{KindL2Advertisement, "x"}, Effect: Degraded, Message: `IPPool "ghost" does not exist`},
		},
		{
			name:      "a pool that exists but is invalid is named as such",
			l2:        []v1beta1.L2Advertisement{{ObjectMeta: meta("x", 0), Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"bad"}}}}},
			wantPools: nil,
			problem:   &Problem{Object: Ref{KindL2Advertisement, "x"}, Effect: Degraded, Message: `IPPool "bad" is not in use`},
		},
		{
			name:      "BGP: all peers when none named",
			bgp:       []v1beta1.BGPAdvertisement{bgpAdv(func(s *v1beta1.BGPAdvertisementSpec) { s.IPPools = []string{"db"} })},
			wantPools: []string{"db"},
			wantPeers: []string{"ebgp", "ibgp"},
		},
		{
			name:      "BGP: a missing peer is reported",
			bgp:       []v1beta1.BGPAdvertisement{bgpAdv(func(s *v1beta1.BGPAdvertisementSpec) { s.IPPools = []string{"db"}; s.Peers = []string{"ibgp", "nope"} })},
			wantPools: []string{"db"},
			wantPeers: []string{"ibgp"},
			problem:   &Problem{Object: Ref{KindBGPAdvertisement, "b"}, Effect: Degraded, Message: `BGPPeer "nope" does not exist`},
		},
		{
			name:      "BGP: localPref toward an eBGP peer is refused for that peer",
			bgp:       []v1beta1.BGPAdvertisement{bgpAdv(func(s *v1beta1.BGPAdvertisementSpec) { s.IPPools = []string{"db"}; s.LocalPref = ptr(int64(200)) })},
			wantPools: []string{"db"},
			wantPeers: []string{"ebgp", "ibgp"},
			problem:   &Problem{Object: Ref{KindBGPAdvertisement, "b"}, Effect: Degraded, Message: "eBGP peers ebgp without it"},
		},
		{
			name:      "BGP: aggregation shorter than the pool block leaves the pool out",
			bgp:       []v1beta1.BGPAdvertisement{bgpAdv(func(s *v1beta1.BGPAdvertisementSpec) { s.AggregationLength = ptr(int32(16)) })},
			wantPools: nil,
			wantPeers: []string{"ebgp", "ibgp"},
			problem:   &Problem{Object: Ref{KindBGPAdvertisement, "b"}, Effect: Degraded, Message: "aggregation length /16 is shorter than its block"},
		},
		{
			name:      "BGP: aggregation inside the pool block is fine",
			bgp:       []v1beta1.BGPAdvertisement{bgpAdv(func(s *v1beta1.BGPAdvertisementSpec) { s.AggregationLength = ptr(int32(26)) })},
			wantPools: []string{"db", "web"},
			wantPeers: []string{"ebgp", "ibgp"},
		},
		{
			name:    "BGP: bad community is invalid",
			bgp:     []v1beta1.BGPAdvertisement{bgpAdv(func(s *v1beta1.BGPAdvertisementSpec) { s.Communities = []v1beta1.Community{"70000:1"} })},
			problem: &Problem{Object: Ref{KindBGPAdvertisement, "b"}, Effect: Skipped, Message: "communities[0]"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := Build(Input{Pools: pools, Peers: []v1beta1.BGPPeer{ibgp, ebgp}, L2Advertisements: tc.l2, BGPAdvertisements: tc.bgp}, nil)
			var gotPools, gotPeers []string
			for _, a := range m.L2Advertisements {
				gotPools = append(gotPools, a.Pools...)
			}
			for _, a := range m.BGPAdvertisements {
				gotPools = append(gotPools, a.Pools...)
				gotPeers = append(gotPeers, a.Peers...)
			}
			if !equal(gotPools, tc.wantPools) {
				t.Errorf("pools = %v, want %v", gotPools, tc.wantPools)
			}
			if !equal(gotPeers, tc.wantPeers) {
				t.Errorf("peers = %v, want %v", gotPeers, tc.wantPeers)
			}
			var own []Problem
			for _, p := range m.Problems {
				if p.Object.Kind != KindIPPool {
					own = append(own, p)
				}
			}
			if tc.problem == nil {
				if len(own) > 0 {
					t.Errorf("unexpected problems: %+v", own)
				}
				return
			}
			wantProblem(t, m, tc.problem.Object, tc.problem.Effect, tc.problem.Message)
		})
	}
}

func TestAdvertisementValues(t *testing.T) {
	m := Build(Input{
		Pools: []v1beta1.IPPool{pool("p", 0, "198.51.100.0/24")},
		Peers: []v1beta1.BGPPeer{peer("i", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.PeerASN = ptr(int64(64500)) }), peer("e", 0, "10.0.0.2")},
		BGPAdvertisements: []v1beta1.BGPAdvertisement{bgpAdv(func(s *v1beta1.BGPAdvertisementSpec) {
			s.Communities = []v1beta1.Community{"no-export", "65000:100"}
			s.LargeCommunities = []v1beta1.LargeCommunity{"65000:1:2"}
			s.LocalPref = ptr(int64(150))
		})},
	}, nil)
	a := m.BGPAdvertisements[0]
	if len(a.Communities) != 2 || a.Communities[0] != 65000<<16|100 || a.Communities[1] != 0xFFFFFF01 {
		t.Errorf("communities = %x", a.Communities)
	}
	if a.LargeCommunities[0] != (LargeCommunity{65000, 1, 2}) {
		t.Errorf("large communities = %v", a.LargeCommunities)
	}
	if a.AggregationLength != 32 || a.AggregationLengthV6 != 128 {
		t.Errorf("aggregation defaults = %d/%d", a.AggregationLength, a.AggregationLengthV6)
	}
	if lp := a.LocalPrefFor(m.Peers["i"]); lp == nil || *lp != 150 {
		t.Errorf("localPref for the iBGP peer = %v, want 150", lp)
	}
	if lp := a.LocalPrefFor(m.Peers["e"]); lp != nil {
		t.Errorf("localPref for the eBGP peer = %d, want none", *lp)
	}
	if got := m.BGPAdvertisementsFor("p"); len(got) != 1 {
		t.Errorf("BGPAdvertisementsFor(p) = %d advertisements, want 1", len(got))
	}
}
