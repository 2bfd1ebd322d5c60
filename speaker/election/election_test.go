package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func ips(t *testing.T, prefix string, n int) []netip.Addr {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	out := make([]netip.Addr, 0, n)
	for a := p.Addr().Next(); len(out) < n; a = a.Next() {
		if !p.Contains(a) {
			t.Fatalf("%s holds fewer than %d addresses", prefix, n)
		}
		out = append(out, a)
	}
	return out
}

func TestRankIsDeterministicAndIndependentOfInputOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ip    string
		nodes []string
	}{
		{"ipv4 three nodes", "198.51.100.5", []string{"node-a", "node-b", "node-c"}},
		{"ipv6 five nodes", "2001:db8:100::5", []string{"n1", "n2", "n3", "n4", "n5"}},
		{"single node", "203.0.113.9", []string{"only"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.ip)
			want := Rank(ip, tc.nodes)
			if len(want) != len(tc.nodes) {
				t.Fatalf("Rank dropped nodes: %v", want)
			}
			if got := Owner(ip, tc.nodes); got != want[0] {
				t.Fatalf("Owner = %q, Rank[0] = %q", got, want[0])
			}
			r := rand.New(rand.NewPCG(1, 2))
			for range 20 {
				shuffled := slices.Clone(tc.nodes)
				r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				if got := Rank(ip, shuffled); !slices.Equal(got, want) {
					t.Fatalf("Rank(%v) = %v, want %v", shuffled, got, want)
				}
				if got := Owner(ip, shuffled); got != want[0] {
					t.Fatalf("Owner(%v) = %q, want %q", shuffled, got, want[0])
				}
			}
		})
	}
}

func TestRankDropsDuplicatesAndHandlesEmpty(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.1")
	if got := Rank(ip, []string{"b", "a", "b", "a"}); len(got) != 2 {
		t.Fatalf("Rank with duplicates = %v, want two distinct names", got)
	}
	if got := Rank(ip, nil); len(got) != 0 {
		t.Fatalf("Rank(nil) = %v", got)
	}
	if got := Owner(ip, nil); got != "" {
		t.Fatalf("Owner(nil) = %q, want empty", got)
	}
}

// The owner is chosen per IP, not per Service: two IPs of one Service (one
// per family, say) may land on different nodes, and the ranking of one IP
// says nothing about another.
func TestOwnerIsPerIP(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	owners := map[string]bool{}
	for _, ip := range ips(t, "198.51.100.0/24", 30) {
		owners[Owner(ip, nodes)] = true
	}
	if len(owners) != len(nodes) {
		t.Fatalf("30 IPs landed on %d of %d nodes: %v", len(owners), len(nodes), owners)
	}
	v4, v6 := netip.MustParseAddr("198.51.100.5"), netip.MustParseAddr("2001:db8:100::5")
	if slices.Equal(Rank(v4, nodes), Rank(v6, nodes)) && slices.Equal(Rank(v4.Next(), nodes), Rank(v6.Next(), nodes)) {
		t.Fatal("rankings of unrelated IPs coincide: the hash ignores the IP")
	}
}

func TestSpreadAcrossNodes(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		nodes  int
		count  int
	}{
		{"198.51.100.0/24", 3, 250},
		{"203.0.113.0/24", 5, 250},
		{"2001:db8:100::/64", 3, 300},
		{"2001:db8:200::/64", 7, 700},
	} {
		t.Run(fmt.Sprintf("%s/%d-nodes", tc.prefix, tc.nodes), func(t *testing.T) {
			var nodes []string
			for i := range tc.nodes {
				nodes = append(nodes, fmt.Sprintf("worker-%d", i))
			}
			count := map[string]int{}
			for _, ip := range ips(t, tc.prefix, tc.count) {
				count[Owner(ip, nodes)]++
			}
			fair := tc.count / tc.nodes
			for _, n := range nodes {
				// At least 60% of a fair share: with 3 nodes, 20% of all IPs.
				if count[n] < fair*6/10 {
					t.Errorf("%s owns %d of %d IPs (fair share %d): %v", n, count[n], tc.count, fair, count)
				}
			}
		})
	}
}

