package presence

import (
	"fmt"
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type obs struct {
		at     time.Duration
		node   string
		renew  time.Duration // the Lease's renewTime as the writer wrote it
		forget bool
	}
	for _, tc := range []struct {
		name    string
		obs     []obs
		present string
	}{
		{"every Lease seen at start counts, stale or not", []obs{
			{0, "a", 0, false}, {0, "b", -time.Hour, false}, {0, "c", 0, false},
		}, "[a b c]"},
		{"a peer that stops renewing expires once this node's own renewals move on", []obs{
			{0, "a", 0, false}, {0, "b", 0, false},
			{10 * time.Second, "a", 10 * time.Second, false}, {10 * time.Second, "b", 10 * time.Second, false},
			{20 * time.Second, "a", 20 * time.Second, false},
			{30 * time.Second, "a", 30 * time.Second, false},
			{41 * time.Second, "a", 41 * time.Second, false},
		}, "[a]"},
		{"a cut-off node sees no renewals, its own neither: nobody expires", []obs{
			{0, "a", 0, false}, {0, "b", 0, false},
			{10 * time.Second, "a", 10 * time.Second, false},
			// nothing more arrives for an hour
		}, "[a b]"},
		{"a renewal seen again without a change is no renewal", []obs{
			{0, "a", 0, false}, {0, "b", 0, false},
			{10 * time.Second, "b", 0, false},
			{50 * time.Second, "a", 50 * time.Second, false},
		}, "[a]"},
		{"a deleted Lease counts no more", []obs{
			{0, "a", 0, false}, {0, "b", 0, false}, {time.Second, "b", 0, true},
		}, "[a]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker("a", 30*time.Second)
			for _, o := range tc.obs {
				if o.forget {
					tr.Forget(o.node)
					continue
				}
				tr.Observe(at(o.at), o.node, at(o.renew))
			}
			if got := fmt.Sprint(tr.Present()); got != tc.present {
				t.Fatalf("present %s, want %s", got, tc.present)
			}
		})
	}
}

func TestLeaseName(t *testing.T) {
	if got := LeaseName("node1"); got != "speaker-node1" {
		t.Fatalf("LeaseName = %q", got)
	}
	long := make([]byte, 253)
	for i := range long {
		long[i] = 'a'
	}
	if got := LeaseName(string(long)); len(got) != 253 || got == LeaseName(string(long[:252])+"b") {
		t.Fatalf("long names: %d bytes, or not distinct", len(got))
	}
}
