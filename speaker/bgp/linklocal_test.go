package bgp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/heraldlb/herald/speaker/netif"
)

func TestPickRouter(t *testing.T) {
	r1, r2 := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2")
	own := netip.MustParseAddr("fe80::99")
	for _, c := range []struct {
		name      string
		neighbors []neighbor
		want      netip.Addr
		err       string
	}{
		{"one router", []neighbor{{addr: r1, router: true}}, r1.WithZone("un0"), ""},
		{"hosts and global routers do not count", []neighbor{
			{addr: r1, router: true},
			{addr: r2},
			{addr: netip.MustParseAddr("2001:db8::1"), router: true},
		}, r1.WithZone("un0"), ""},
		{"a failed entry does not count", []neighbor{{addr: r1, router: true}, {addr: r2, router: true, failed: true}}, r1.WithZone("un0"), ""},
		{"the node's own looped-back advertisement does not count", []neighbor{{addr: own, router: true}, {addr: r1, router: true}}, r1.WithZone("un0"), ""},
		{"the same router twice is one", []neighbor{{addr: r1, router: true}, {addr: r1.WithZone("un0"), router: true}}, r1.WithZone("un0"), ""},
		{"none yet", []neighbor{{addr: r2}}, netip.Addr{}, "no IPv6 router seen on un0 yet"},
		{"two routers", []neighbor{{addr: r2, router: true}, {addr: r1, router: true}}, netip.Addr{}, "2 IPv6 routers on un0 ([fe80::1 fe80::2])"},
	} {
		got, err := pickRouter("un0", c.neighbors, []netip.Addr{own})
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: got %v, %v; want %v, %q", c.name, got, err, c.want, c.err)
		}
	}
}

func TestValidateInterfacePeers(t *testing.T) {
	base := Peer{Name: "p", Interface: "un0", MyASN: 1, DynamicASN: DynamicExternal}
	mod := func(f func(*Peer)) Peer { p := base; f(&p); return p }
	ll := netip.MustParseAddr("fe80::1")
	for name, c := range map[string]struct {
		p   Peer
		err string
	}{
		"unnumbered":                     {base, ""},
		"link-local address":             {mod(func(p *Peer) { p.Address = ll }), ""},
		"zone of the interface":          {mod(func(p *Peer) { p.Address = ll.WithZone("un0") }), ""},
		"zone of another interface":      {mod(func(p *Peer) { p.Address = ll.WithZone("eth1") }), "scoped to another interface"},
		"global address on an interface": {mod(func(p *Peer) { p.Address = netip.MustParseAddr("2001:db8::1") }), "not an IPv6 link-local address"},
		"IPv4 on an interface":           {mod(func(p *Peer) { p.Address = netip.MustParseAddr("10.0.0.1") }), "not an IPv6 link-local address"},
		"source address":                 {mod(func(p *Peer) { p.SourceAddress = netip.MustParseAddr("fe80::2") }), "source address does not apply"},
		"multihop":                       {mod(func(p *Peer) { p.EBGPMultiHop = true }), "multihop does not apply"},
		"link-local without interface":   {mod(func(p *Peer) { p.Interface, p.Address = "", ll }), "needs an interface"},
		"no interface, no address":       {mod(func(p *Peer) { p.Interface = "" }), "no address"},
		"fixed and dynamic AS":           {mod(func(p *Peer) { p.PeerASN = 2 }), "both set"},
		"no AS at all":                   {mod(func(p *Peer) { p.DynamicASN = "" }), "must not be 0"},
		"unknown dynamic AS":             {mod(func(p *Peer) { p.DynamicASN = "any" }), "neither internal nor external"},
	} {
		err := c.p.validate()
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %v, want %q", name, err, c.err)
		}
	}
}

func TestPickLinkNextHop(t *testing.T) {
	ifaces := []netif.Interface{
		ifaceWith("eth0", "10.0.0.2/24"),
		ifaceWith("un0", "fe80::2/64"),
		ifaceWith("un1", "169.254.0.2/16", "10.1.0.2/24", "fe80::3/64"),
	}
	for ifname, want := range map[string]netip.Addr{
		"un0":  netip.IPv6Unspecified(), // RFC 8950: the session's own link-local address
		"un1":  netip.MustParseAddr("10.1.0.2"),
		"eth0": netip.MustParseAddr("10.0.0.2"),
		"gone": netip.IPv6Unspecified(),
	} {
		if got := pickLinkNextHop(ifname, ifaces); got != want {
			t.Errorf("%s: %v, want %v", ifname, got, want)
		}
	}
}

