// Package testkit is what Herald's tests share: waiting for a condition
// with a deadline (never a bare sleep; to assert that nothing changed,
// first wait for a sign that the change was processed, then use Holds),
// free ports, and a buffer for logs read while they are written.
package testkit

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/poll"
)

// Interval is how often For and Holds look at their condition.
const Interval = 50 * time.Millisecond

// For waits until cond returns nil and fails the test if that takes longer
// than d, saying what it waited for and what cond said last. It returns how
// long it took.
func For(t testing.TB, d time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	if err := poll.Until(ctx, Interval, cond); err != nil {
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

// FreePort returns a port on 127.0.0.1 that is free for both TCP and UDP
// (memberlist binds both). It is released before use, so another program
// could take it first.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		ports, err := FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
		if err == nil {
			_ = u.Close()
			return ports[0]
		}
	}
	t.Fatal("testkit: no port free for both TCP and UDP in 20 tries")
	return 0
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1, released before
// use: the caller reports which component failed to bind.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testkit: free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Buffer is a bytes buffer that code under test may write (a log) while the
// test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
