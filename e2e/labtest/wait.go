package labtest

import (
	"context"
	"os"
	"testing"
	"time"
)

// Context is a context for the test's own steps: it ends after d, or when
// the test ends (before its cleanups, which bring their own).
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// Measuring reports whether the long measurements of docs/benchmarks.md
// run (HERALD_MEASURE=1); without it they are skipped or run once against
// loose bounds.
func Measuring() bool { return os.Getenv("HERALD_MEASURE") == "1" }
