package routers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"
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

// poll calls cond every interval until it reports done, fails, or timeout passes.
func poll(ctx context.Context, interval, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done, err := cond()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("routers: gave up waiting after %v: %w", timeout, ctx.Err())
		case <-t.C:
		}
	}
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