// TestResolvePeers: numbered link-local peers get their zone, unnumbered
// ones the router found, a running session keeps its address while up, and
// with no router a peer waits unless it runs already.
func TestResolvePeers(t *testing.T) {
	r1, r2 := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2")
	table := map[string][]neighbor{"un0": {{addr: r1, router: true}}, "un1": nil}
	e := newInstance(New(Options{}))
	e.ll.readNeighbors = func(ifname string) ([]neighbor, []netip.Addr, error) {
		n, ok := table[ifname]
		if !ok {
			return nil, nil, errors.New("no such interface")
		}
		return n, nil, nil
	}
	peer := func(name, ifname string, addr netip.Addr) Peer {
		return Peer{Name: name, Interface: ifname, Address: addr, MyASN: 1, DynamicASN: DynamicExternal}
	}
	numbered := peer("numbered", "un1", r2)
	plain := Peer{Name: "plain", Address: netip.MustParseAddr("10.0.0.1"), MyASN: 1, PeerASN: 2}
	desired := []Peer{peer("a", "un0", netip.Addr{}), peer("b", "un1", netip.Addr{}), peer("c", "gone", netip.Addr{}), numbered, plain}

	got, waiting := e.resolvePeers(desired)
	addrs := map[string]netip.Addr{}
	for _, p := range got {
		addrs[p.Name] = p.Address
	}
	want := map[string]netip.Addr{"a": r1.WithZone("un0"), "numbered": r2.WithZone("un1"), "plain": plain.Address}
	if len(addrs) != len(want) || addrs["a"] != want["a"] || addrs["numbered"] != want["numbered"] || addrs["plain"] != want["plain"] {
		t.Fatalf("resolved %v, want %v", addrs, want)
	}
	if len(waiting) != 2 || !strings.Contains(waiting["b"].Error(), "no IPv6 router seen on un1") || !strings.Contains(waiting["c"].Error(), "no such interface") {
		t.Fatalf("waiting %v", waiting)
	}

	// "a" runs with fe80::1 and the router is replaced by fe80::2.
	running := got[0]
	e.peers["a"] = &peerState{cfg: running}
	table["un0"] = []neighbor{{addr: r2, router: true}}
	e.status["a"] = PeerStatus{State: StateEstablished}
	if got, _ := e.resolvePeers(desired[:1]); got[0].Address != r1.WithZone("un0") {
		t.Errorf("an established session moved to %v", got[0].Address)
	}
	e.status["a"] = PeerStatus{State: StateActive}
	if got, _ := e.resolvePeers(desired[:1]); got[0].Address != r2.WithZone("un0") {
		t.Errorf("a session that is down kept %v; want the new router", got[0].Address)
	}
	table["un0"] = nil
	if got, w := e.resolvePeers(desired[:1]); len(got) != 1 || got[0].Address != r1.WithZone("un0") || len(w) != 0 {
		t.Errorf("with no router a running peer keeps its address: %v %v", got, w)
	}
}

func TestAPIPeerPassiveAndDynamic(t *testing.T) {
	p := Peer{Name: "u", Interface: "un0", Address: netip.MustParseAddr("fe80::1%un0"), MyASN: 64513, DynamicASN: DynamicExternal, Passive: true}
	a := apiPeer(p, "herald-1", false)
	if a.GetConf().GetNeighborAddress() != "fe80::1%un0" || a.GetConf().GetPeerAsn() != 0 || !a.GetTransport().GetPassiveMode() {
		t.Errorf("unnumbered passive external: %v %v", a.GetConf(), a.GetTransport())
	}
	p.DynamicASN = DynamicInternal
	if asn := apiPeer(p, "herald-1", false).GetConf().GetPeerAsn(); asn != 64513 {
		t.Errorf("dynamic internal: peer AS %d, want myASN", asn)
	}
	if listenPort(0) != -1 || listenPort(1790) != 1790 {
		t.Errorf("listen ports %d %d", listenPort(0), listenPort(1790))
	}
}
