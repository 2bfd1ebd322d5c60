package config

import (
	corev1 "k8s.io/api/core/v1"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// A bad edit must never drop what was working: the last valid version of
// the edited object keeps serving, and on a conflict the edited object is at
// fault even when it is the older one.
func TestBadEditKeepsLastValidVersion(t *testing.T) {
	first := Build(Input{Pools: []v1beta1.IPPool{pool("a", 0, "198.51.100.0/24"), pool("b", 1, "203.0.113.0/24")}}, nil)
	wantNoProblems(t, first)

	t.Run("invalid edit", func(t *testing.T) {
		m := Build(Input{Pools: []v1beta1.IPPool{pool("a", 0, "198.51.100.9/24"), pool("b", 1, "203.0.113.0/24")}}, first)
		wantProblem(t, m, Ref{KindIPPool, "a"}, KeptLastValid, "host bits")
		if m.Pools["a"] == nil || m.Pools["a"].Ranges[0].First.String() != "198.51.100.0" {
			t.Fatalf("pool a must keep its last valid addresses, got %+v", m.Pools["a"])
		}
		if c := m.ConditionFor(Ref{KindIPPool, "a"}); c.Ready {
			t.Errorf("condition must say the edit is not in use: %+v", c)
		}
	})
	t.Run("older pool edited into a conflict is the one at fault", func(t *testing.T) {
		m := Build(Input{Pools: []v1beta1.IPPool{pool("a", 0, "203.0.113.0/25"), pool("b", 1, "203.0.113.0/24")}}, first)
		wantProblem(t, m, Ref{KindIPPool, "a"}, KeptLastValid, `overlap IPPool "b"`)
		if !m.Pools["b"].Contains(mustAddr("203.0.113.1")) || !m.Pools["a"].Contains(mustAddr("198.51.100.1")) {
			t.Fatal("b must keep working and a must keep its last valid addresses")
		}
	})
	t.Run("invalid advertisement edit", func(t *testing.T) {
		adv := v1beta1.L2Advertisement{ObjectMeta: meta("l2", 0), Spec: v1beta1.L2AdvertisementSpec{Interfaces: []string{"eth0"}}}
		m1 := Build(Input{Pools: []v1beta1.IPPool{pool("a", 0, "198.51.100.0/24")}, L2Advertisements: []v1beta1.L2Advertisement{adv}}, nil)
		bad := adv
		bad.Spec.NodeSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Nope"}}}}
		m2 := Build(Input{Pools: []v1beta1.IPPool{pool("a", 0, "198.51.100.0/24")}, L2Advertisements: []v1beta1.L2Advertisement{bad}}, m1)
		wantProblem(t, m2, Ref{KindL2Advertisement, "l2"}, KeptLastValid, "nodeSelectors")
		if len(m2.L2Advertisements) != 1 || len(m2.L2Advertisements[0].Pools) != 1 || len(m2.L2Advertisements[0].NodeSelectors) != 0 {
			t.Fatalf("the last valid advertisement must keep serving: %+v", m2.L2Advertisements)
		}
	})
	t.Run("deleted password Secret keeps the session with its last password", func(t *testing.T) {
		p := peer("p", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.PasswordSecret = &v1beta1.SecretRef{Name: "pw"} })
		m1 := Build(Input{Peers: []v1beta1.BGPPeer{p}, Secrets: []corev1.Secret{secret("pw", map[string]string{"password": "old"})}}, nil)
		m2 := Build(Input{Peers: []v1beta1.BGPPeer{p}}, m1)
		wantProblem(t, m2, Ref{KindBGPPeer, "p"}, KeptLastValid, "does not exist")
		if m2.Peers["p"] == nil || m2.Peers["p"].Password != "old" {
			t.Fatalf("peer must keep its last valid password: %+v", m2.Peers["p"])
		}
	})
}
