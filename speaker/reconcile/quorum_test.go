package reconcile

import (
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/speaker/members"
)

func TestQuorum(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type obs struct {
		at       time.Duration
		live     []string
		suspects []string
		gone     []string
		mismatch time.Time
		trusted  bool
		returned []string
	}
	for _, tc := range []struct {
		name  string
		steps []obs
	}{
		{"majority side keeps taking over when one of three fails", []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
			{at: time.Second, live: []string{"a", "b"}, trusted: true},
		}},
		{"cut-off node: suspects the last one when the first is declared dead", []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
			{at: time.Second, live: []string{"a", "c"}, suspects: []string{"c"}, trusted: false},
			{at: 2 * time.Second, live: []string{"a"}, trusted: false},
			{at: 10 * time.Second, live: []string{"a", "b", "c"}, trusted: true, returned: []string{"b", "c"}},
		}},
		{"after the memory the dead stop counting: the survivor takes over", []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
			{at: time.Second, live: []string{"a"}, trusted: false},
			{at: 30 * time.Second, live: []string{"a"}, trusted: false},
			{at: 32 * time.Second, live: []string{"a"}, trusted: true},
			{at: 40 * time.Second, live: []string{"a", "b"}, trusted: true}, // no heal: forgotten
		}},
		{"two nodes: the survivor of a pair takes over", []obs{
			{at: 0, live: []string{"a", "b"}, trusted: true},
			{at: time.Second, live: []string{"a"}, trusted: true},
		}},
		{"members that handed over left: they are not expected", []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
			{at: time.Second, live: []string{"a"}, gone: []string{"b", "c"}, trusted: true},
		}},
		{"start: not a member yet", []obs{
			{at: 0, live: nil, trusted: false},
			{at: time.Second, live: []string{"a"}, trusted: true},
		}},
		{"wrong key: never joined, gossip it cannot decrypt", []obs{
			{at: time.Second, live: []string{"a"}, mismatch: at(time.Second), trusted: false},
			{at: 20 * time.Second, live: []string{"a"}, mismatch: at(18 * time.Second), trusted: false},
			{at: 90 * time.Second, live: []string{"a"}, mismatch: at(18 * time.Second), trusted: true},
		}},
		{"a stranger's undecryptable gossip does not stop a joined node", []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
			{at: time.Second, live: []string{"a", "b", "c"}, mismatch: at(time.Second), trusted: true},
		}},
		{"start: joined others at once", []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQuorum(30 * time.Second)
			for i, s := range tc.steps {
				gone := map[string]bool{}
				for _, g := range s.gone {
					gone[g] = true
				}
				ret := q.Observe(at(s.at), s.live, gone)
				v := q.Check(at(s.at), View{Live: s.live, Suspects: s.suspects, KeyMismatch: s.mismatch})
				if v.Trusted != s.trusted {
					t.Errorf("step %d (%v live %v suspects %v): trusted %v (%s; %d of %d), want %v", i, s.at, s.live, s.suspects, v.Trusted, v.Why, v.Healthy, v.Expected, s.trusted)
				}
				if !slices.Equal(ret, s.returned) {
					t.Errorf("step %d: returned %v, want %v", i, ret, s.returned)
				}
			}
		})
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestSettle(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	s := newSettle(3 * time.Second)
	if settling, _ := s.check(at(0), []string{"a", "b"}, "a", true); settling {
		t.Fatal("settling before it began")
	}
	s.heardFrom(at(0), "c") // long before: does not count
	s.begin(at(2*time.Second), "starting")
	if settling, _ := s.check(at(2*time.Second), []string{"a"}, "a", true); !settling {
		t.Fatal("a lone node with other nodes around settled at once")
	}
	s.heardFrom(at(1500*time.Millisecond), "b") // just before: counts
	if settling, _ := s.check(at(2600*time.Millisecond), []string{"a", "b", "c"}, "a", true); !settling {
		t.Fatal("settled without c's release")
	}
	s.heardFrom(at(2700*time.Millisecond), "c")
	if settling, why := s.check(at(2800*time.Millisecond), []string{"a", "b", "c"}, "a", true); settling || why != "every live speaker has seen this node" {
		t.Fatalf("after b and c released: settling %v (%s)", settling, why)
	}
	s.begin(at(10*time.Second), "was stalled")
	if settling, why := s.check(at(13*time.Second), []string{"a", "b"}, "a", true); settling || why != "timed out waiting for the other speakers" {
		t.Fatalf("timeout: settling %v (%s)", settling, why)
	}
	s.begin(at(20*time.Second), "starting")
	if settling, why := s.check(at(20*time.Second), []string{"a"}, "a", false); settling || why != "no other node" {
		t.Fatalf("single node: settling %v (%s)", settling, why)
	}
}

func TestReleaseMessage(t *testing.T) {
	r := release{From: "n2", IPs: []netip.Addr{netip.MustParseAddr("198.51.100.5")}}
	got, err := parseRelease(r.marshal())
	if err != nil || got.From != "n2" || len(got.IPs) != 1 || got.IPs[0] != r.IPs[0] {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := parseRelease(members.Handover{From: "n2"}.Marshal()); err == nil {
		t.Fatal("a hand-over parsed as a release")
	}
	if _, err := members.ParseHandover(r.marshal()); err == nil {
		t.Fatal("a release parsed as a hand-over")
	}
}
