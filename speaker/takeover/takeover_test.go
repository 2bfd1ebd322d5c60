package takeover

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// step is one observation and what must follow from it. Every alive
// member but "a" publishes that it sees a majority and has settled, unless
// listed in notReady (publishes nothing) or settlingPeers.
type step struct {
	at            time.Duration
	alive         []string
	suspects      []string
	present       []string
	mismatch      *time.Duration // when undecryptable gossip last arrived (nil: never)
	stalled       bool
	regained      bool
	grown         []string
	handovers     []Message
	releases      []Message
	notReady      []string
	settlingPeers []string
	quorumless    []string // these still publish that they see no majority
	probed        bool     // the caller probed the live others now
	unanswered    []string // of them, these did not answer
	excluded      bool     // this node is excluded from load balancing
	excludedPeers []string // these publish that they are
	revived       []string // failed members that answered the probe

	takeOver bool
	settling bool
	greet    []string
	given    []string // addresses
	why      string   // substring of the quorum's Why
	live     []string // nil: not checked
	waiting  []string // nil: not checked
	// unconfirmed: Decision.Unconfirmed, checked when not nil ("-": none)
	unconfirmed []string
	notes       []string // substrings of this step's notes, in order; nil: not checked
	probe       bool
	failed      []string // Decision.ProbeFailed, checked when probe
}

var (
	abc  = []string{"a", "b", "c"}
	abcd = []string{"a", "b", "c", "d"}
)

func rel(from string, ips ...string) []Message {
	return []Message{{From: from, IPs: addrs(ips...)}}
}

func rels(from ...string) []Message {
	var out []Message
	for _, f := range from {
		out = append(out, rel(f)...)
	}
	return out
}

// joined is a node that joined a, b and c: answered by both, in its grace
// period until 2 s.
var joined = []step{
	{at: 0, alive: abc, present: abc, releases: rels("b", "c"), greet: []string{"b", "c"}},
	{at: 2 * time.Second, alive: abc, present: abc, takeOver: true},
}

