// Package election decides, without any shared state, which node announces a
// Layer 2 service IP.
//
// Every speaker runs the same pure function over the same inputs (the live,
// eligible nodes for an IP) and so reaches the same answer without talking to
// the others. Ranking is rendezvous (highest-random-weight) hashing: each
// (node, IP) pair gets a score from SHA-256, and the node with the lowest
// score owns the IP. Adding or removing a node therefore moves only the IPs
// that node wins or owned, and IPs spread evenly across nodes.
//
// Preferences (an L2Advertisement's ordered preferredNodeSelectors) come
// before the hash: the live eligible nodes of the best place rank first,
// and the hash orders nodes of one place, so a preferred node owns every
// address it is eligible for, and the preferred nodes share them evenly.
package election

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
)

// score is the rank key of node for ip; lower ranks first.
func score(ip netip.Addr, node string) uint64 {
	// name, a separator that no node name contains, then the 4 or 16 address
	// bytes: unambiguous, so distinct pairs never hash the same input.
	var buf [256]byte // node names are DNS names (<= 253 bytes): no allocation
	b := append(buf[:0], node...)
	b = append(b, 0)
	b = append(b, ip.Unmap().AsSlice()...)
	sum := sha256.Sum256(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// Preferences put some nodes ahead of the hash ranking: a node's value is
// its place, 0 first (an L2Advertisement's preferredNodeSelectors). Nodes
// without a place rank after every node with one; among nodes of one
// place, and among those without, the hash decides. nil prefers nobody.
type Preferences map[string]int

// place is the node's place; no place ranks last.
func (p Preferences) place(node string) int {
	if v, ok := p[node]; ok && v >= 0 {
		return v
	}
	return math.MaxInt
}

type ranked struct {
	node  string
	place int
	score uint64
}

func (a ranked) compare(b ranked) int {
	if c := cmp.Compare(a.place, b.place); c != 0 {
		return c
	}
	if c := cmp.Compare(a.score, b.score); c != 0 {
		return c
	}
	return cmp.Compare(a.node, b.node)
}

// Rank returns the distinct nodes ordered by preference for ip: the first one
// owns it, the second takes over if the first goes away, and so on. The order
// depends only on ip and the set of names, never on the input order; equal
// scores are ordered by name. The input slice is not modified.
func Rank(ip netip.Addr, nodes []string) []string { return RankPreferred(ip, nodes, nil) }

// RankPreferred is Rank with preferences: nodes by place first, then by
// the hash.
func RankPreferred(ip netip.Addr, nodes []string, prefs Preferences) []string {
	rs := make([]ranked, 0, len(nodes))
	for _, n := range nodes {
		rs = append(rs, ranked{node: n, place: prefs.place(n), score: score(ip, n)})
	}
	slices.SortFunc(rs, ranked.compare)
	rs = slices.Compact(rs)
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.node
	}
	return out
}

// Owner returns the node that announces ip among eligible, or "" if there is
// none. It is Rank(ip, eligible)[0] without sorting.
func Owner(ip netip.Addr, eligible []string) string { return PreferredOwner(ip, eligible, nil) }

// PreferredOwner returns the node that announces ip among eligible with
// preferences: the first preferred one, the hash deciding among equals
// and when none is preferred. It is RankPreferred(...)[0] without sorting.
func PreferredOwner(ip netip.Addr, eligible []string, prefs Preferences) string {
	var (
		best  ranked
		found bool
	)
	for _, n := range eligible {
		r := ranked{node: n, place: prefs.place(n), score: score(ip, n)}
		if !found || r.compare(best) < 0 {
			best, found = r, true
		}
	}
	return best.node
}

// OwnedBy returns, sorted, the IPs that self must announce: for each IP in
// eligible (the nodes allowed to announce it, per configuration and endpoint
// readiness), the owner among those that are also alive (members in the
// memberlist sense). An IP with no live eligible node is announced by nobody.
func OwnedBy(self string, alive []string, eligible map[netip.Addr][]string) []netip.Addr {
	live := make(map[string]bool, len(alive))
	for _, n := range alive {
		live[n] = true
	}
	if !live[self] {
		return nil
	}
	var owned []netip.Addr
	candidates := make([]string, 0, len(alive))
	for ip, nodes := range eligible {
		candidates = candidates[:0]
		for _, n := range nodes {
			if live[n] {
				candidates = append(candidates, n)
			}
		}
		if Owner(ip, candidates) == self {
			owned = append(owned, ip)
		}
	}
	slices.SortFunc(owned, netip.Addr.Compare)
	return owned
}
