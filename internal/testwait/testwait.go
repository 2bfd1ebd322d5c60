// Package testwait is how Herald's tests wait: for a condition, with a
// deadline, never with a bare sleep. To assert that nothing changed, first
// wait for a sign that the change was processed, then use Holds.
package testwait

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Interval is how often For and Holds look at their condition.
const Interval = 50 * time.Millisecond

// Poll calls cond every interval until it returns nil or ctx ends, and then
// returns ctx's error with cond's last one, so a timeout says what was seen
// last.
func Poll(ctx context.Context, interval time.Duration, cond func() error) error {
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// For waits until cond returns nil and fails the test if that takes longer
// than d, saying what it waited for and what cond said last. It returns how
// long it took.
func For(t testing.TB, d time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	if err := Poll(ctx, Interval, cond); err != nil {
		t.Fatalf("%s: not within %v: %v", what, d, err)
	}
	return time.Since(start)
}

// Holds checks cond for d and fails the test at the first error: for what
// must not happen. Call it only after a sign that the change whose effect
// is checked was processed.
func Holds(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	for end := time.Now().Add(d); ; {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !time.Now().Before(end) {
			return
		}
		time.Sleep(Interval)
	}
}
