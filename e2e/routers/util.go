package routers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/heraldlb/herald/internal/poll"
)

// ErrNotFound is returned by route lookups when the router has no such route.
var ErrNotFound = errors.New("routers: not found")

// checkBinary says clearly which package is missing.
func checkBinary(path string) error {
	if _, err := exec.LookPath(path); err != nil {
		return fmt.Errorf("routers: %s not found (apt-get install -y frr bird2): %w", path, err)
	}
	return nil
}

// within waits with poll.Until, checking every 20 ms, for at most timeout.
func within(ctx context.Context, timeout time.Duration, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := poll.Until(ctx, 20*time.Millisecond, cond); err != nil {
		return fmt.Errorf("routers: %w", err)
	}
	return nil
}

// tail returns the last few KB of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	const keep = 4096
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}