func TestGuard(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"start alone behind a firewall: the API server shows the others, so nothing is taken over, ever", []step{
			{at: 0, alive: []string{"a"}, present: abc, why: "sees 1 of the 3 speakers"},
			{at: 5 * time.Second, alive: []string{"a"}, present: abc, why: "unseen: b, c"},
			{at: 5 * time.Minute, alive: []string{"a"}, present: abc, why: "memberlist port"},
		}},
		{"start: not a member until memberlist has joined; then settle until everyone answered, then a grace period", []step{
			{at: 0, alive: nil, present: abc, why: "not a member"},
			{at: 200 * time.Millisecond, alive: abc, present: abc, settling: true, greet: []string{"b", "c"}, waiting: []string{"b", "c"}},
			{at: 300 * time.Millisecond, alive: abc, present: abc, releases: rels("b"), settling: true, waiting: []string{"c"}},
			{at: 400 * time.Millisecond, alive: abc, present: abc, releases: rel("c", "198.51.100.7"), given: []string{"198.51.100.7"}},
			{at: 2300 * time.Millisecond, alive: abc, present: abc, given: []string{"198.51.100.7"}},
			{at: 2500 * time.Millisecond, alive: abc, present: abc, takeOver: true},
		}},
		{"a node that hears from nobody (its memberlist port blocked inbound, the others seen through its own connections) settles never", []step{
			{at: 0, alive: abc, present: abc, settling: true, greet: []string{"b", "c"}},
			{at: 10 * time.Second, alive: abc, present: abc, settling: true, waiting: []string{"b", "c"}},
			{at: 10 * time.Minute, alive: abc, present: abc, settling: true, waiting: []string{"b", "c"}},
		}},
		{"a node whose port is blocked inbound sees the others, which have not published that they settled (restarted, say): it waits for them all the same, never 'no other speaker'", []step{
			{at: 0, alive: abc, present: abc, notReady: []string{"b", "c"}, settling: true, waiting: []string{"b", "c"}, live: []string{"a"}},
			{at: 10 * time.Second, alive: abc, present: abc, notReady: []string{"b", "c"}, settling: true, waiting: []string{"b", "c"}},
			{at: 10 * time.Minute, alive: abc, present: abc, notReady: []string{"b", "c"}, settling: true, waiting: []string{"b", "c"}},
		}},
		{"three nodes start together, each settling: they greet each other and settle on the answers", []step{
			{at: 0, alive: abc, present: abc, settlingPeers: []string{"b", "c"}, settling: true, greet: []string{"b", "c"}, waiting: []string{"b", "c"}},
			{at: 100 * time.Millisecond, alive: abc, present: abc, settlingPeers: []string{"b", "c"}, releases: rels("b", "c"), greet: nil},
			{at: 2200 * time.Millisecond, alive: abc, present: abc, takeOver: true, greet: []string{"b", "c"}, live: abc},
		}},
		{"single node cluster: trusted at once", []step{
			{at: 0, alive: []string{"a"}, present: []string{"a"}, takeOver: true},
		}},
		{"first speaker of a new cluster, before the others have Leases", []step{
			{at: 0, alive: []string{"a"}, present: nil, takeOver: true},
			{at: time.Second, alive: []string{"a"}, present: []string{"a", "b"}, why: "sees 1 of the 2"},
			{at: 2 * time.Second, alive: []string{"a", "b"}, present: []string{"a", "b"}, settling: true, greet: []string{"b"}},
		}},
		{"majority side of a three-node cluster takes over when one fails, once a probe shows it reaches a majority", append(joined,
			step{at: 3 * time.Second, alive: []string{"a", "b"}, present: abc, probe: true},
			step{at: 3001 * time.Millisecond, alive: []string{"a", "b"}, present: abc, probed: true, takeOver: true},
			step{at: 5 * time.Second, alive: []string{"a", "b"}, present: abc, takeOver: true},
		)},
		{"half of a four-node cluster declares one of the other half dead before it suspects the other: the probe shows no majority", []step{
			{at: 0, alive: []string{"a", "b", "c", "d"}, present: []string{"a", "b", "c", "d"}, releases: rels("b", "c", "d"), greet: []string{"b", "c", "d"}},
			{at: 3 * time.Second, alive: []string{"a", "b", "c", "d"}, present: []string{"a", "b", "c", "d"}, takeOver: true},
			{at: 4 * time.Second, alive: []string{"a", "b", "d"}, present: []string{"a", "b", "c", "d"}, probe: true},
			{at: 4001 * time.Millisecond, alive: []string{"a", "b", "d"}, present: []string{"a", "b", "c", "d"}, probed: true, unanswered: []string{"d"}},
			{at: 4300 * time.Millisecond, alive: []string{"a", "b", "d"}, suspects: []string{"d"}, present: []string{"a", "b", "c", "d"}, why: "sees 2 of the 4"},
		}},
		{"a member declared dead by stale gossip (a peer back from a cut link spread its old view) still answers: nothing is taken over until memberlist sees it again", append(joined,
			step{at: 3 * time.Second, alive: []string{"a", "b"}, present: abc, probe: true, failed: []string{"c"}},
			step{at: 3001 * time.Millisecond, alive: []string{"a", "b"}, present: abc, probed: true, revived: []string{"c"}},
			step{at: 3300 * time.Millisecond, alive: []string{"a", "b"}, present: abc},
			step{at: 3600 * time.Millisecond, alive: []string{"a", "b"}, present: abc, probe: true, failed: []string{"c"}},
			step{at: 3601 * time.Millisecond, alive: []string{"a", "b"}, present: abc, probed: true, revived: []string{"c"}},
			step{at: 3700 * time.Millisecond, alive: abc, present: abc, takeOver: true, greet: []string{"c"}, live: abc},
			step{at: 4 * time.Second, alive: abc, present: abc, takeOver: true, live: abc},
		)},
		{"a crashed member does not answer the probe: taken over at once; a later failure probes only the new one", append(joined,
			step{at: 3 * time.Second, alive: []string{"a", "b"}, present: abc, probe: true, failed: []string{"c"}},
			step{at: 3001 * time.Millisecond, alive: []string{"a", "b"}, present: abc, probed: true, takeOver: true},
			step{at: 4 * time.Second, alive: []string{"a"}, present: []string{"a", "b"}, why: "sees 1 of the 2"},
		)},
		{"a cut-off member comes back and its stale view kills a live member in the same instant: probed before anything is taken over", append(joined,
			step{at: 3 * time.Second, alive: []string{"a", "c"}, present: abc, probe: true, failed: []string{"b"}},
			step{at: 3001 * time.Millisecond, alive: []string{"a", "c"}, present: abc, probed: true, takeOver: true},
			step{at: 5 * time.Second, alive: []string{"a", "b"}, present: abc, notReady: []string{"b"}, probe: true, failed: []string{"c"}},
			step{at: 5001 * time.Millisecond, alive: []string{"a", "b"}, present: abc, notReady: []string{"b"}, probed: true, revived: []string{"c"}},
		)},
		{"a lost ping: probed again half a second later", append(joined,
			step{at: 3 * time.Second, alive: []string{"a", "b"}, present: abc, probe: true},
			step{at: 3001 * time.Millisecond, alive: []string{"a", "b"}, present: abc, probed: true, unanswered: []string{"b"}},
			step{at: 3200 * time.Millisecond, alive: []string{"a", "b"}, present: abc},
			step{at: 3600 * time.Millisecond, alive: []string{"a", "b"}, present: abc, probe: true},
			step{at: 3601 * time.Millisecond, alive: []string{"a", "b"}, present: abc, probed: true, takeOver: true},
		)},
		{"isolated node: its probes suspect the others, then declare them dead; the API server still shows them", append(joined,
			step{at: 3 * time.Second, alive: abc, suspects: []string{"b", "c"}, present: abc, why: "sees 1 of the 3"},
			step{at: 4 * time.Second, alive: []string{"a", "c"}, suspects: []string{"c"}, present: abc, why: "sees 1 of the 3"},
			step{at: 5 * time.Second, alive: []string{"a"}, present: abc, why: "sees 1 of the 3"},
			step{at: 10 * time.Minute, alive: []string{"a"}, present: abc, why: "sees 1 of the 3"},
			// heal: a settles, the incumbents release to it
			step{at: 11 * time.Minute, alive: abc, present: abc, settling: true, greet: []string{"b", "c"}},
			step{at: 11*time.Minute + 100*time.Millisecond, alive: abc, present: abc, releases: append(rel("b", "198.51.100.5"), rel("c")...), given: []string{"198.51.100.5"}},
			step{at: 11*time.Minute + 3*time.Second, alive: abc, present: abc, takeOver: true},
		)},
		{"even split of four nodes: neither half takes over", []step{
			{at: 0, alive: []string{"a", "b", "c", "d"}, present: []string{"a", "b", "c", "d"}, releases: rels("b", "c", "d"), greet: []string{"b", "c", "d"}},
			{at: 3 * time.Second, alive: []string{"a", "b"}, present: []string{"a", "b", "c", "d"}, why: "sees 2 of the 4"},
			{at: time.Hour, alive: []string{"a", "b"}, present: []string{"a", "b", "c", "d"}, why: "unseen: c, d"},
		}},
		{"even split healed: the other half is seen before its published state says it settled; it is unconfirmed (no address it ranks first for is taken over) until it does", []step{
			{at: 0, alive: abcd, present: abcd, releases: rels("b", "c", "d"), greet: []string{"b", "c", "d"}, unconfirmed: []string{"-"}},
			{at: 3 * time.Second, alive: abcd, present: abcd, takeOver: true, live: abcd},
			{at: 4 * time.Second, alive: []string{"a", "b"}, present: abcd, why: "sees 2 of the 4", live: []string{"a", "b"}, unconfirmed: []string{"-"}},
			// heal: c and d still publish what they did through the split
			{at: time.Minute, alive: abcd, present: abcd, quorumless: []string{"c", "d"}, settling: true, live: []string{"a", "b"}, unconfirmed: []string{"c", "d"}, waiting: []string{"b", "c", "d"}},
			{at: time.Minute + 100*time.Millisecond, alive: abcd, present: abcd, quorumless: []string{"c", "d"}, releases: rels("b", "c", "d"), live: []string{"a", "b"}, unconfirmed: []string{"c", "d"}},
			// its grace is over: it may take over, but not what c or d rank first for
			{at: time.Minute + 3*time.Second, alive: abcd, present: abcd, quorumless: []string{"c", "d"}, takeOver: true, live: []string{"a", "b"}, unconfirmed: []string{"c", "d"}},
			// c's state arrives seconds late, then d's
			{at: time.Minute + 8*time.Second, alive: abcd, present: abcd, quorumless: []string{"d"}, takeOver: true, greet: []string{"c"}, live: []string{"a", "b", "c"}, unconfirmed: []string{"d"},
				notes: []string{"c confirmed: it sees a majority and has settled, 8s after it appeared"}},
			{at: time.Minute + 9*time.Second, alive: abcd, present: abcd, takeOver: true, greet: []string{"d"}, live: abcd, unconfirmed: []string{"-"}},
		}},
		{"an excluded member is not unconfirmed: it announces nothing", []step{
			{at: 0, alive: abc, present: abc, excludedPeers: []string{"c"}, notReady: []string{"b"}, greet: nil, settling: true, live: []string{"a"}, unconfirmed: []string{"b"}},
		}},
		{"even split, and the API server lets the other half's Leases expire: this half takes over", []step{
			{at: 0, alive: []string{"a", "b"}, present: []string{"a", "b", "c", "d"}, greet: []string{"b"}, why: "sees 2 of the 4"},
			{at: time.Minute, alive: []string{"a", "b"}, present: []string{"a", "b"}, settling: true, waiting: []string{"b"}},
			{at: time.Minute + time.Second, alive: []string{"a", "b"}, present: []string{"a", "b"}, releases: rels("b")},
			{at: time.Minute + 4*time.Second, alive: []string{"a", "b"}, present: []string{"a", "b"}, takeOver: true},
		}},
		{"two nodes, one crashes: no takeover until the API server stops showing it", []step{
			{at: 0, alive: []string{"a", "b"}, present: []string{"a", "b"}, releases: rels("b"), greet: []string{"b"}},
			{at: 3 * time.Second, alive: []string{"a", "b"}, present: []string{"a", "b"}, takeOver: true},
			{at: 4 * time.Second, alive: []string{"a"}, present: []string{"a", "b"}, why: "sees 1 of the 2"},
			{at: 40 * time.Second, alive: []string{"a"}, present: []string{"a"}, takeOver: true},
		}},
		{"two nodes, one stops gracefully: its hand-over is taken at once and it is not expected", []step{
			{at: 0, alive: []string{"a", "b"}, present: []string{"a", "b"}, releases: rels("b"), greet: []string{"b"}},
			{at: 3 * time.Second, alive: []string{"a", "b"}, present: []string{"a", "b"}, handovers: rel("b", "198.51.100.9"), takeOver: true, given: []string{"198.51.100.9"}, live: []string{"a"}},
			{at: 3100 * time.Millisecond, alive: []string{"a"}, present: []string{"a", "b"}, takeOver: true, live: []string{"a"}},
			// b restarts: memberlist shows it again, it counts again
			{at: 8 * time.Second, alive: []string{"a", "b"}, present: []string{"a", "b"}, takeOver: true, greet: []string{"b"}, live: []string{"a", "b"}},
		}},
		{"a member whose memberlist port is blocked one way settles never: never a candidate, greeted every second", []step{
			{at: 0, alive: []string{"a", "b"}, present: abc, releases: rels("b"), greet: []string{"b"}},
			{at: 3 * time.Second, alive: abc, present: abc, settlingPeers: []string{"c"}, takeOver: true, greet: []string{"c"}, live: []string{"a", "b"}},
			{at: 3500 * time.Millisecond, alive: abc, present: abc, settlingPeers: []string{"c"}, takeOver: true, live: []string{"a", "b"}},
			{at: 4 * time.Second, alive: abc, present: abc, settlingPeers: []string{"c"}, takeOver: true, greet: []string{"c"}, live: []string{"a", "b"}},
			{at: 5 * time.Second, alive: []string{"a", "b"}, present: abc, probe: true, live: []string{"a", "b"}},
			{at: 5001 * time.Millisecond, alive: []string{"a", "b"}, present: abc, probed: true, takeOver: true, live: []string{"a", "b"}},
			{at: 6 * time.Second, alive: abc, present: abc, notReady: []string{"c"}, takeOver: true, live: []string{"a", "b"}},
			// c's port opens: it settles, says so, becomes a candidate
			{at: 10 * time.Second, alive: abc, present: abc, takeOver: true, greet: []string{"c"}, live: abc},
			// and stays one while it settles again (a stall)
			{at: 11 * time.Second, alive: abc, present: abc, settlingPeers: []string{"c"}, takeOver: true, greet: []string{"c"}, live: abc},
		}},
		{"a hand-over is taken even without quorum", []step{
			{at: 0, alive: []string{"a", "b"}, present: abc, handovers: rel("b", "198.51.100.9"), given: []string{"198.51.100.9"}, why: "sees 1 of the 2"},
		}},
		{"different memberlist key: sees only itself, the reason says so", []step{
			{at: 0, alive: []string{"a"}, present: abc, mismatch: new(time.Duration(0)), why: "different memberlist key"},
			{at: 5 * time.Minute, alive: []string{"a"}, present: abc, mismatch: new(time.Duration(0)), why: "sees 1 of the 3"},
		}},
		{"stalled process: a grace period, in which it takes only what is released", append(joined,
			step{at: 5 * time.Second, alive: abc, present: abc, stalled: true},
			step{at: 5100 * time.Millisecond, alive: abc, present: abc, releases: rel("b", "198.51.100.3"), given: []string{"198.51.100.3"}},
			step{at: 7200 * time.Millisecond, alive: abc, present: abc, takeOver: true},
		)},
		{"data path back: a grace period; others greet a member whose data path grew", append(joined,
			step{at: 5 * time.Second, alive: abc, present: abc, regained: true, grown: []string{"c"}, greet: []string{"c"}},
			step{at: 5100 * time.Millisecond, alive: abc, present: abc, releases: rel("b", "198.51.100.3"), given: []string{"198.51.100.3"}},
			step{at: 7200 * time.Millisecond, alive: abc, present: abc, takeOver: true},
		)},
		{"this node is drained: no candidate for anything, still counting for quorum; back in service, it takes only what is released for the grace period", append(joined,
			step{at: 5 * time.Second, alive: abc, present: abc, excluded: true, takeOver: true, live: []string{"b", "c"}},
			// a release (a stale one, sent before the others saw the drain) is forgotten: b may take it back
			step{at: 6 * time.Second, alive: abc, present: abc, excluded: true, releases: rel("b", "198.51.100.3"), takeOver: true, live: []string{"b", "c"}},
			// a member fails: the drained node still sees a majority and helps none the less
			step{at: 9 * time.Second, alive: []string{"a", "b"}, present: abc, excluded: true, probe: true, live: []string{"b"}},
			step{at: 9001 * time.Millisecond, alive: []string{"a", "b"}, present: abc, excluded: true, probed: true, takeOver: true, live: []string{"b"}},
			// back in service: a candidate again, but in its grace period
			step{at: 20 * time.Second, alive: abc, present: abc, live: abc, greet: []string{"c"}},
			step{at: 20100 * time.Millisecond, alive: abc, present: abc, releases: rel("b", "198.51.100.4"), given: []string{"198.51.100.4"}, live: abc},
			step{at: 22200 * time.Millisecond, alive: abc, present: abc, takeOver: true, live: abc},
		)},
		{"an exclusion that ends at once still lasts the hold: what is released meanwhile is forgotten, so a flapping drain never takes back a stale release", append(joined,
			step{at: 5 * time.Second, alive: abc, present: abc, excluded: true, takeOver: true, live: []string{"b", "c"}},
			step{at: 5500 * time.Millisecond, alive: abc, present: abc, takeOver: true, live: []string{"b", "c"}},
			step{at: 6 * time.Second, alive: abc, present: abc, releases: rel("b", "198.51.100.3"), takeOver: true, live: []string{"b", "c"}},
			// the hold is over: back in service, with a grace period, and the stale release is gone
			step{at: 8100 * time.Millisecond, alive: abc, present: abc, live: abc},
			step{at: 8200 * time.Millisecond, alive: abc, present: abc, releases: rel("b", "198.51.100.4"), given: []string{"198.51.100.4"}, live: abc},
		)},
		{"a member that publishes it is excluded is no candidate; when it is back it is greeted (and released to) as a member that rejoined", append(joined,
			step{at: 5 * time.Second, alive: abc, present: abc, excludedPeers: []string{"b"}, takeOver: true, live: []string{"a", "c"}},
			// an excluded member still counts for quorum: c fails, a still sees 2 of 3
			step{at: 6 * time.Second, alive: []string{"a", "b"}, present: abc, excludedPeers: []string{"b"}, probe: true, live: []string{"a"}},
			step{at: 6001 * time.Millisecond, alive: []string{"a", "b"}, present: abc, excludedPeers: []string{"b"}, probed: true, takeOver: true, live: []string{"a"}},
			step{at: 8 * time.Second, alive: []string{"a", "b"}, present: abc, takeOver: true, greet: []string{"b"}, live: []string{"a", "b"}},
		)},
		{"a member that hands its addresses over and is excluded: they are taken at once, quorum or not", []step{
			{at: 0, alive: abc, present: abc, excludedPeers: []string{"b"}, releases: append(rel("b", "198.51.100.5"), rel("c")...), greet: []string{"c"}, given: []string{"198.51.100.5"}, live: []string{"a", "c"}, settling: false},
		}},
		{"released addresses count for the hold time only", []step{
			{at: 0, alive: []string{"a"}, present: []string{"a"}, takeOver: true},
			{at: time.Second, alive: []string{"a"}, present: []string{"a"}, releases: rel("b", "198.51.100.3"), takeOver: true, given: []string{"198.51.100.3"}},
			{at: 2 * time.Second, alive: []string{"a"}, present: []string{"a"}, takeOver: true, given: []string{"198.51.100.3"}},
			{at: 4 * time.Second, alive: []string{"a"}, present: []string{"a"}, takeOver: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New(Config{Self: "a"})
			var lastReach Reach
			for i, s := range tc.steps {
				pub := map[string]Published{}
				for _, n := range s.alive {
					switch {
					case n == "a" || slices.Contains(s.notReady, n):
					case slices.Contains(s.settlingPeers, n):
						pub[n] = Published{Quorum: true, Settling: true}
					case slices.Contains(s.quorumless, n):
						pub[n] = Published{}
					default:
						pub[n] = Published{Quorum: true, Excluded: slices.Contains(s.excludedPeers, n)}
					}
				}
				in := Input{Now: at(s.at), Alive: s.alive, Suspects: s.suspects, Present: s.present, Published: pub,
					Stalled: s.stalled, Regained: s.regained, Grown: s.grown, Handovers: s.handovers, Releases: s.releases, Excluded: s.excluded}
				if s.mismatch != nil {
					in.KeyMismatch = at(*s.mismatch)
				}
				if s.probed {
					others := len(slices.DeleteFunc(slices.Clone(s.alive), func(n string) bool { return n == "a" || slices.Contains(s.suspects, n) }))
					lastReach = Reach{At: at(s.at), Live: others, Asked: others, Answered: others - len(s.unanswered), Revived: s.revived}
				}
				in.Reach = lastReach
				d := g.Observe(in)
				var given []string
				for ip := range d.Given {
					given = append(given, ip.String())
				}
				slices.Sort(given)
				ctx := fmt.Sprintf("step %d (%v, alive %v, present %v)", i, s.at, s.alive, s.present)
				if d.TakeOver != s.takeOver || d.Settling != s.settling {
					t.Errorf("%s: takeOver %v settling %v (quorum %+v, waiting %v), want %v %v", ctx, d.TakeOver, d.Settling, d.Quorum, d.Waiting, s.takeOver, s.settling)
				}
				if !slices.Equal(d.Greet, s.greet) {
					t.Errorf("%s: greet %v, want %v", ctx, d.Greet, s.greet)
				}
				if !slices.Equal(given, s.given) {
					t.Errorf("%s: given %v, want %v", ctx, given, s.given)
				}
				if s.why != "" && !strings.Contains(d.Quorum.Why, s.why) {
					t.Errorf("%s: why %q, want it to say %q", ctx, d.Quorum.Why, s.why)
				}
				if s.why == "" && !d.Quorum.OK {
					t.Errorf("%s: no quorum: %s", ctx, d.Quorum.Why)
				}
				if s.live != nil && !slices.Equal(d.Live, s.live) {
					t.Errorf("%s: live %v, want %v", ctx, d.Live, s.live)
				}
				if s.waiting != nil && !slices.Equal(d.Waiting, s.waiting) {
					t.Errorf("%s: waiting for %v, want %v", ctx, d.Waiting, s.waiting)
				}
				if s.unconfirmed != nil && !slices.Equal(d.Unconfirmed, slices.DeleteFunc(slices.Clone(s.unconfirmed), func(n string) bool { return n == "-" })) {
					t.Errorf("%s: unconfirmed %v, want %v", ctx, d.Unconfirmed, s.unconfirmed)
				}
				if s.notes != nil {
					var got []string
					for _, n := range d.Notes {
						got = append(got, n.Message)
					}
					if len(got) != len(s.notes) {
						t.Errorf("%s: notes %q, want ones saying %q", ctx, got, s.notes)
					}
					for i := range min(len(got), len(s.notes)) {
						if !strings.Contains(got[i], s.notes[i]) {
							t.Errorf("%s: note %q, want it to say %q", ctx, got[i], s.notes[i])
						}
					}
				}
				if d.Probe != s.probe {
					t.Errorf("%s: probe %v, want %v", ctx, d.Probe, s.probe)
				}
				if d.Probe && s.failed != nil && !slices.Equal(d.ProbeFailed, s.failed) {
					t.Errorf("%s: probe the failed %v, want %v", ctx, d.ProbeFailed, s.failed)
				}
			}
		})
	}
}

