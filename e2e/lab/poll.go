package lab

import (
	"context"
	"fmt"
	"time"
)

// Poll calls cond every interval until it returns nil or ctx ends, and then
// returns ctx's error with cond's last one, so a timeout says what was seen
// last. Tests wait with it instead of sleeping.
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
