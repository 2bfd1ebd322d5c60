package config

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// unnumbered is a BGPPeer on an interface with no address and a dynamic AS.
func unnumbered(name string, age int, ifname string, mutate ...func(*v1beta1.BGPPeerSpec)) v1beta1.BGPPeer {
	return peer(name, age, "", append([]func(*v1beta1.BGPPeerSpec){func(s *v1beta1.BGPPeerSpec) {
		s.PeerASN, s.DynamicASN, s.Interface = nil, v1beta1.DynamicASNExternal, ifname
	}}, mutate...)...)
}

func passive(port int32) func(*v1beta1.BGPPeerSpec) {
	return func(s *v1beta1.BGPPeerSpec) {
		s.Passive = true
		if port != 0 {
			s.ListenPort = ptr(port)
		}
	}
}

// TestPeeringVariants: interface, passive, dynamic external and graceful
// restart time, each object on its own and the clashes between objects.
func TestPeeringVariants(t *testing.T) {
	rack := func(r string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{"rack": r}}
	}
	nodes := map[string]map[string]string{"n1": {"rack": "a"}, "n2": {"rack": "b"}}
	cases := []peerCase{
		{name: "unnumbered", in: Input{Peers: []v1beta1.BGPPeer{unnumbered("u", 0, "eth1")}}, wantPeers: []string{"u"}},
		{
			name:      "link-local address on an interface",
			in:        Input{Peers: []v1beta1.BGPPeer{peer("ll", 0, "fe80::1", func(s *v1beta1.BGPPeerSpec) { s.Interface = "eth1" })}},
			wantPeers: []string{"ll"},
		},
		{
			name:    "link-local address without interface",
			in:      Input{Peers: []v1beta1.BGPPeer{peer("ll", 0, "fe80::1")}},
			problem: &Problem{Object: Ref{KindBGPPeer, "ll"}, Effect: Skipped, Message: "a link-local address needs interface"},
		},
		{
			name:    "global address on an interface",
			in:      Input{Peers: []v1beta1.BGPPeer{peer("g", 0, "2001:db8::1", func(s *v1beta1.BGPPeerSpec) { s.Interface = "eth1" })}},
			problem: &Problem{Object: Ref{KindBGPPeer, "g"}, Effect: Skipped, Message: "must be an IPv6 link-local address"},
		},
		{
			name:    "neither address nor interface",
			in:      Input{Peers: []v1beta1.BGPPeer{peer("n", 0, "")}},
			problem: &Problem{Object: Ref{KindBGPPeer, "n"}, Effect: Skipped, Message: "set peerAddress, interface, or both"},
		},
		{
			name:    "multihop on an interface",
			in:      Input{Peers: []v1beta1.BGPPeer{unnumbered("u", 0, "eth1", func(s *v1beta1.BGPPeerSpec) { s.EBGPMultiHop = true })}},
			problem: &Problem{Object: Ref{KindBGPPeer, "u"}, Effect: Skipped, Message: "ebgpMultiHop does not apply to an interface session"},
		},
		{
			name: "two unnumbered peers on one interface of one node",
			in: Input{Nodes: nodes, Peers: []v1beta1.BGPPeer{
				unnumbered("old", 1, "eth1"),
				unnumbered("new", 2, "eth1", func(s *v1beta1.BGPPeerSpec) { s.NodeSelectors = []metav1.LabelSelector{rack("a")} }),
			}},
			wantPeers: []string{"old"},
			problem:   &Problem{Object: Ref{KindBGPPeer, "new"}, Effect: Skipped, Reason: v1beta1.ReasonConflict, Message: `node n1 already peers with the router on eth1 through BGPPeer "old"`},
		},
		{
			name:      "unnumbered peers on two interfaces",
			in:        Input{Nodes: nodes, Peers: []v1beta1.BGPPeer{unnumbered("a", 1, "eth1"), unnumbered("b", 2, "eth2")}},
			wantPeers: []string{"a", "b"},
		},
		{
			name: "two passive peers asking one node for two ports",
			in: Input{Nodes: nodes, Peers: []v1beta1.BGPPeer{
				peer("old", 1, "10.0.0.1", passive(1790)),
				peer("new", 2, "10.0.0.2", passive(0), func(s *v1beta1.BGPPeerSpec) { s.NodeSelectors = []metav1.LabelSelector{rack("b")} }),
			}},
			wantPeers: []string{"old"},
			problem:   &Problem{Object: Ref{KindBGPPeer, "new"}, Effect: Skipped, Reason: v1beta1.ReasonConflict, Message: `listenPort: node n2 already listens on port 1790 for BGPPeer "old"`},
		},
		{
			name: "passive peers on one port, or on different nodes",
			in: Input{Nodes: nodes, Peers: []v1beta1.BGPPeer{
				peer("a", 1, "10.0.0.1", passive(1790)),
				peer("b", 2, "10.0.0.2", passive(1790)),
				peer("c", 3, "10.0.0.3", passive(0), func(s *v1beta1.BGPPeerSpec) { s.NodeSelectors = []metav1.LabelSelector{rack("zz")} }),
				peer("d", 4, "10.0.0.4"),
			}},
			wantPeers: []string{"a", "b", "c", "d"},
		},
		{
			name:    "listenPort without passive",
			in:      Input{Peers: []v1beta1.BGPPeer{peer("p", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.ListenPort = ptr(int32(1790)) })}},
			problem: &Problem{Object: Ref{KindBGPPeer, "p"}, Effect: Skipped, Message: "listenPort applies to passive sessions only"},
		},
		{
			name: "graceful restart time out of range",
			in: Input{Peers: []v1beta1.BGPPeer{peer("p", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) {
				s.GracefulRestart, s.GracefulRestartTime = true, &metav1.Duration{Duration: 2 * time.Hour}
			})}},
			problem: &Problem{Object: Ref{KindBGPPeer, "p"}, Effect: Skipped, Message: "gracefulRestartTime: 2h0m0s must be between 1s and 4095s"},
		},
		{
			name:    "graceful restart time without graceful restart",
			in:      Input{Peers: []v1beta1.BGPPeer{peer("p", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.GracefulRestartTime = &metav1.Duration{Duration: time.Minute} })}},
			problem: &Problem{Object: Ref{KindBGPPeer, "p"}, Effect: Skipped, Message: "gracefulRestartTime needs gracefulRestart: true"},
		},
	}
	runPeerCases(t, cases)
}

