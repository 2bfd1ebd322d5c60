package config

import (
	"strings"
	"testing"
)

// FuzzParseRange: a pool block as a user (or anything that can write an
// IPPool) types it. ParseRange must never panic; a block it accepts has
// both ends in one family, in order, without zones or IPv4-mapped
// addresses, and Prefixes covers exactly its addresses. A CIDR written
// back as text parses to the same block.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"198.51.100.0/24", "198.51.100.7/24", "2001:db8::/64", "2001:db8::10 - 2001:db8::1f",
		"198.51.100.10-198.51.100.20", "198.51.100.9-198.51.100.1", "198.51.100.1-2001:db8::1",
		"0.0.0.0/0", "::/0", "255.255.255.255/32", "::ffff:198.51.100.0/120", "fe80::1%eth0-fe80::2%eth0",
		"10.0.0.0/33", "-", "/", " 10.0.0.1 - 10.0.0.1 ", "1-2-3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			if r != (Range{}) {
				t.Fatalf("error %v with a range %v", err, r)
			}
			return
		}
		switch {
		case !r.First.IsValid() || !r.Last.IsValid():
			t.Fatalf("%q: invalid ends %v", s, r)
		case r.First.Is4() != r.Last.Is4():
			t.Fatalf("%q: ends of two families %v", s, r)
		case r.Last.Less(r.First):
			t.Fatalf("%q: ends out of order %v", s, r)
		case r.First.Zone() != "" || r.Last.Zone() != "" || r.First.Is4In6() || r.Last.Is4In6():
			t.Fatalf("%q: zone or IPv4-mapped address in %v", s, r)
		}
		ps := r.Prefixes()
		if len(ps) == 0 || len(ps) > 2*r.First.BitLen() {
			t.Fatalf("%q: %d prefixes", s, len(ps))
		}
		next := r.First
		for i, p := range ps {
			if p.Addr() != next || p.Masked() != p {
				t.Fatalf("%q: prefix %d is %v, want one starting at %v", s, i, p, next)
			}
			next = lastOf(p).Next()
		}
		if end := lastOf(ps[len(ps)-1]); end != r.Last {
			t.Fatalf("%q: prefixes end at %v, the range at %v", s, end, r.Last)
		}
		if len(ps) == 1 && strings.Contains(s, "/") {
			again, err := ParseRange(rangeString(r))
			if err != nil || again != r {
				t.Fatalf("%q: written back as %q parses to %v, %v", s, rangeString(r), again, err)
			}
		}
		if !r.Contains(r.First) || !r.Contains(r.Last) || !r.Overlaps(r) {
			t.Fatalf("%q: range does not contain its own ends", s)
		}
	})
}

// FuzzCommunity: communities and large communities of a BGPAdvertisement.
// The parsers must never panic, and what they accept reads back the same.
func FuzzCommunity(f *testing.F) {
	for _, s := range []string{
		"65000:100", "0:0", "65535:65535", "65536:1", "no-export", "graceful-shutdown", "1:2:3",
		"4294967295:4294967295:4294967295", "4294967296:0:0", ":", "::", "-1:5", "+1:5", " 1:2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := ParseCommunity(s); err == nil {
			if _, named := WellKnownCommunities[s]; !named {
				back, err := ParseCommunity(CommunityString(c))
				if err != nil || back != c {
					t.Fatalf("%q -> %#x -> %q -> %#x, %v", s, c, CommunityString(c), back, err)
				}
			}
		}
		if lc, err := ParseLargeCommunity(s); err == nil {
			parts := strings.Split(s, ":")
			if len(parts) != 3 {
				t.Fatalf("%q accepted as large community %+v", s, lc)
			}
		}
	})
}
