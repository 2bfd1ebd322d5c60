package reconcile

import (
	"log/slog"
	"slices"
	"testing"
	"time"
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
		name   string
		others bool
		steps  []obs
	}{
		{"majority side keeps taking over when one of three fails", true, []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
			{at: time.Second, live: []string{"a", "b"}, trusted: true},
		}},
		{"cut-off node: suspects the last one when the first is declared dead", true, []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
			{at: time.Second, live: []string{"a", "c"}, suspects: []string{"c"}, trusted: false},
			{at: 2 * time.Second, live: []string{"a"}, trusted: false},
			{at: 10 * time.Second, live: []string{"a", "b", "c"}, trusted: true, returned: []string{"b", "c"}},
		}},
		{"after the memory the dead stop counting: the survivor takes over", true, []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
			{at: time.Second, live: []string{"a"}, trusted: false},
			{at: 30 * time.Second, live: []string{"a"}, trusted: false},
			{at: 32 * time.Second, live: []string{"a"}, trusted: true},
			{at: 40 * time.Second, live: []string{"a", "b"}, trusted: true}, // no heal: forgotten
		}},
		{"two nodes: the survivor of a pair takes over", true, []obs{
			{at: 0, live: []string{"a", "b"}, trusted: true},
			{at: time.Second, live: []string{"a"}, trusted: true},
		}},
		{"members that handed over left: they are not expected", true, []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
			{at: time.Second, live: []string{"a"}, gone: []string{"b", "c"}, trusted: true},
		}},
		{"start: alone while other nodes exist waits, then trusts", true, []obs{
			{at: 0, live: nil, trusted: false},
			{at: time.Second, live: []string{"a"}, trusted: false},
			{at: 6 * time.Second, live: []string{"a"}, trusted: true},
		}},
		{"start: a single-node cluster trusts at once", false, []obs{
			{at: 0, live: []string{"a"}, trusted: true},
		}},
		{"wrong key: never joined, gossip it cannot decrypt", true, []obs{
			{at: time.Second, live: []string{"a"}, mismatch: at(time.Second), trusted: false},
			{at: 20 * time.Second, live: []string{"a"}, mismatch: at(18 * time.Second), trusted: false},
			{at: 90 * time.Second, live: []string{"a"}, mismatch: at(18 * time.Second), trusted: true},
		}},
		{"a stranger's undecryptable gossip does not stop a joined node", true, []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
			{at: time.Second, live: []string{"a", "b", "c"}, mismatch: at(time.Second), trusted: true},
		}},
		{"start: joined others at once", true, []obs{
			{at: 0, live: []string{"a", "b", "c"}, trusted: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQuorum(t0, 30*time.Second, 5*time.Second)
			for i, s := range tc.steps {
				gone := map[string]bool{}
				for _, g := range s.gone {
					gone[g] = true
				}
				ret := q.Observe(at(s.at), s.live, gone)
				v := q.Check(at(s.at), View{Live: s.live, Suspects: s.suspects, OthersExist: tc.others, KeyMismatch: s.mismatch})
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
