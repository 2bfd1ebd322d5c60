package reconcile

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/speaker/advertise"
	"github.com/heraldlb/herald/speaker/bgp"
)

func TestBGPDesired(t *testing.T) {
	lp := uint32(200)
	frr := &config.Peer{Name: "frr", MyASN: 64500, PeerASN: 64512, Address: addr("10.0.0.1"), Port: 179,
		HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, ConnectTime: 5 * time.Second,
		BFD: &config.BFDProfile{Name: "fast", ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3}}
	ibgp := &config.Peer{Name: "ibgp", MyASN: 64500, DynamicASN: "internal", Address: addr("fd00:10::1"), Port: 179, HoldTime: 90 * time.Second, RouterID: addr("10.9.9.9")}
	other := &config.Peer{Name: "other", MyASN: 64500, PeerASN: 1, Address: addr("10.0.0.3"), Port: 179, HoldTime: 90 * time.Second, RouterID: addr("10.8.8.8")}
	routes := []advertise.Route{
		{Peer: "frr", Prefix: netip.MustParsePrefix("203.0.113.7/32"), Communities: []uint32{bgp.Community(64500, 100)}},
		{Peer: "ibgp", Prefix: netip.MustParsePrefix("2001:db8:200::7/128"), LocalPref: &lp, LargeCommunities: []config.LargeCommunity{{Global: 1, Local1: 2, Local2: 3}}},
		{Peer: "gone", Prefix: netip.MustParsePrefix("203.0.113.8/32")},
	}
	node := NodeAddrs{IPv4: addr("10.0.0.11"), IPv6: addr("fd00:10::11")}
	d, issues := BGPDesired([]*config.Peer{frr, ibgp, other}, routes, node)

	if d.RouterID != addr("10.9.9.9") {
		t.Errorf("router ID %s, want the first one a peer sets (ibgp's 10.9.9.9)", d.RouterID)
	}
	if len(d.Peers) != 3 {
		t.Fatalf("peers %+v, want frr, ibgp and other", d.Peers)
	}
	p := d.Peers[0]
	if p.Name != "frr" || p.PeerASN != 64512 || p.HoldTime != 9*time.Second || p.BFD == nil || p.BFD.ReceiveInterval != 100*time.Millisecond ||
		p.NextHopIPv4 != node.IPv4 || p.NextHopIPv6 != node.IPv6 {
		t.Errorf("frr mapped to %+v", p)
	}
	if d.Peers[1].PeerASN != 64500 {
		t.Errorf("dynamicASN internal: peer ASN %d, want myASN 64500", d.Peers[1].PeerASN)
	}
	if got := d.Paths["ibgp"]; len(got) != 1 || got[0].LocalPref == nil || *got[0].LocalPref != 200 || got[0].LargeCommunities[0] != (bgp.LargeCommunity{1, 2, 3}) {
		t.Errorf("ibgp paths %+v", got)
	}
	if _, ok := d.Paths["gone"]; ok {
		t.Error("paths for a peer that does not run")
	}
	var msgs []string
	for _, is := range issues {
		msgs = append(msgs, is.Peer+": "+is.Message)
	}
	joined := strings.Join(msgs, "\n")
	if len(issues) != 1 || !strings.Contains(joined, "other: routerID 10.8.8.8 ignored") {
		t.Errorf("issues:\n%s", joined)
	}

	// The status lists the desired sessions.
	var st v1beta1.SpeakerStatusStatus
	since := time.Unix(5000, 0)
	BGPReport(&st, d, []bgp.PeerStatus{
		{Name: "frr", Address: addr("10.0.0.1"), State: bgp.StateEstablished, Since: since, Advertised: 1, BFD: "up"},
		{Name: "other", State: bgp.StateActive, LastError: "connection refused"},
	}, issues)
	if st.Sessions != 3 || st.SessionsEstablished != 1 || len(st.BGPSessions) != 3 {
		t.Fatalf("status %+v", st)
	}
	s1, s3 := st.BGPSessions[0], st.BGPSessions[2]
	if s1.Peer != "frr" || s1.State != "Established" || s1.BFD != "Up" || s1.PrefixesSent != 1 || !s1.Since.Time.Equal(since) {
		t.Errorf("frr %+v", s1)
	}
	if s3.Peer != "other" || s3.State != "Active" || s3.Message != "connection refused" {
		t.Errorf("other %+v", s3)
	}
}

func TestRouterIDAndNodeAddrs(t *testing.T) {
	if got := routerIDFor(NodeAddrs{IPv6: addr("fd00:10::a:b0c")}); got != addr("0.10.11.12") {
		t.Errorf("IPv6-only router ID %s", got)
	}
	a := nodeAddrs(addr("10.0.0.99"), []netip.Addr{addr("fd00::1"), addr("10.0.0.11"), addr("fd00::2")})
	if a.IPv4 != addr("10.0.0.99") || a.IPv6 != addr("fd00::1") {
		t.Errorf("node addresses %+v", a)
	}
}

// Unnumbered and dynamic-AS sessions show what the router found.
func TestBGPReportShowsWhatTheRouterFound(t *testing.T) {
	d := bgp.Desired{Peers: []bgp.Peer{
		{Name: "tor", Interface: "eth0", DynamicASN: bgp.DynamicExternal},
		{Name: "waiting", Interface: "eth1"},
	}}
	var st v1beta1.SpeakerStatusStatus
	BGPReport(&st, d, []bgp.PeerStatus{
		{Name: "tor", Address: addr("fe80::1"), PeerASN: 65001, State: bgp.StateEstablished},
		{Name: "waiting", State: bgp.StateIdle},
	}, nil)
	if got := fmt.Sprintf("%s %d | %s %d", st.BGPSessions[0].Address, st.BGPSessions[0].PeerASN, st.BGPSessions[1].Address, st.BGPSessions[1].PeerASN); got != "fe80::1 65001 | %eth1 0" {
		t.Fatalf("sessions: %s", got)
	}
}
