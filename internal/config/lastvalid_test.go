package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

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

// persist records in each pool's status what the controller writes there:
// the spec in use (through JSON, as the API server stores it) and the Ready
// condition at the pool's generation.
func persist(t *testing.T, pools []v1beta1.IPPool, m *Model) {
	t.Helper()
	for i := range pools {
		p := &pools[i]
		var applied *v1beta1.IPPoolSpec
		if spec := m.AppliedPool(p.Name); spec != nil {
			b, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			applied = &v1beta1.IPPoolSpec{}
			if err := json.Unmarshal(b, applied); err != nil {
				t.Fatal(err)
			}
		}
		p.Status.LastApplied = applied
		c := m.ConditionFor(Ref{KindIPPool, p.Name})
		status := metav1.ConditionTrue
		if !c.Ready {
			status = metav1.ConditionFalse
		}
		p.Status.Conditions = []metav1.Condition{{Type: v1beta1.ConditionReady, Status: status, Reason: c.Reason, ObservedGeneration: p.Generation}}
	}
}

// What the last model used survives a restart: a Build without a previous
// model, from objects whose status the controller wrote, decides every
// conflict as the running process did. Without the status the older pool
// would win after the restart and every address of the younger one would
// move or go silent.
func TestLastValidSurvivesRestart(t *testing.T) {
	a := pool("a", 0, "198.51.100.0/24")
	a.Spec.AllocateTo = &v1beta1.AllocateTo{Namespaces: []string{}, NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{}}}}
	pools := []v1beta1.IPPool{a, pool("b", 1, "203.0.113.0/24")}
	first := Build(Input{Pools: pools}, nil)
	wantNoProblems(t, first)
	persist(t, pools, first)

	// The older pool a is edited into b's addresses: a is at fault and keeps
	// its last valid addresses; b keeps serving.
	pools[0].Spec.Addresses = []v1beta1.AddressRange{"203.0.113.0/25"}
	pools[0].Generation = 2
	running := Build(Input{Pools: pools}, first)
	wantProblem(t, running, Ref{KindIPPool, "a"}, KeptLastValid, `overlap IPPool "b"`)
	persist(t, pools, running)
	if got := pools[0].Status.LastApplied.Addresses; len(got) != 1 || got[0] != "198.51.100.0/24" {
		t.Fatalf("a's status records %v, want its last valid addresses", got)
	}

	restarted := Build(Input{Pools: pools}, nil)
	for _, m := range []*Model{running, restarted} {
		if m.PoolFor(mustAddr("203.0.113.1")) == nil || m.PoolFor(mustAddr("203.0.113.1")).Name != "b" ||
			m.PoolFor(mustAddr("198.51.100.1")) == nil || m.PoolFor(mustAddr("198.51.100.1")).Name != "a" {
			t.Fatalf("b must keep 203.0.113.0/24 and a its last valid 198.51.100.0/24: pools %+v", m.Pools)
		}
	}
	if !reflect.DeepEqual(restarted.Problems, running.Problems) {
		t.Fatalf("problems after the restart %+v, before %+v", restarted.Problems, running.Problems)
	}
	if c := restarted.ConditionFor(Ref{KindIPPool, "a"}); c.Ready || !strings.Contains(c.Message, "last valid version is still in use") {
		t.Fatalf("the bad edit must stay reported after the restart: %+v", c)
	}
	// A second restart in a row changes nothing either.
	persist(t, pools, restarted)
	if again := Build(Input{Pools: pools}, nil); !reflect.DeepEqual(again.Problems, running.Problems) || !reflect.DeepEqual(again.SortedPools(), running.SortedPools()) {
		t.Fatalf("second restart: problems %+v pools %+v", again.Problems, again.SortedPools())
	}

	// The fix of the edit is taken at once, restart or not.
	pools[0].Spec.Addresses = []v1beta1.AddressRange{"198.51.100.0/25"}
	pools[0].Generation = 3
	fixed := Build(Input{Pools: pools}, nil)
	wantNoProblems(t, fixed)
	if got := fixed.AppliedPool("a").Addresses; len(got) != 1 || got[0] != "198.51.100.0/25" {
		t.Fatalf("fixed pool applies %v", got)
	}
}

// The peer that won a conflict keeps winning after a restart: its status
// says its current generation is in use, the loser's says it is not.
func TestPeerConflictWinnerSurvivesRestart(t *testing.T) {
	p1, p2 := peer("p1", 0, "10.0.0.1"), peer("p2", 1, "10.0.0.2")
	first := Build(Input{Peers: []v1beta1.BGPPeer{p1, p2}}, nil)
	wantNoProblems(t, first)
	p1.Spec.PeerAddress, p1.Generation = "10.0.0.2", 2
	running := Build(Input{Peers: []v1beta1.BGPPeer{p1, p2}}, first)
	wantProblem(t, running, Ref{KindBGPPeer, "p1"}, Skipped, `through BGPPeer "p2"`)
	status := func(p *v1beta1.BGPPeer) {
		c := running.ConditionFor(Ref{KindBGPPeer, p.Name})
		s := metav1.ConditionTrue
		if !c.Ready {
			s = metav1.ConditionFalse
		}
		p.Status.Conditions = []metav1.Condition{{Type: v1beta1.ConditionReady, Status: s, Reason: c.Reason, ObservedGeneration: p.Generation}}
	}
	status(&p1)
	status(&p2)
	restarted := Build(Input{Peers: []v1beta1.BGPPeer{p1, p2}}, nil)
	if restarted.Peers["p2"] == nil || restarted.Peers["p1"] != nil {
		t.Fatalf("after a restart p2 must still win: peers %v", restarted.Peers)
	}
}