// A node that never sees a majority never takes over, whatever the timing:
// a property check over random views.
func TestGuardNeverTakesOverWithoutMajority(t *testing.T) {
	nodes := []string{"a", "b", "c", "d", "e"}
	g := New(Config{Self: "a"})
	seed := uint64(1)
	rnd := func(n int) int { seed = seed*6364136223846793005 + 1442695040888963407; return int(seed>>33) % n }
	for i := range 5000 {
		var alive, suspects, present []string
		for _, n := range nodes {
			if n == "a" || rnd(2) == 0 {
				alive = append(alive, n)
				if n != "a" && rnd(4) == 0 {
					suspects = append(suspects, n)
				}
			}
			if rnd(4) != 0 {
				present = append(present, n)
			}
		}
		pub := map[string]Published{}
		for _, n := range alive {
			pub[n] = Published{Quorum: rnd(3) != 0, Settling: rnd(5) == 0}
		}
		d := g.Observe(Input{Now: at(time.Duration(i) * 700 * time.Millisecond), Alive: alive, Suspects: suspects, Present: present, Published: pub, Releases: rels(alive...)})
		if d.TakeOver && 2*d.Quorum.Seen <= d.Quorum.Expected {
			t.Fatalf("step %d: takes over seeing %d of %d (alive %v suspects %v present %v)", i, d.Quorum.Seen, d.Quorum.Expected, alive, suspects, present)
		}
		expected := map[string]bool{"a": true}
		for _, n := range append(slices.Clone(alive), present...) {
			expected[n] = true
		}
		if d.Quorum.Expected != len(expected) {
			t.Fatalf("step %d: expected %d, want %d", i, d.Quorum.Expected, len(expected))
		}
	}
}

// A release is used up once the node stops announcing the address.
func TestGuardReleaseIsUsedUp(t *testing.T) {
	g := New(Config{Self: "a"})
	ip := netip.MustParseAddr("198.51.100.3")
	d := g.Observe(Input{Now: at(0), Alive: []string{"a"}, Present: []string{"a"}, Releases: rel("b", "198.51.100.3")})
	if !d.Given[ip] {
		t.Fatal("released address not given")
	}
	g.Stopped([]netip.Addr{ip})
	if d := g.Observe(Input{Now: at(time.Second), Alive: []string{"a"}, Present: []string{"a"}}); d.Given[ip] {
		t.Fatal("an address released once and stopped since is still given")
	}
}