func TestPeeringResolvedValues(t *testing.T) {
	m := Build(Input{Peers: []v1beta1.BGPPeer{
		unnumbered("u", 0, "eth1", passive(0)),
		peer("ll", 0, "fe80::1", func(s *v1beta1.BGPPeerSpec) { s.Interface = "eth2" }),
		peer("gr", 0, "10.0.0.1", func(s *v1beta1.BGPPeerSpec) { s.GracefulRestart = true }),
		peer("gr30", 0, "10.0.0.2", func(s *v1beta1.BGPPeerSpec) {
			s.GracefulRestart, s.GracefulRestartTime = true, &metav1.Duration{Duration: 30 * time.Second}
		}),
		peer("p", 0, "10.0.0.3", passive(1790), func(s *v1beta1.BGPPeerSpec) {
			s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "a"}}}
		}),
	}}, nil)
	wantNoProblems(t, m)
	u, ll := m.Peers["u"], m.Peers["ll"]
	switch {
	case u.Address.IsValid() || u.Interface != "eth1" || u.DynamicASN != "external" || u.PeerASN != 0 || !u.Passive || u.ListenPort != 179:
		t.Errorf("unnumbered passive peer = %+v", u)
	case u.IBGP():
		t.Error("dynamicASN external is eBGP")
	case ll.Address != mustAddr("fe80::1") || ll.Interface != "eth2":
		t.Errorf("link-local peer = %+v", ll)
	case m.Peers["gr"].GracefulRestartTime != 120*time.Second || m.Peers["gr30"].GracefulRestartTime != 30*time.Second:
		t.Errorf("restart times %v %v, want 120s (default) and 30s", m.Peers["gr"].GracefulRestartTime, m.Peers["gr30"].GracefulRestartTime)
	case m.Peers["p"].ListenPort != 1790 || m.Peers["gr"].ListenPort != 0:
		t.Errorf("listen ports %d %d", m.Peers["p"].ListenPort, m.Peers["gr"].ListenPort)
	}
}
