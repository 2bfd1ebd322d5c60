package routers

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

const birdProtocols = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-11-22 05:06:45.105  

node1      BGP        ---        up     2026-11-22 05:07:11.301  Established   
  BGP state:          Established
    Neighbor address: 10.1.0.1
    Neighbor AS:      64512
  Channel ipv4
    State:          UP
    Table:          master4
    Routes:         3 imported, 1 exported, 1 preferred
    BGP Next hop:   10.1.0.2
  Channel ipv6
    State:          UP
    Routes:         2 imported, 0 exported, 0 preferred

node2      BGP        ---        start  2026-11-22 05:06:46.044  Idle          Error: BFD session down
  BGP state:          Idle
    Neighbor address: 10.1.0.3
    Last error:       Error: BFD session down
`

func TestParseProtocols(t *testing.T) {
	p := parseProtocols(birdProtocols)
	n1 := p["node1"]
	if !n1.Established() || n1.Since != "2026-11-22 05:07:11.301" || n1.NeighborAddress != "10.1.0.1" {
		t.Fatalf("node1: %+v", n1)
	}
	if n1.Channels["ipv4"].Imported != 3 || n1.Channels["ipv4"].Exported != 1 || n1.Channels["ipv6"].Imported != 2 {
		t.Fatalf("node1 channels: %+v", n1.Channels)
	}
	n2 := p["node2"]
	if n2.Established() || n2.BGPState != "Idle" || n2.LastError != "Error: BFD session down" {
		t.Fatalf("node2: %+v", n2)
	}
	if p["device1"].State != "up" {
		t.Fatalf("device1: %+v", p["device1"])
	}
}

const birdRoutes = "BIRD 2.0.12 ready.\nTable master4:\n" +
	"198.51.100.7/32      unicast [node1 2026-11-22 05:07:11.400] * (100) [AS64513i]\n" +
	"\tvia 10.1.0.1 on eth0\n" +
	"\tType: BGP univ\n" +
	"\tBGP.as_path: 64513\n" +
	"\tBGP.next_hop: 10.1.0.1\n" +
	"\tBGP.local_pref: 100\n" +
	"\tBGP.community: (64512,100) (65000,7)\n" +
	"\tBGP.large_community: (64512, 1, 2)\n" +
	"                     unicast [node2 2026-11-22 05:07:12.000 from 10.1.0.3] (100) [AS64513i]\n" +
	"\tvia 10.1.0.3 on eth0\n" +
	"\tBGP.as_path: 64513\n"

func TestParseRoutes(t *testing.T) {
	rts := parseRoutes(birdRoutes, netip.MustParsePrefix("198.51.100.7/32"))
	if len(rts) != 2 {
		t.Fatalf("want 2 routes, got %+v", rts)
	}
	r := rts[0]
	if !r.Primary || r.Protocol != "node1" || r.Type != "unicast" || r.ASPath != "64513" {
		t.Fatalf("first route: %+v", r)
	}
	if len(r.Via) != 1 || r.Via[0].Addr != netip.MustParseAddr("10.1.0.1") || r.Via[0].Iface != "eth0" {
		t.Fatalf("via: %+v", r.Via)
	}
	if r.LocalPref == nil || *r.LocalPref != 100 {
		t.Fatalf("local pref: %v", r.LocalPref)
	}
	if strings.Join(r.Communities, " ") != "64512:100 65000:7" || strings.Join(r.LargeCommunities, " ") != "64512:1:2" {
		t.Fatalf("communities: %v %v", r.Communities, r.LargeCommunities)
	}
	if rts[1].Primary || rts[1].Protocol != "node2" || rts[1].Via[0].Addr != netip.MustParseAddr("10.1.0.3") {
		t.Fatalf("second route: %+v", rts[1])
	}
}

func TestFRRConfigRendersSessionsAndMultipath(t *testing.T) {
	c := FRRConfig{
		Name: "tor", ASN: 64512, RouterID: netip.MustParseAddr("10.0.0.1"),
		PeerGroups: []PeerGroup{{
			Name:           "NODES",
			SessionOptions: SessionOptions{RemoteAS: External, Password: "pw", BFDProfile: "fast", Keepalive: time.Second, Hold: 3 * time.Second},
			ListenRanges:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")},
		}},
		Neighbors: []Neighbor{{Address: netip.MustParseAddr("10.0.1.2"), SessionOptions: SessionOptions{RemoteAS: ASN(64512), EBGPMultihop: 4, RouteMapIn: "GSHUT"}}},
		Policy:    []string{"route-map GSHUT permit 10"},
	}
	conf := c.bgpdConf()
	for _, want := range []string{
		"router bgp 64512\n",
		" no bgp ebgp-requires-policy\n",
		" bgp bestpath as-path multipath-relax\n",
		" neighbor NODES peer-group\n",
		" neighbor NODES remote-as external\n",
		" neighbor NODES password pw\n",
		" neighbor NODES bfd profile fast\n",
		" neighbor NODES timers 1 3\n",
		" bgp listen range 10.0.0.0/24 peer-group NODES\n",
		" neighbor 10.0.1.2 remote-as 64512\n",
		" neighbor 10.0.1.2 ebgp-multihop 4\n",
		" address-family ipv6 unicast\n  neighbor NODES activate\n  neighbor 10.0.1.2 activate\n  neighbor 10.0.1.2 route-map GSHUT in\n  maximum-paths 16\n  maximum-paths ibgp 16\n",
		"route-map GSHUT permit 10\nrouter bgp 64512\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("bgpd.conf lacks %q:\n%s", want, conf)
		}
	}
}