// Losing a node moves only the IPs it owned; every other IP keeps its owner.
// Adding it back returns exactly those IPs. Checked over random node sets.
func TestLosingANodeMovesOnlyItsIPs(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 7))
	all := append(ips(t, "198.51.100.0/24", 200), ips(t, "2001:db8:100::/64", 200)...)
	for round := range 200 {
		n := 2 + r.IntN(9)
		var nodes []string
		for range n {
			nodes = append(nodes, fmt.Sprintf("node-%d", r.IntN(1000)))
		}
		nodes = Rank(all[0], nodes) // distinct names, arbitrary order
		gone := nodes[r.IntN(len(nodes))]
		rest := slices.DeleteFunc(slices.Clone(nodes), func(s string) bool { return s == gone })
		for _, ip := range all {
			before, after := Owner(ip, nodes), Owner(ip, rest)
			if before != gone && after != before {
				t.Fatalf("round %d: %s moved from %s to %s when %s left %v", round, ip, before, after, gone, nodes)
			}
			if before == gone && after != Rank(ip, nodes)[1] {
				t.Fatalf("round %d: %s went to %s, not to its runner-up %s", round, ip, after, Rank(ip, nodes)[1])
			}
		}
	}
}

func TestOwnedBy(t *testing.T) {
	a, b, c := "node-a", "node-b", "node-c"
	pool := ips(t, "198.51.100.0/24", 60)
	all := map[netip.Addr][]string{}
	for _, ip := range pool {
		all[ip] = []string{a, b, c}
	}
	ownedA := OwnedBy(a, []string{a, b, c}, all)
	ownedB := OwnedBy(b, []string{a, b, c}, all)
	ownedC := OwnedBy(c, []string{a, b, c}, all)
	if got := len(ownedA) + len(ownedB) + len(ownedC); got != len(pool) {
		t.Fatalf("the three nodes together own %d IPs, want each of %d exactly once", got, len(pool))
	}
	if !slices.IsSortedFunc(ownedA, netip.Addr.Compare) {
		t.Fatalf("OwnedBy is not sorted: %v", ownedA)
	}

	// b is dead: a and c share its IPs, and b itself (if it still runs
	// without seeing itself alive) announces nothing.
	if got := OwnedBy(b, []string{a, c}, all); got != nil {
		t.Fatalf("a node that is not alive owns %v", got)
	}
	if got := len(OwnedBy(a, []string{a, c}, all)) + len(OwnedBy(c, []string{a, c}, all)); got != len(pool) {
		t.Fatalf("after b died a and c own %d IPs, want %d", got, len(pool))
	}

	// Eligibility narrows the choice (say externalTrafficPolicy: Local with
	// endpoints on c only), and an IP whose eligible nodes are all dead is
	// owned by nobody.
	ip1, ip2 := pool[0], pool[1]
	narrow := map[netip.Addr][]string{ip1: {c}, ip2: {b}}
	if got := OwnedBy(c, []string{a, b, c}, narrow); !slices.Equal(got, []netip.Addr{ip1}) {
		t.Fatalf("OwnedBy(c) = %v, want [%s]", got, ip1)
	}
	for _, n := range []string{a, c} {
		if got := OwnedBy(n, []string{a, c}, narrow); slices.Contains(got, ip2) {
			t.Fatalf("%s owns %s although only dead %s is eligible", n, ip2, b)
		}
	}
}

