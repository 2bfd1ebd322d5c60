package allocator

import (
	"math/rand/v2"
	"testing"
)

// TestRunSetAgainstMap inserts and removes random offsets, some around the
// 64-bit carry, and compares membership, maximal runs and the lowest absent
// offset with a plain map.
func TestRunSetAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	bases := []u128{{0, 0}, {0, ^uint64(0) - 50}}
	for _, base := range bases {
		var s runSet
		ref := map[u128]bool{}
		for step := 0; step < 20000; step++ {
			x := base.add(fromUint64(uint64(r.IntN(120))))
			if r.IntN(2) == 0 {
				if got, want := s.insert(x), !ref[x]; got != want {
					t.Fatalf("insert(%v) = %v, want %v", x, got, want)
				}
				ref[x] = true
			} else {
				if got, want := s.remove(x), ref[x]; got != want {
					t.Fatalf("remove(%v) = %v, want %v", x, got, want)
				}
				delete(ref, x)
			}
			if step%97 == 0 {
				checkRuns(t, &s, ref, base)
			}
		}
	}
}

func checkRuns(t *testing.T, s *runSet, ref map[u128]bool, base u128) {
	t.Helper()
	var prevEnd *u128
	n := 0
	s.runs(func(start, end u128) bool {
		if end.less(start) {
			t.Fatalf("run %v-%v runs backwards", start, end)
		}
		if prevEnd != nil && !prevEnd.inc().less(start) {
			t.Fatalf("run starting %v touches the previous one ending %v: not maximal", start, *prevEnd)
		}
		for x := start; !end.less(x); x = x.inc() {
			if !ref[x] {
				t.Fatalf("%v in run %v-%v but not in the set", x, start, end)
			}
			n++
		}
		e := end
		prevEnd = &e
		return true
	})
	if n != len(ref) {
		t.Fatalf("runs hold %d offsets, want %d", n, len(ref))
	}
	if base.isZero() {
		want := u128{}
		for ref[want] {
			want = want.inc()
		}
		if got := s.lowestAbsent(); got != want {
			t.Fatalf("lowestAbsent = %v, want %v", got, want)
		}
	}
}

func TestBuggyNumbering(t *testing.T) {
	for x := uint64(0); x < 1<<12; x++ {
		low := x & 0xff
		if low == 0 || low == 255 {
			continue
		}
		if got := nthUsable(usableBelow(x)); got != x {
			t.Fatalf("nthUsable(usableBelow(%d)) = %d", x, got)
		}
	}
	if got := usableBelow(1 << 32); got != (1<<24)*254 {
		t.Fatalf("usableBelow(2^32) = %d", got)
	}
}
