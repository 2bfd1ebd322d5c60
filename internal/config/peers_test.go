package config

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

func peer(name string, age int, addr string, mutate ...func(*v1beta1.BGPPeerSpec)) v1beta1.BGPPeer {
	p := v1beta1.BGPPeer{ObjectMeta: meta(name, age), Spec: v1beta1.BGPPeerSpec{MyASN: 64500, PeerASN: ptr(int64(64501)), PeerAddress: addr}}
	for _, m := range mutate {
		m(&p.Spec)
	}
	return p
}

func secret(name string, data map[string]string) corev1.Secret {
	s := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v1beta1.Namespace}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func TestPeers(t *testing.T) {
	rack := func(r string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{"rack": r}}
	}
	nodes := map[string]map[string]string{"n1": {"rack": "a"}, "n2": {"rack": "b"}}
	cases := []peerCase{
		{
			name:      "defaults",
			in:        Input{Peers: []v1beta1.BGPPeer{peer("p", 0, "10.0.0.1")}},
			wantPeers: []string{"p"},
		},
		{
			name:      "password from Secret",
			in:        Input{Peers: []v1beta1.BGPPeer{peer("p", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.PasswordSecret = &v1beta1.SecretRef{Name: "pw"} })}, Secrets: []corev1.Secret{secret("pw", map[string]string{"password": "s3cret"})}},
			wantPeers: []string{"p"},
		},
		{
			name:    "password Secret missing",
			in:      Input{Peers: []v1beta1.BGPPeer{peer("p", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.PasswordSecret = &v1beta1.SecretRef{Name: "pw"} })}},
			problem: &Problem{Object: Ref{KindBGPPeer, "p"}, Effect: Skipped, Reason: v1beta1.ReasonMissing, Message: "Secret herald-system/pw does not exist"},
		},
		{
			name:    "password Secret without the key",
			in:      Input{Peers: []v1beta1.BGPPeer{peer("p", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.PasswordSecret = &v1beta1.SecretRef{Name: "pw"} })}, Secrets: []corev1.Secret{secret("pw", map[string]string{"pass": "x"})}},
			problem: &Problem{Object: Ref{KindBGPPeer, "p"}, Effect: Skipped, Reason: v1beta1.ReasonMissing, Message: `has no "password" key`},
		},
		{
			name:      "BFD profile missing: the session runs without BFD",
			in:        Input{Peers: []v1beta1.BGPPeer{peer("p", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.BFDProfile = "fast" })}},
			wantPeers: []string{"p"},
			problem:   &Problem{Object: Ref{KindBGPPeer, "p"}, Effect: Degraded, Reason: v1beta1.ReasonPartiallyApplied, Message: `BFDProfile "fast" does not exist`},
		},
		{
			name: "keepalive not below hold",
			in: Input{Peers: []v1beta1.BGPPeer{peer("p", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) {
				s.HoldTime = &metav1.Duration{Duration: 9 * time.Second}
				s.KeepaliveTime = &metav1.Duration{Duration: 9 * time.Second}
			})}},
			problem: &Problem{Object: Ref{KindBGPPeer, "p"}, Effect: Skipped, Message: "less than holdTime"},
		},
		{
			name:    "multihop on iBGP",
			in:      Input{Peers: []v1beta1.BGPPeer{peer("p", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.PeerASN = ptr(int64(64500)); s.EBGPMultiHop = true })}},
			problem: &Problem{Object: Ref{KindBGPPeer, "p"}, Effect: Skipped, Message: "eBGP peers only"},
		},
		{
			name: "same address for the same node twice: the newer peer is at fault",
			in: Input{Nodes: nodes, Peers: []v1beta1.BGPPeer{
				peer("old", 1, "10.0.0.1"),
				peer("new", 2, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.NodeSelectors = []metav1.LabelSelector{rack("b")} }),
			}},
			wantPeers: []string{"old"},
			problem:   &Problem{Object: Ref{KindBGPPeer, "new"}, Effect: Skipped, Reason: v1beta1.ReasonConflict, Message: `node n2 already peers with 10.0.0.1 through BGPPeer "old"`},
		},
		{
			name: "same address for different nodes is fine",
			in: Input{Nodes: nodes, Peers: []v1beta1.BGPPeer{
				peer("a", 1, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.NodeSelectors = []metav1.LabelSelector{rack("a")} }),
				peer("b", 2, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.NodeSelectors = []metav1.LabelSelector{rack("b")} }),
			}},
			wantPeers: []string{"a", "b"},
		},
	}
	runPeerCases(t, cases)
}

// peerCase is a config input and the peers and problem its model must have.
type peerCase struct {
	name      string
	in        Input
	wantPeers []string
	problem   *Problem
}

func runPeerCases(t *testing.T, cases []peerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := Build(tc.in, nil)
			var got []string
			for name := range m.Peers {
				got = append(got, name)
			}
			got = sortedKeys(setOf(got))
			if !equal(got, tc.wantPeers) && !(len(got) == 0 && len(tc.wantPeers) == 0) {
				t.Errorf("usable peers = %v, want %v", got, tc.wantPeers)
			}
			if tc.problem == nil {
				wantNoProblems(t, m)
				return
			}
			wantProblem(t, m, tc.problem.Object, tc.problem.Effect, tc.problem.Message)
			if tc.problem.Reason != "" {
				if c := m.ConditionFor(tc.problem.Object); c.Reason != tc.problem.Reason {
					t.Errorf("condition reason = %s, want %s", c.Reason, tc.problem.Reason)
				}
			}
		})
	}
}

func TestPeerResolvedValues(t *testing.T) {
	m := Build(Input{
		BFDProfiles: []v1beta1.BFDProfile{{ObjectMeta: meta("fast", 0), Spec: v1beta1.BFDProfileSpec{ReceiveInterval: ptr(int32(100)), TransmitInterval: ptr(int32(100))}}},
		Peers: []v1beta1.BGPPeer{peer("p", 0, "2001:db8::1", func(s *v1beta1.BGPPeerSpec) {
			s.BFDProfile = "fast"
			s.HoldTime = &metav1.Duration{Duration: 9 * time.Second}
			s.Password = "pw"
		}), peer("dyn", 0, "10.0.0.2", func(s *v1beta1.BGPPeerSpec) { s.PeerASN = nil; s.DynamicASN = "internal" })},
	}, nil)
	wantNoProblems(t, m)
	p := m.Peers["p"]
	if p.Port != 179 || p.HoldTime != 9*time.Second || p.KeepaliveTime != 3*time.Second || p.ConnectTime != 5*time.Second || p.Password != "pw" {
		t.Errorf("resolved peer = %+v", p)
	}
	if p.BFD == nil || p.BFD.ReceiveInterval != 100*time.Millisecond || p.BFD.DetectMultiplier != 3 {
		t.Errorf("BFD = %+v, want 100ms x 3", p.BFD)
	}
	if p.IBGP() || !m.Peers["dyn"].IBGP() {
		t.Error("p is eBGP, dyn (dynamicASN internal) is iBGP")
	}
}

func setOf(s []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return m
}
