package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	n := 0
	if err := Until(context.Background(), time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Until = %v after %d calls, want nil after 3", err, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := Until(ctx, time.Millisecond, func() error { return errors.New("still 7 left") })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still 7 left") {
		t.Fatalf("Until = %v, want the deadline and the last condition", err)
	}
	calls := 0
	gone := errors.New("the process exited")
	err = Until(context.Background(), time.Millisecond, func() error {
		calls++
		return Stop(gone)
	})
	if !errors.Is(err, gone) || calls != 1 {
		t.Fatalf("Until = %v after %d calls, want the stopping error after 1", err, calls)
	}
}