func BenchmarkOwnedBy10kIPs(b *testing.B) {
	nodes := []string{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"}
	eligible := map[netip.Addr][]string{}
	a := netip.MustParseAddr("198.51.0.0")
	for range 10000 {
		eligible[a] = nodes
		a = a.Next()
	}
	for b.Loop() {
		OwnedBy("n3", nodes, eligible)
	}
}

// Preferred nodes come first, in the order of their place; the hash
// decides among equals and when no preferred node is a candidate.
func TestPreferredOwner(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.7")
	all := []string{"n1", "n2", "n3", "n4", "n5"}
	// hashOrder is the plain ranking; the cases are written against it so
	// that each one means something whatever the hash gives.
	h := Rank(ip, all)
	last, secondLast := h[len(h)-1], h[len(h)-2]
	for _, tc := range []struct {
		name       string
		candidates []string
		prefs      Preferences
		want       string
	}{
		{"no preferences: the hash", all, nil, h[0]},
		{"empty preferences: the hash", all, Preferences{}, h[0]},
		{"the one preferred node, although it ranks last by hash", all, Preferences{last: 0}, last},
		{"two nodes of the first place: the hash decides between them", all, Preferences{last: 0, secondLast: 0}, secondLast},
		{"the first place beats the second", all, Preferences{h[0]: 1, last: 0}, last},
		{"the preferred node is not a candidate (dead, blocked, not eligible): the next place", without(all, last), Preferences{last: 0, secondLast: 1}, secondLast},
		{"no preferred node is a candidate: the hash among the rest", without(all, last, secondLast), Preferences{last: 0, secondLast: 1}, h[0]},
		{"a node with a place that is no candidate changes nothing for the rest", without(all, h[0]), Preferences{h[0]: 0}, h[1]},
		{"a negative place counts as none", all, Preferences{last: -1}, h[0]},
		{"no candidates: nobody", nil, Preferences{last: 0}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PreferredOwner(ip, tc.candidates, tc.prefs); got != tc.want {
				t.Errorf("PreferredOwner = %q, want %q (hash order %v, preferences %v)", got, tc.want, h, tc.prefs)
			}
			if r := RankPreferred(ip, tc.candidates, tc.prefs); len(tc.candidates) > 0 && r[0] != tc.want {
				t.Errorf("RankPreferred = %v, want %q first", r, tc.want)
			}
		})
	}
}

// The full ranking with preferences: by place, then by hash within each
// place and among the nodes without one; independent of input order.
func TestRankPreferredOrdersByPlaceThenHash(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e", "f"}
	prefs := Preferences{"e": 1, "b": 0, "f": 1}
	for _, ip := range ips(t, "203.0.113.0/24", 20) {
		got := RankPreferred(ip, all, prefs)
		place := func(n string) int { return prefs.place(n) }
		for i := 1; i < len(got); i++ {
			a, b := got[i-1], got[i]
			if place(a) > place(b) || (place(a) == place(b) && score(ip, a) > score(ip, b)) {
				t.Fatalf("%s: %v is out of order at %d", ip, got, i)
			}
		}
		if got[0] != "b" {
			t.Fatalf("%s: %v, want b (place 0) first", ip, got)
		}
		shuffled := []string{"f", "e", "d", "c", "b", "a"}
		if again := RankPreferred(ip, shuffled, prefs); !slices.Equal(again, got) {
			t.Fatalf("%s: order depends on input order: %v vs %v", ip, again, got)
		}
	}
}

// Among preferred nodes of one place, addresses still spread by the hash.
func TestPreferredNodesShareAddresses(t *testing.T) {
	prefs := Preferences{"edge-1": 0, "edge-2": 0}
	nodes := []string{"edge-1", "edge-2", "w-1", "w-2", "w-3"}
	count := map[string]int{}
	for _, ip := range ips(t, "198.51.100.0/24", 200) {
		count[PreferredOwner(ip, nodes, prefs)]++
	}
	if count["edge-1"]+count["edge-2"] != 200 || count["edge-1"] < 60 || count["edge-2"] < 60 {
		t.Fatalf("owners %v: want every address on the two preferred nodes, shared roughly evenly", count)
	}
}

func without(list []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return slices.Contains(drop, s) })
}
