// Package poll waits for a condition with a deadline: the lab's own waits
// and, through internal/testkit, every test's.
package poll

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Until calls cond every interval until it returns nil or ctx ends, and then
// returns ctx's error with cond's last one, so a timeout says what was seen
// last. An error from cond wrapped by Stop ends the wait at once.
func Until(ctx context.Context, interval time.Duration, cond func() error) error {
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// Stop wraps err so that Until returns it at once (the awaited thing can no
// longer happen: the process exited) instead of trying again.
func Stop(err error) error { return stopError{err} }

type stopError struct{ err error }

func (s stopError) Error() string { return s.err.Error() }
func (s stopError) Unwrap() error { return s.err }
