// Package ratelimit bounds what untrusted senders can make Herald do:
// answer ARP and NDP requests (speaker/l2guard), record Events
// (internal/k8s), write log lines. Token buckets, one per key with a
// bounded number of keys. It is pure: callers pass the time and serialize
// their calls.
package ratelimit

import "time"

// Bucket allows Rate events per second on average and Burst at once. The
// zero Bucket allows nothing; use NewBucket.
type Bucket struct {
	rate, burst float64
	tokens      float64
	at          time.Time // of the last refill; zero: full
}

// NewBucket returns a full bucket.
func NewBucket(rate float64, burst int) Bucket {
	return Bucket{rate: rate, burst: float64(burst)}
}

// Allow takes one token at now and reports whether there was one.
func (b *Bucket) Allow(now time.Time) bool {
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *Bucket) refill(now time.Time) {
	switch {
	case b.at.IsZero():
		b.tokens = b.burst
	case now.After(b.at):
		b.tokens = min(b.burst, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	default:
		return // a clock step back adds nothing
	}
	b.at = now
}

// full reports whether the bucket would be full at now: its key has been
// idle long enough to be forgotten without changing any answer.
func (b *Bucket) full(now time.Time) bool {
	return b.at.IsZero() || b.tokens+now.Sub(b.at).Seconds()*b.rate >= b.burst
}

// Keyed keeps a Bucket per key, at most MaxKeys of them. While the table
// is full, new keys share one bucket, so a sender that forges a new key for
// every event (a random source MAC) is limited as one sender. Keys whose
// bucket has refilled are forgotten, at most once per refill time.
type Keyed[K comparable] struct {
	rate    float64
	burst   int
	maxKeys int
	buckets map[K]*Bucket
	shared  Bucket
	// nextSweep is the earliest time the table is scanned for idle keys.
	nextSweep time.Time
}

// NewKeyed limits each key to rate events per second with bursts of burst,
// keeping at most maxKeys keys.
func NewKeyed[K comparable](rate float64, burst, maxKeys int) *Keyed[K] {
	return &Keyed[K]{rate: rate, burst: burst, maxKeys: maxKeys, buckets: map[K]*Bucket{}, shared: NewBucket(rate, burst)}
}

// Allow takes one token of key's bucket at now and reports whether there
// was one.
func (k *Keyed[K]) Allow(key K, now time.Time) bool {
	b := k.buckets[key]
	if b == nil {
		if len(k.buckets) >= k.maxKeys {
			k.sweep(now)
		}
		if len(k.buckets) >= k.maxKeys {
			return k.shared.Allow(now)
		}
		nb := NewBucket(k.rate, k.burst)
		b = &nb
		k.buckets[key] = b
	}
	return b.Allow(now)
}

// Len is how many keys are kept.
func (k *Keyed[K]) Len() int { return len(k.buckets) }

// sweep forgets idle keys. It scans the table at most once per time a
// bucket takes to refill (at least a second), so a flood of new keys costs
// one scan per interval, not one per event.
func (k *Keyed[K]) sweep(now time.Time) {
	if now.Before(k.nextSweep) {
		return
	}
	refill := time.Second
	if k.rate > 0 {
		refill = max(refill, time.Duration(float64(k.burst)/k.rate*float64(time.Second)))
	}
	k.nextSweep = now.Add(refill)
	for key, b := range k.buckets {
		if b.full(now) {
			delete(k.buckets, key)
		}
	}
}

// ReportEvery is how often a Throttle reports at most.
const ReportEvery = 10 * time.Second

// Throttle says when to log something that may repeat at any rate (a
// failing write): the first time at once, then at most once per
// ReportEvery, with how many times it happened since the last report.
type Throttle struct {
	n    uint64
	next time.Time
}

// Add counts one occurrence at now and reports whether to log it, with the
// count it stands for.
func (t *Throttle) Add(now time.Time) (n uint64, report bool) {
	t.n++
	if now.Before(t.next) {
		return 0, false
	}
	n, t.n, t.next = t.n, 0, now.Add(ReportEvery)
	return n, true
}
