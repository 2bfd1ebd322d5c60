package bgp

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestNormalizePaths(t *testing.T) {
	set := normalizePaths([]Path{
		{Prefix: pfx("198.51.100.7/24"), Communities: []uint32{3, 1, 3}},
		{Prefix: pfx("198.51.100.0/24"), Communities: []uint32{2}, LargeCommunities: []LargeCommunity{{2, 0, 0}, {1, 9, 9}, {1, 9, 9}}},
		{Prefix: netip.Prefix{}},
	})
	want := pathSet{pfx("198.51.100.0/24"): {Prefix: pfx("198.51.100.0/24"), Communities: []uint32{2}, LargeCommunities: []LargeCommunity{{1, 9, 9}, {2, 0, 0}}}}
	if !reflect.DeepEqual(set, want) {
		t.Fatalf("got %+v, want %+v (masked, last entry wins, sorted and deduped, invalid dropped)", set, want)
	}
}

func TestDiffPaths(t *testing.T) {
	a, b, c := pfx("198.51.100.1/32"), pfx("198.51.100.2/32"), pfx("2001:db8::1/128")
	old := normalizePaths([]Path{{Prefix: a}, {Prefix: b, Communities: []uint32{1}}, {Prefix: c, LocalPref: u32(100)}})
	tests := []struct {
		name         string
		new          []Path
		announce     []netip.Prefix
		withdraw     []netip.Prefix
		wantNoChange bool
	}{
		{name: "same paths, communities in another order", new: []Path{{Prefix: c, LocalPref: u32(100)}, {Prefix: b, Communities: []uint32{1, 1}}, {Prefix: a}}, wantNoChange: true},
		{name: "one withdrawn", new: []Path{{Prefix: a}, {Prefix: c, LocalPref: u32(100)}}, withdraw: []netip.Prefix{b}},
		{name: "attribute changed", new: []Path{{Prefix: a}, {Prefix: b, Communities: []uint32{2}}, {Prefix: c, LocalPref: u32(100)}}, announce: []netip.Prefix{b}},
		{name: "local pref dropped", new: []Path{{Prefix: a}, {Prefix: b, Communities: []uint32{1}}, {Prefix: c}}, announce: []netip.Prefix{c}},
		{name: "all gone", new: nil, withdraw: []netip.Prefix{a, b, c}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := diffPaths(old, normalizePaths(tc.new))
			if d.empty() != tc.wantNoChange {
				t.Fatalf("empty = %v, diff %+v", d.empty(), d)
			}
			var got []netip.Prefix
			for _, p := range d.announce {
				got = append(got, p.Prefix)
			}
			if !reflect.DeepEqual(got, tc.announce) || !reflect.DeepEqual(d.withdraw, tc.withdraw) {
				t.Fatalf("announce %v withdraw %v, want %v and %v", got, d.withdraw, tc.announce, tc.withdraw)
			}
		})
	}
}

func TestPlanPeers(t *testing.T) {
	base := Peer{Name: "a", Address: netip.MustParseAddr("10.0.0.1"), MyASN: 64513, PeerASN: 64512}
	withBFD := base
	withBFD.BFD = &BFD{DetectMultiplier: 3}
	sameBFD := base
	sameBFD.BFD = &BFD{DetectMultiplier: 3}
	otherNH := withBFD
	otherNH.NextHopIPv6 = netip.MustParseAddr("2001:db8::9")
	bad := base
	bad.Name, bad.MyASN = "bad", 0
	b := base
	b.Name, b.Address = "b", netip.MustParseAddr("10.0.0.2")

	tests := []struct {
		name                            string
		running                         map[string]Peer
		desired                         []Peer
		add, recreate, retarget, remove []string
		invalid                         []string
	}{
		{name: "new peer", desired: []Peer{base}, add: []string{"a"}},
		{name: "unchanged, BFD compared by value", running: map[string]Peer{"a": withBFD}, desired: []Peer{sameBFD}},
		{name: "BFD turned on re-creates", running: map[string]Peer{"a": base}, desired: []Peer{withBFD}, recreate: []string{"a"}},
		{name: "next hop only retargets", running: map[string]Peer{"a": withBFD}, desired: []Peer{otherNH}, retarget: []string{"a"}},
		{name: "removed and added", running: map[string]Peer{"a": base}, desired: []Peer{b}, add: []string{"b"}, remove: []string{"a"}},
		{name: "invalid peer is reported, others go on", desired: []Peer{bad, b}, add: []string{"b"}, invalid: []string{"bad"}},
		{name: "duplicate name: first wins", desired: []Peer{base, withBFD}, add: []string{"a"}},
	}
	names := func(ps []Peer) []string {
		var n []string
		for _, p := range ps {
			n = append(n, p.Name)
		}
		return n
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planPeers(tc.running, tc.desired)
			var invalid []string
			for n := range p.invalid {
				invalid = append(invalid, n)
			}
			got := [][]string{names(p.add), names(p.recreate), names(p.retarget), p.remove, invalid}
			want := [][]string{tc.add, tc.recreate, tc.retarget, tc.remove, tc.invalid}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("add/recreate/retarget/remove/invalid = %v, want %v", got, want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Peer{Name: "a", Address: netip.MustParseAddr("10.0.0.1"), MyASN: 1, PeerASN: 2}
	mod := func(f func(*Peer)) Peer { p := ok; f(&p); return p }
	cases := map[string]Desired{
		"no router ID":       {Peers: []Peer{ok}},
		"IPv6 router ID":     {RouterID: netip.MustParseAddr("2001:db8::1"), Peers: []Peer{ok}},
		"duplicate name":     {RouterID: routerID, Peers: []Peer{ok, ok}},
		"short hold time":    {RouterID: routerID, Peers: []Peer{mod(func(p *Peer) { p.HoldTime = time.Second })}},
		"long password":      {RouterID: routerID, Peers: []Peer{mod(func(p *Peer) { p.Password = string(make([]byte, 81)) })}},
		"mixed source":       {RouterID: routerID, Peers: []Peer{mod(func(p *Peer) { p.SourceAddress = netip.MustParseAddr("2001:db8::1") })}},
		"BFD multiplier":     {RouterID: routerID, Peers: []Peer{mod(func(p *Peer) { p.BFD = &BFD{DetectMultiplier: 300} })}},
		"invalid path":       {RouterID: routerID, Peers: []Peer{ok}, Paths: map[string][]Path{"a": {{}}}},
		"IPv4 next hop is 6": {RouterID: routerID, Peers: []Peer{mod(func(p *Peer) { p.NextHopIPv4 = netip.MustParseAddr("::1") })}},
	}
	for name, d := range cases {
		if err := d.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := (Desired{RouterID: routerID, Peers: []Peer{ok}, Paths: map[string][]Path{"a": {{Prefix: vip4}}}}).Validate(); err != nil {
		t.Errorf("valid desired: %v", err)
	}
	if err := (Desired{}).Validate(); err != nil {
		t.Errorf("empty desired: %v", err)
	}
}
