package takeover

import (
	"net/netip"
	"testing"
)

func TestBlockedOf(t *testing.T) {
	ips := addrs("198.51.100.1", "198.51.100.5", "198.51.100.9", "198.51.100.20", "2001:db8::1", "2001:db8::2")
	for _, tc := range []struct {
		name    string
		blocked []bool
		max     int
		want    string
	}{
		{"nothing", []bool{false, false, false, false, false, false}, 12, "{false []}"},
		{"runs across gaps of unknown addresses", []bool{true, true, false, true, true, true}, 12,
			"{false [{198.51.100.1 198.51.100.5} {198.51.100.20 198.51.100.20} {2001:db8::1 2001:db8::2}]}"},
		{"a run never spans two families", []bool{false, false, false, true, true, false}, 12,
			"{false [{198.51.100.20 198.51.100.20} {2001:db8::1 2001:db8::1}]}"},
		{"everything: All", []bool{true, true, true, true, true, true}, 12, "{true []}"},
		{"too many runs: All", []bool{true, false, true, false, true, false}, 2, "{true []}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := BlockedOf(ips, tc.blocked, tc.max)
			if got := sprint(b); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			for i, ip := range ips {
				if b.Has(ip) != tc.blocked[i] && !b.All {
					t.Errorf("Has(%s) = %v, want %v", ip, b.Has(ip), tc.blocked[i])
				}
			}
			data, err := b.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseBlocked(data)
			if err != nil || !back.Equal(b) {
				t.Fatalf("round trip: %s, %v", sprint(back), err)
			}
		})
	}
}

func sprint(b Blocked) string {
	s := "{false ["
	if b.All {
		s = "{true ["
	}
	for i, r := range b.Ranges {
		if i > 0 {
			s += " "
		}
		s += "{" + r.From.String() + " " + r.To.String() + "}"
	}
	return s + "]}"
}

func TestBlockedHasAndCovers(t *testing.T) {
	r := func(a, b string) Range { return Range{netip.MustParseAddr(a), netip.MustParseAddr(b)} }
	b := Blocked{Ranges: []Range{r("198.51.100.5", "198.51.100.9"), r("198.51.100.20", "198.51.100.20"), r("2001:db8::1", "2001:db8::5")}}
	for ip, want := range map[string]bool{
		"198.51.100.4": false, "198.51.100.5": true, "198.51.100.7": true, "198.51.100.9": true, "198.51.100.10": false,
		"198.51.100.20": true, "::ffff:198.51.100.20": true, "2001:db8::3": true, "2001:db8::6": false, "10.0.0.1": false,
	} {
		if got := b.Has(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Has(%s) = %v, want %v", ip, got, want)
		}
	}
	for _, tc := range []struct {
		name string
		b, o Blocked
		want bool
	}{
		{"all covers anything", Blocked{All: true}, b, true},
		{"nothing covers all", b, Blocked{All: true}, false},
		{"same", b, b, true},
		{"smaller inside", b, Blocked{Ranges: []Range{r("198.51.100.6", "198.51.100.8")}}, true},
		{"one address more", b, Blocked{Ranges: []Range{r("198.51.100.4", "198.51.100.8")}}, false},
		{"anything covers nothing", Blocked{}, Blocked{}, true},
		{"nothing does not cover a range", Blocked{}, b, false},
	} {
		if got := tc.b.Covers(tc.o); got != tc.want {
			t.Errorf("%s: Covers = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseBlockedRefuses(t *testing.T) {
	for name, data := range map[string][]byte{
		"unknown version": {2, 0},
		"truncated":       {1, 0, 4, 198, 51, 100},
		"bad length":      {1, 0, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5},
		"reversed":        {1, 0, 4, 198, 51, 100, 9, 198, 51, 100, 5},
		"out of order":    {1, 0, 4, 198, 51, 100, 9, 198, 51, 100, 9, 4, 198, 51, 100, 5, 198, 51, 100, 5},
		"all with more":   {1, 1, 4},
	} {
		if b, err := ParseBlocked(data); err == nil {
			t.Errorf("%s: parsed as %s", name, sprint(b))
		}
	}
}

// Blocked sets arrive from other nodes' memberlist metadata: whatever the
// bytes, parsing must not panic, and what parses must encode back the same.
func FuzzParseBlocked(f *testing.F) {
	for _, b := range []Blocked{{}, {All: true}, BlockedOf(addrs("198.51.100.1", "198.51.100.2", "2001:db8::1"), []bool{true, false, true}, 12)} {
		data, _ := b.MarshalBinary()
		f.Add(data)
	}
	f.Add([]byte{1, 0, 4, 198, 51, 100, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBlocked(data)
		if err != nil {
			return
		}
		again, err := b.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed %x but cannot encode it: %v", data, err)
		}
		back, err := ParseBlocked(again)
		if err != nil || !back.Equal(b) {
			t.Fatalf("re-encoding %x changed it: %v", data, err)
		}
		for _, r := range b.Ranges {
			if !b.Has(r.From) || !b.Has(r.To) {
				t.Fatalf("Has misses the ends of its own range %s-%s", r.From, r.To)
			}
		}
	})
}

// What other speakers publish arrives from the network: never panic, and
// what parses encodes back the same.
func FuzzParsePublished(f *testing.F) {
	for _, p := range []Published{{}, {Quorum: true}, {Quorum: true, Excluded: true}, {Quorum: true, Blocked: Blocked{All: true}}, {Blocked: BlockedOf(addrs("198.51.100.1", "2001:db8::1"), []bool{true, true}, 1)}} {
		data, _ := p.MarshalBinary()
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePublished(data)
		if err != nil {
			return
		}
		again, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed %x but cannot encode it: %v", data, err)
		}
		back, err := ParsePublished(again)
		if err != nil || !back.Equal(p) {
			t.Fatalf("re-encoding %x changed it: %v", data, err)
		}
	})
}

func TestPublishedRoundTrip(t *testing.T) {
	p := Published{Quorum: true, Blocked: BlockedOf(addrs("198.51.100.1", "198.51.100.2"), []bool{true, false}, 12)}
	data, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePublished(data)
	if err != nil || !back.Equal(p) || !back.Blocked.Has(netip.MustParseAddr("198.51.100.1")) {
		t.Fatalf("round trip %+v, %v", back, err)
	}
	ex := Published{Quorum: true, Excluded: true}
	if data, err := ex.MarshalBinary(); err != nil {
		t.Fatal(err)
	} else if back, err := ParsePublished(data); err != nil || !back.Equal(ex) || !back.Excluded || back.Equal(Published{Quorum: true}) {
		t.Fatalf("excluded round trip %+v, %v", back, err)
	}
	if z, err := ParsePublished(nil); err != nil || z.Quorum || z.Excluded || !z.Blocked.Empty() {
		t.Fatalf("nothing published: %+v, %v", z, err)
	}
	for _, bad := range [][]byte{{2, 0}, {1}, {1, 8}, {1, 1, 9}} {
		if _, err := ParsePublished(bad); err == nil {
			t.Errorf("ParsePublished(%v) accepted", bad)
		}
	}
}
