package netns

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// NS is one network namespace of a run.
type NS struct {
	Name string
	reg  *Registry
}

// Path is the namespace's bind-mount path.
func (n *NS) Path() string { return "/var/run/netns/" + n.Name }

// Run executes a command inside the namespace and returns its combined output.
func (n *NS) Run(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// MustRun is Run for setup steps where failure means the run cannot go on.
func (n *NS) MustRun(ctx context.Context, args ...string) string {
	out, err := n.Run(ctx, args...)
	if err != nil {
		panic(err)
	}
	return out
}

// Do runs fn on an OS thread that has entered the namespace. Sockets that fn
// opens stay in the namespace for their whole life, whichever goroutine later
// uses them. The thread is discarded afterwards (never unlocked), so no other
// goroutine ever runs in the namespace by accident.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: the thread exits with the goroutine.
		f, err := os.Open(n.Path())
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", n.Name, err)
			return
		}
		defer f.Close() //nolint:errcheck // read only; setns has taken what it needs
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("netns %s: unshare: %w", n.Name, err)
			return
		}
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns %s: setns: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// killNamespacePIDs ends every process still running inside namespace name.
func killNamespacePIDs(ctx context.Context, name string) {
	out, err := run(ctx, "ip", "netns", "pids", name)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
