package config

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

func sel(kv ...string) v1beta1.LabelSelector {
	s := v1beta1.LabelSelector{MatchLabels: map[string]v1beta1.LabelValue{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = v1beta1.LabelValue(kv[i+1])
	}
	return s
}

func TestServiceSelection(t *testing.T) {
	gold := map[string]string{"tier": "gold"}
	plain := map[string]string{"app": "web"}
	inOrLegacy := v1beta1.LabelSelector{MatchExpressions: []v1beta1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []v1beta1.LabelValue{"gold", "silver"}}}}
	for _, tc := range []struct {
		name      string
		selectors []v1beta1.LabelSelector
		withdraw  bool
		labels    map[string]string
		ready     bool
		want      bool
	}{
		{"no selectors: every Service", nil, false, plain, true, true},
		{"no selectors: every Service, endpoints or not", nil, false, plain, false, true},
		{"matchLabels selects", []v1beta1.LabelSelector{sel("tier", "gold")}, false, gold, true, true},
		{"matchLabels leaves out", []v1beta1.LabelSelector{sel("tier", "gold")}, false, plain, true, false},
		{"selectors are ORed", []v1beta1.LabelSelector{sel("app", "db"), sel("app", "web")}, false, plain, true, true},
		{"matchExpressions In", []v1beta1.LabelSelector{inOrLegacy}, false, gold, true, true},
		{"an empty selector selects every Service", []v1beta1.LabelSelector{{}}, false, plain, true, true},
		{"withdrawWithoutEndpoints: announced with a ready endpoint", nil, true, plain, true, true},
		{"withdrawWithoutEndpoints: not announced without", nil, true, plain, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Build(Input{
				Pools:            []v1beta1.IPPool{pool("p", 0, "198.51.100.0/24")},
				L2Advertisements: []v1beta1.L2Advertisement{{ObjectMeta: meta("l2", 0), Spec: v1beta1.L2AdvertisementSpec{ServiceSelectors: tc.selectors, WithdrawWithoutEndpoints: tc.withdraw}}},
				BGPAdvertisements: []v1beta1.BGPAdvertisement{bgpAdv(func(s *v1beta1.BGPAdvertisementSpec) {
					s.ServiceSelectors, s.WithdrawWithoutEndpoints = tc.selectors, tc.withdraw
				})},
			}, nil)
			wantNoProblems(t, m)
			if got := m.L2Advertisements[0].Announces(tc.labels, tc.ready); got != tc.want {
				t.Errorf("L2Advertisement announces %v (ready %v): %v, want %v", tc.labels, tc.ready, got, tc.want)
			}
			if got := m.BGPAdvertisements[0].Announces(tc.labels, tc.ready); got != tc.want {
				t.Errorf("BGPAdvertisement announces %v (ready %v): %v, want %v", tc.labels, tc.ready, got, tc.want)
			}
		})
	}
}

// A selector written past the API server's validation (an operator it
// refuses) makes the advertisement invalid, named by field and index; its
// last valid version keeps serving.
func TestBadServiceSelectorKeepsTheLastValidVersion(t *testing.T) {
	good := v1beta1.L2Advertisement{ObjectMeta: meta("l2", 0), Spec: v1beta1.L2AdvertisementSpec{ServiceSelectors: []v1beta1.LabelSelector{sel("tier", "gold")}}}
	in := Input{Pools: []v1beta1.IPPool{pool("p", 0, "198.51.100.0/24")}, L2Advertisements: []v1beta1.L2Advertisement{good}}
	prev := Build(in, nil)
	bad := *good.DeepCopy()
	bad.Spec.ServiceSelectors = append(bad.Spec.ServiceSelectors, v1beta1.LabelSelector{MatchExpressions: []v1beta1.LabelSelectorRequirement{{Key: "tier", Operator: "Equals"}}})
	in.L2Advertisements = []v1beta1.L2Advertisement{bad}
	m := Build(in, prev)
	wantProblem(t, m, Ref{KindL2Advertisement, "l2"}, KeptLastValid, "serviceSelectors[1]")
	if len(m.L2Advertisements) != 1 || m.L2Advertisements[0].SelectsService(map[string]string{"tier": "silver"}) || !m.L2Advertisements[0].SelectsService(map[string]string{"tier": "gold"}) {
		t.Errorf("the last valid version (tier=gold) should serve: %+v", m.L2Advertisements)
	}
}

func TestPreferredNodeSelectors(t *testing.T) {
	nodes := map[string]map[string]string{
		"n1": {"zone": "a", "role": "lb"},
		"n2": {"zone": "b", "role": "lb"},
		"n3": {"zone": "c"},
	}
	for _, tc := range []struct {
		name      string
		spec      v1beta1.L2AdvertisementSpec
		want      map[string]int // node -> Preference
		problem   string
		noProblem bool
	}{
		{"no preferences: nobody preferred", v1beta1.L2AdvertisementSpec{},
			map[string]int{"n1": NotPreferred, "n2": NotPreferred, "n3": NotPreferred}, "", true},
		{"ordered: the first selector a node matches is its place",
			v1beta1.L2AdvertisementSpec{PreferredNodeSelectors: []v1beta1.LabelSelector{sel("zone", "b"), sel("role", "lb")}},
			map[string]int{"n1": 1, "n2": 0, "n3": NotPreferred}, "", true},
		{"a selector that matches no node is reported, the others still apply",
			v1beta1.L2AdvertisementSpec{PreferredNodeSelectors: []v1beta1.LabelSelector{sel("zone", "x"), sel("zone", "a")}},
			map[string]int{"n1": 1, "n2": NotPreferred, "n3": NotPreferred}, "preferredNodeSelectors[0] (zone=x) matches no node", false},
		{"a selector that matches only nodes the advertisement leaves out is reported",
			v1beta1.L2AdvertisementSpec{NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"role": "lb"}}}, PreferredNodeSelectors: []v1beta1.LabelSelector{sel("zone", "c")}},
			map[string]int{"n1": NotPreferred, "n2": NotPreferred}, "preferredNodeSelectors[0] (zone=c) matches only nodes that nodeSelectors leave out", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Build(Input{
				Pools:            []v1beta1.IPPool{pool("p", 0, "198.51.100.0/24")},
				L2Advertisements: []v1beta1.L2Advertisement{{ObjectMeta: meta("l2", 0), Spec: tc.spec}},
				Nodes:            nodes,
			}, nil)
			if tc.noProblem {
				wantNoProblems(t, m)
			} else {
				wantProblem(t, m, Ref{KindL2Advertisement, "l2"}, Degraded, tc.problem)
				if c := m.ConditionFor(Ref{KindL2Advertisement, "l2"}); !c.Ready || c.Reason != v1beta1.ReasonPartiallyApplied {
					t.Errorf("condition %+v, want Ready with reason PartiallyApplied", c)
				}
			}
			a := m.L2Advertisements[0]
			for n, want := range tc.want {
				if got := a.Preference(nodes[n]); got != want {
					t.Errorf("Preference(%s) = %d, want %d", n, got, want)
				}
			}
		})
	}
}
