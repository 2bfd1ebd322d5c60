package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/speaker/bgp"
)

// TestBGPDesiredPeering: interface, passive, dynamic external and restart
// time reach the BGP seam; an interface session gets no next-hop override
// (it uses its link's addresses), and the node listens on the passive
// peers' port.
func TestBGPDesiredPeering(t *testing.T) {
	unnumbered := &config.Peer{Name: "a-fabric", MyASN: 64500, DynamicASN: "external", Interface: "eth1", Port: 179,
		Passive: true, ListenPort: 1790, GracefulRestart: true, GracefulRestartTime: 30 * time.Second}
	other := &config.Peer{Name: "b-other", MyASN: 64500, PeerASN: 64512, Address: addr("10.0.0.1"), Port: 179, Passive: true, ListenPort: 179}
	node := NodeAddrs{IPv4: addr("10.0.0.11"), IPv6: addr("fd00:10::11")}
	d, issues := BGPDesired([]*config.Peer{unnumbered, other}, nil, node)
	p := d.Peers[0]
	if p.Interface != "eth1" || p.Address.IsValid() || p.DynamicASN != bgp.DynamicExternal || p.PeerASN != 0 ||
		!p.Passive || p.RestartTime != 30*time.Second || p.NextHopIPv4.IsValid() || p.NextHopIPv6.IsValid() {
		t.Errorf("unnumbered peer mapped to %+v", p)
	}
	if d.Peers[1].NextHopIPv4 != node.IPv4 {
		t.Errorf("numbered peer lost its next-hop override: %+v", d.Peers[1])
	}
	if d.ListenPort != 1790 || len(issues) != 1 || !strings.Contains(issues[0].Message, "listenPort 179 ignored: the node listens on 1790") {
		t.Errorf("listen port %d, issues %+v", d.ListenPort, issues)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("desired state refused by the seam: %v", err)
	}
}
