package takeover

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Blocked is the set of Layer 2 addresses a node cannot announce now: no
// interface qualifies (link or carrier down, the route toward the pool
// lost, none of the advertisement's interfaces on this node). A node is no
// candidate for an address its Blocked holds, so the next one in the
// ranking announces it. Each node publishes its own Blocked to the others
// (memberlist metadata), and every node, itself included, elects from the
// published sets, so they all agree on the candidates.
//
// The set is a list of inclusive ranges over addresses, or All. Ranges are
// built over the addresses a node knows (see BlockedOf): an address learnt
// later that falls inside a range counts as blocked until the node publishes
// again, on every node alike.
type Blocked struct {
	All    bool
	Ranges []Range
}

// Range is an inclusive range of addresses of one family.
type Range struct{ From, To netip.Addr }

// MaxBlockedRanges keeps an encoded Blocked well inside memberlist's 512
// bytes of node metadata (an IPv6 range takes 33 bytes).
const MaxBlockedRanges = 12

// Has reports whether ip is blocked.
func (b Blocked) Has(ip netip.Addr) bool {
	if b.All {
		return true
	}
	ip = ip.Unmap()
	i, _ := slices.BinarySearchFunc(b.Ranges, ip, func(r Range, ip netip.Addr) int { return r.To.Compare(ip) })
	return i < len(b.Ranges) && b.Ranges[i].From.Compare(ip) <= 0
}

// Empty reports whether nothing is blocked.
func (b Blocked) Empty() bool { return !b.All && len(b.Ranges) == 0 }

// Equal reports whether b and o block the same ranges.
func (b Blocked) Equal(o Blocked) bool { return b.All == o.All && slices.Equal(b.Ranges, o.Ranges) }

// Covers reports whether b blocks everything o blocks, so a change from o
// to b gives the node no address it could not announce before. A range of
// o spread over several ranges of b counts as not covered (a false "grown"
// only costs a release message).
func (b Blocked) Covers(o Blocked) bool {
	switch {
	case b.All:
		return true
	case o.All:
		return false
	}
	for _, r := range o.Ranges {
		i, _ := slices.BinarySearchFunc(b.Ranges, r.From, func(x Range, ip netip.Addr) int { return x.To.Compare(ip) })
		if i == len(b.Ranges) || b.Ranges[i].From.Compare(r.From) > 0 || b.Ranges[i].To.Compare(r.To) < 0 {
			return false
		}
	}
	return true
}

// BlockedOf builds the Blocked set of a node from the addresses it knows,
// sorted, and whether each is blocked: each run of consecutive blocked
// addresses becomes one range. More than maxRanges runs, or every address
// blocked, give All (a node that cannot say precisely what it cannot
// announce gives everything up rather than keep something it cannot serve).
func BlockedOf(ips []netip.Addr, blocked []bool, maxRanges int) Blocked {
	var out Blocked
	n := 0
	for i := 0; i < len(ips); i++ {
		if !blocked[i] {
			continue
		}
		j := i
		for j+1 < len(ips) && blocked[j+1] && ips[j+1].Is4() == ips[i].Is4() {
			j++
		}
		out.Ranges = append(out.Ranges, Range{ips[i].Unmap(), ips[j].Unmap()})
		n += j - i + 1
		i = j
	}
	if n > 0 && (n == len(ips) || len(out.Ranges) > maxRanges) {
		return Blocked{All: true}
	}
	return out
}

// Encoding: version 1, a flags byte (1: All), then per range the family's
// length (4 or 16) followed by From and To.
const (
	blockedVersion = 1
	flagAll        = 1
)

// ErrBadBlocked is returned by ParseBlocked for data it cannot read.
var ErrBadBlocked = errors.New("takeover: bad blocked-address set")

// MarshalBinary encodes b for another node's ParseBlocked.
func (b Blocked) MarshalBinary() ([]byte, error) {
	out := []byte{blockedVersion, 0}
	if b.All {
		out[1] = flagAll
		return out, nil
	}
	for _, r := range b.Ranges {
		if !r.From.IsValid() || r.From.Is4() != r.To.Is4() || r.From.Compare(r.To) > 0 {
			return nil, fmt.Errorf("%w: range %s-%s", ErrBadBlocked, r.From, r.To)
		}
		from, to := r.From.AsSlice(), r.To.AsSlice()
		out = append(out, byte(len(from)))
		out = append(out, from...)
		out = append(out, to...)
	}
	return out, nil
}

// ParseBlocked decodes what MarshalBinary wrote; empty data is an empty set
// (a node that publishes nothing blocks nothing). It never panics on
// hostile input and refuses ranges that are unordered, overlapping or mixed.
func ParseBlocked(data []byte) (Blocked, error) {
	if len(data) == 0 {
		return Blocked{}, nil
	}
	if len(data) < 2 || data[0] != blockedVersion {
		return Blocked{}, fmt.Errorf("%w: unknown version", ErrBadBlocked)
	}
	if data[1]&flagAll != 0 {
		if len(data) != 2 {
			return Blocked{}, fmt.Errorf("%w: trailing data", ErrBadBlocked)
		}
		return Blocked{All: true}, nil
	}
	var out Blocked
	rest := data[2:]
	for len(rest) > 0 {
		n := int(rest[0])
		if (n != 4 && n != 16) || len(rest) < 1+2*n {
			return Blocked{}, fmt.Errorf("%w: truncated range", ErrBadBlocked)
		}
		from, _ := netip.AddrFromSlice(rest[1 : 1+n])
		to, _ := netip.AddrFromSlice(rest[1+n : 1+2*n])
		rest = rest[1+2*n:]
		if from.Is4In6() || to.Is4In6() {
			return Blocked{}, fmt.Errorf("%w: IPv4-mapped address", ErrBadBlocked)
		}
		if from.Compare(to) > 0 {
			return Blocked{}, fmt.Errorf("%w: range %s-%s ends before it starts", ErrBadBlocked, from, to)
		}
		if k := len(out.Ranges); k > 0 && out.Ranges[k-1].To.Compare(from) >= 0 {
			return Blocked{}, fmt.Errorf("%w: ranges out of order", ErrBadBlocked)
		}
		out.Ranges = append(out.Ranges, Range{from, to})
	}
	return out, nil
}
