package svcstatus

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

var (
	ip4  = netip.MustParseAddr("198.51.100.5")
	ip6  = netip.MustParseAddr("2001:db8::5")
	bgp4 = netip.MustParseAddr("203.0.113.7")
)

func TestBuild(t *testing.T) {
	l2 := func(ip string, ifaces ...string) v1beta1.AnnouncedAddress {
		return v1beta1.AnnouncedAddress{IP: ip, Protocol: v1beta1.ProtocolLayer2, Interfaces: ifaces}
	}
	bgp := func(ip, prefix string, peers ...string) v1beta1.AnnouncedAddress {
		return v1beta1.AnnouncedAddress{IP: ip, Protocol: v1beta1.ProtocolBGP, Prefix: prefix, Peers: peers}
	}
	all := map[string]bool{"frr": true, "bird": true}
	cases := []struct {
		name string
		in   Input
		want map[string][]v1beta1.AnnouncedAddress
	}{
		{name: "nothing", in: Input{}, want: map[string][]v1beta1.AnnouncedAddress{}},
		{
			name: "a shared Layer 2 address is listed under each Service",
			in:   Input{L2: []L2{{IP: ip4, Services: []string{"demo/a", "demo/b"}, Interfaces: []string{"eth1", "eth0"}}}},
			want: map[string][]v1beta1.AnnouncedAddress{"demo/a": {l2("198.51.100.5", "eth0", "eth1")}, "demo/b": {l2("198.51.100.5", "eth0", "eth1")}},
		},
		{
			name: "an owned address without an interface is not announced",
			in:   Input{L2: []L2{{IP: ip4, Services: []string{"demo/a"}}}},
			want: map[string][]v1beta1.AnnouncedAddress{},
		},
		{
			name: "BGP: only peers with an established session, sorted",
			in: Input{BGP: []BGP{{Service: "demo/a", IPs: []netip.Addr{bgp4}, Routes: []Route{
				{Peer: "frr", Prefix: netip.MustParsePrefix("203.0.113.7/32")},
				{Peer: "down", Prefix: netip.MustParsePrefix("203.0.113.7/32")},
				{Peer: "bird", Prefix: netip.MustParsePrefix("203.0.113.7/32")},
			}}}, Sending: all},
			want: map[string][]v1beta1.AnnouncedAddress{"demo/a": {bgp("203.0.113.7", "203.0.113.7/32", "bird", "frr")}},
		},
		{
			name: "BGP with no session up: not announced",
			in:   Input{BGP: []BGP{{Service: "demo/a", IPs: []netip.Addr{bgp4}, Routes: []Route{{Peer: "frr", Prefix: netip.MustParsePrefix("203.0.113.7/32")}}}}},
			want: map[string][]v1beta1.AnnouncedAddress{},
		},
		{
			name: "an aggregate is matched to the addresses it covers, one entry per prefix",
			in: Input{BGP: []BGP{{Service: "demo/a", IPs: []netip.Addr{bgp4, ip6}, Routes: []Route{
				{Peer: "frr", Prefix: netip.MustParsePrefix("203.0.113.0/25")},
				{Peer: "bird", Prefix: netip.MustParsePrefix("203.0.113.7/32")},
				{Peer: "frr", Prefix: netip.MustParsePrefix("2001:db8::/120")},
			}}}, Sending: all},
			want: map[string][]v1beta1.AnnouncedAddress{"demo/a": {
				bgp("203.0.113.7", "203.0.113.0/25", "frr"), bgp("203.0.113.7", "203.0.113.7/32", "bird"), bgp("2001:db8::5", "2001:db8::/120", "frr"),
			}},
		},
		{
			name: "one Service both ways: sorted by IP, Layer 2 first",
			in: Input{
				L2:      []L2{{IP: ip6, Services: []string{"demo/a"}, Interfaces: []string{"eth0"}}, {IP: bgp4, Services: []string{"demo/a"}, Interfaces: []string{"eth0"}}},
				BGP:     []BGP{{Service: "demo/a", IPs: []netip.Addr{bgp4}, Routes: []Route{{Peer: "frr", Prefix: netip.MustParsePrefix("203.0.113.7/32")}}}},
				Sending: all,
			},
			want: map[string][]v1beta1.AnnouncedAddress{"demo/a": {l2("203.0.113.7", "eth0"), bgp("203.0.113.7", "203.0.113.7/32", "frr"), l2("2001:db8::5", "eth0")}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Build(c.in)
			want := map[string]v1beta1.ServiceAnnouncement{}
			for svc, a := range c.want {
				want[svc] = v1beta1.ServiceAnnouncement{Service: svc, Addresses: a}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func keysN(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s/s%05d", prefix, i))
	}
	return out
}

func TestPlace(t *testing.T) {
	cases := []struct {
		name     string
		prev     map[string]int
		services []string
		max      int
		want     map[string]int
	}{
		{name: "first Services fill slice 0, then 1", services: []string{"d", "a", "c", "b", "e"}, max: 2,
			want: map[string]int{"a": 0, "b": 0, "c": 1, "d": 1, "e": 2}},
		{name: "Services keep their slice; a new one fills the hole", prev: map[string]int{"a": 0, "b": 0, "c": 1, "d": 1}, services: []string{"a", "c", "d", "x"}, max: 2,
			want: map[string]int{"a": 0, "x": 0, "c": 1, "d": 1}},
		{name: "no room: a new slice at the lowest free index", prev: map[string]int{"a": 0, "b": 0, "c": 2, "d": 2}, services: []string{"a", "b", "c", "d", "x", "y", "z"}, max: 2,
			want: map[string]int{"a": 0, "b": 0, "x": 1, "y": 1, "c": 2, "d": 2, "z": 3}},
		{name: "every Service gone", prev: map[string]int{"a": 0, "b": 1}, services: nil, max: 2, want: map[string]int{}},
		{name: "less than half full on average: packed again", prev: map[string]int{"a": 0, "b": 1, "c": 2, "d": 3}, services: []string{"a", "b", "c", "d"}, max: 4,
			want: map[string]int{"a": 0, "b": 0, "c": 0, "d": 0}},
		{name: "half full: left alone", prev: map[string]int{"a": 0, "b": 1}, services: []string{"a", "b"}, max: 2,
			want: map[string]int{"a": 0, "b": 1}},
		{name: "duplicates count once", services: []string{"a", "a", "b"}, max: 1, want: map[string]int{"a": 0, "b": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if d := cmp.Diff(c.want, Place(c.prev, c.services, c.max)); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

// changedSlices counts the slices whose Services differ between two placements.
func changedSlices(a, b map[string]int) int {
	ga, gb := Group(a), Group(b)
	n := 0
	for i := range ga {
		if !slices.Equal(ga[i], gb[i]) {
			n++
		}
	}
	for i := range gb {
		if _, ok := ga[i]; !ok {
			n++
		}
	}
	return n
}

// The write cost of a failover: a node that announced 3,334 of 10,000
// Services and takes over half of a failed node's 3,333 rewrites a few
// slices, not one object per Service; giving them back costs as few.
func TestPlaceFailoverCost(t *testing.T) {
	const perSlice = v1beta1.MaxServicesPerSlice
	mine := keysN("a", 0, 3334)
	gained := keysN("b", 0, 1667)
	before := Place(nil, mine, perSlice)
	after := Place(before, append(slices.Clone(mine), gained...), perSlice)
	// 3,334 fill 14 slices (the last with 84); 1,667 more fill it and 6 new ones.
	if n := changedSlices(before, after); n > 1+(1667+perSlice-1)/perSlice {
		t.Errorf("taking over 1,667 Services changed %d slices", n)
	}
	for _, s := range mine {
		if before[s] != after[s] {
			t.Fatalf("%s moved from slice %d to %d", s, before[s], after[s])
		}
	}
	back := Place(after, mine, perSlice)
	if n := changedSlices(after, back); n > 1+(1667+perSlice-1)/perSlice {
		t.Errorf("giving 1,667 Services back changed %d slices", n)
	}
	if len(Group(back)) != len(Group(before)) {
		t.Errorf("after giving them back: %d slices, before %d", len(Group(back)), len(Group(before)))
	}
}

func TestSliceNames(t *testing.T) {
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 70)
	for _, node := range []string{"node1", "worker-0", "node1.example.com", "10.0.0.1", long} {
		for _, i := range []int{0, 1, 2, 10, 123} {
			name := SliceName(node, i)
			if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
				t.Errorf("SliceName(%d chars, %d) = %q: %v", len(node), i, name, errs)
			}
			if got := SliceIndex(node, name); got != i {
				t.Errorf("SliceIndex(%q, %q) = %d, want %d", node, name, got, i)
			}
		}
	}
	if SliceName("node1", 0) != "node1" || SliceName("node1", 3) != "node1.3" {
		t.Errorf("names %q %q", SliceName("node1", 0), SliceName("node1", 3))
	}
	for _, name := range []string{"node2", "node1.x", "node1.0", "node1.-1", "node1-1", "node1.1.2"} {
		if i := SliceIndex("node1", name); i != -1 {
			t.Errorf("SliceIndex(node1, %q) = %d, want -1", name, i)
		}
	}
}

func TestSliceLabelsAndCounts(t *testing.T) {
	long := strings.Repeat("n", 63)
	s := Slice("node1", 2, []v1beta1.ServiceAnnouncement{
		{Service: "demo/both", Addresses: []v1beta1.AnnouncedAddress{{IP: "198.51.100.5", Protocol: v1beta1.ProtocolLayer2}, {IP: "198.51.100.5", Protocol: v1beta1.ProtocolBGP}}},
		{Service: long + "/" + long, Addresses: []v1beta1.AnnouncedAddress{{IP: "203.0.113.7", Protocol: v1beta1.ProtocolBGP}, {IP: "2001:db8::7", Protocol: v1beta1.ProtocolBGP}}},
		{Service: "demo/web", Addresses: []v1beta1.AnnouncedAddress{{IP: "198.51.100.6", Protocol: v1beta1.ProtocolLayer2}}},
	})
	if s.Name != "node1.2" || s.Node != "node1" || s.ServiceCount != 3 || s.Layer2Count != 2 || s.BGPCount != 3 {
		t.Errorf("slice %s node %s counts %d %d %d", s.Name, s.Node, s.ServiceCount, s.Layer2Count, s.BGPCount)
	}
	want := map[string]string{
		"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "speaker", v1beta1.LabelNode: "node1",
		"demo.svc.herald.dev/both": "Layer2-BGP", long + ".svc.herald.dev/" + long: "BGP", "demo.svc.herald.dev/web": "Layer2",
	}
	if d := cmp.Diff(want, s.Labels); d != "" {
		t.Errorf("labels (-want +got)\n%s", d)
	}
	for k, v := range s.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			t.Errorf("label key %q: %v", k, errs)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("label value %q: %v", v, errs)
		}
	}
	sel, err := labels.Parse("demo.svc.herald.dev/web")
	if err != nil || !sel.Matches(labels.Set(s.Labels)) {
		t.Errorf("the documented selector %v does not match (%v)", sel, err)
	}
}

func TestJanitor(t *testing.T) {
	cases := []struct {
		self   string
		live   []string
		quorum bool
		want   bool
	}{
		{"n1", []string{"n2", "n1", "n3"}, true, true},
		{"n2", []string{"n2", "n1", "n3"}, true, false},
		{"n1", []string{"n1", "n3"}, false, false}, // maybe the one cut off
		{"n1", nil, true, false},
	}
	for _, c := range cases {
		if got := Janitor(c.self, c.live, c.quorum); got != c.want {
			t.Errorf("Janitor(%s, %v, %v) = %v", c.self, c.live, c.quorum, got)
		}
	}
	sel, err := GoneSelector([]string{"n1", "n2"})
	if err != nil {
		t.Fatal(err)
	}
	for node, gone := range map[string]bool{"n1": false, "n2": false, "n3": true} {
		if got := sel.Matches(labels.Set{v1beta1.LabelNode: node}); got != gone {
			t.Errorf("%v matches %s: %v", sel, node, got)
		}
	}
	if sel.Matches(labels.Set{"other": "x"}) {
		t.Errorf("%v matches an object without the node label", sel)
	}
}

func BenchmarkBuild10000(b *testing.B) {
	var in Input
	in.Sending = map[string]bool{"frr": true, "bird": true}
	for i := range 10000 {
		ip := netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)})
		svc := fmt.Sprintf("demo/s%05d", i)
		if i%2 == 0 {
			in.L2 = append(in.L2, L2{IP: ip, Services: []string{svc}, Interfaces: []string{"eth0"}})
			continue
		}
		in.BGP = append(in.BGP, BGP{Service: svc, IPs: []netip.Addr{ip}, Routes: []Route{{"frr", netip.PrefixFrom(ip, 32)}, {"bird", netip.PrefixFrom(ip, 32)}}})
	}
	b.ResetTimer()
	for range b.N {
		if len(Build(in)) != 10000 {
			b.Fatal("wrong count")
		}
	}
}

func BenchmarkPlace10000(b *testing.B) {
	services := keysN("demo", 0, 10000)
	prev := Place(nil, services[:9000], v1beta1.MaxServicesPerSlice)
	b.ResetTimer()
	for range b.N {
		if p := Place(prev, services, v1beta1.MaxServicesPerSlice); len(p) != 10000 {
			b.Fatal("wrong count")
		}
	}
}
