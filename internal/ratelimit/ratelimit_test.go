package ratelimit

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// allowed counts how many of n events spread evenly over d a bucket allows.
func allowed(allow func(time.Time) bool, start time.Time, n int, d time.Duration) int {
	ok := 0
	for i := range n {
		if allow(start.Add(d * time.Duration(i) / time.Duration(n))) {
			ok++
		}
	}
	return ok
}

func TestBucket(t *testing.T) {
	for _, tc := range []struct {
		name          string
		rate          float64
		burst, events int
		over          time.Duration
		want          int
	}{
		{"a burst at once gets the burst", 10, 5, 100, 0, 5},
		{"a flood over 10 s gets the burst and the rate", 10, 5, 100000, 10 * time.Second, 5 + 100},
		{"a steady sender under the rate loses nothing", 10, 5, 50, 10 * time.Second, 50},
		{"rate zero: the burst, then never again", 0, 3, 100, time.Hour, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBucket(tc.rate, tc.burst)
			if got := allowed(b.Allow, t0, tc.events, tc.over); got < tc.want-1 || got > tc.want {
				t.Fatalf("allowed %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("a clock step back gives nothing", func(t *testing.T) {
		b := NewBucket(1, 1)
		if !b.Allow(t0) || b.Allow(t0.Add(-time.Hour)) || b.Allow(t0) {
			t.Fatal("a step back refilled the bucket")
		}
	})
}

func TestKeyed(t *testing.T) {
	t.Run("keys are limited separately", func(t *testing.T) {
		k := NewKeyed[string](1, 2, 10)
		for _, key := range []string{"a", "b"} {
			if got := allowed(func(now time.Time) bool { return k.Allow(key, now) }, t0, 100, 0); got != 2 {
				t.Fatalf("%s: allowed %d of a burst, want 2", key, got)
			}
		}
	})
	t.Run("forged keys share one bucket once the table is full", func(t *testing.T) {
		k := NewKeyed[int](1, 2, 100)
		ok := 0
		for i := range 100000 {
			if k.Allow(i, t0.Add(time.Duration(i)*time.Microsecond)) { // 100,000 keys in 0.1 s
				ok++
			}
		}
		// 100 keys with a burst of 2, then the shared bucket's burst.
		if ok > 100*2+2 || k.Len() > 100 {
			t.Fatalf("allowed %d with %d keys kept", ok, k.Len())
		}
	})
	t.Run("idle keys are forgotten, busy ones kept", func(t *testing.T) {
		k := NewKeyed[int](10, 10, 3)
		for i := range 3 {
			k.Allow(i, t0)
		}
		for range 20 {
			k.Allow(0, t0) // key 0 empties its bucket
		}
		// Two seconds later keys 1 and 2 have refilled; key 0 is busy again.
		now := t0.Add(2 * time.Second)
		for range 30 {
			k.Allow(0, now)
		}
		if !k.Allow(3, now) || k.Len() != 2 {
			t.Fatalf("new key refused or idle ones kept: %d keys", k.Len())
		}
		if _, kept := k.buckets[0]; !kept {
			t.Fatal("the busy key was forgotten, and with it its empty bucket")
		}
	})
}

func TestThrottle(t *testing.T) {
	var th Throttle
	var reports []uint64
	for i := range 25000 { // 25 s, one every ms
		if n, ok := th.Add(t0.Add(time.Duration(i) * time.Millisecond)); ok {
			reports = append(reports, n)
		}
	}
	// At once, then every 10 s with the count since.
	if len(reports) != 3 || reports[0] != 1 || reports[1] != 10000 || reports[2] != 10000 {
		t.Fatalf("reports %v", reports)
	}
}
