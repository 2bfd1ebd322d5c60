package labtest

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
)

// Context is a context for the test's own steps: it ends after d, or when
// the test ends (before its cleanups, which bring their own).
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// Within waits until cond returns nil, checking every 50 ms, and fails the
// test if that takes longer than d. It returns how long it took.
func Within(t testing.TB, d time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	if err := lab.Poll(ctx, 50*time.Millisecond, cond); err != nil {
		t.Fatalf("%s: not within %v: %v", what, d, err)
	}
	return time.Since(start)
}

// Holds checks cond every 100 ms for d and fails the test at the first
// error: for what must not happen.
func Holds(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// Measuring reports whether the long measurements of docs/benchmarks.md
// run (HERALD_MEASURE=1); without it they are skipped or run once against
// loose bounds.
func Measuring() bool { return os.Getenv("HERALD_MEASURE") == "1" }

// MeasureInt is the positive number in the environment variable name
// (HERALD_MEASURE_TRIALS, ...), else def.
func MeasureInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
