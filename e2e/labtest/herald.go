package labtest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
)

var (
	binMu  sync.Mutex
	bin    lab.Binaries
	binErr error
	binDir string
	built  bool
)

// Binaries returns herald-controller and herald-speaker built from this
// checkout. The first call builds them into a temporary folder that Main
// removes; a package whose tests never run Herald never builds.
func Binaries() (lab.Binaries, error) {
	binMu.Lock()
	defer binMu.Unlock()
	if built {
		return bin, binErr
	}
	built = true
	if binDir, binErr = os.MkdirTemp("", "herald-bin-"); binErr != nil {
		return bin, binErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, binErr = lab.BuildHerald(ctx, binDir)
	return bin, binErr
}

func removeBinaries() {
	binMu.Lock()
	defer binMu.Unlock()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
		binDir = ""
	}
}

// StartHerald runs Herald, built by Binaries, in l.
func StartHerald(l *lab.Lab) (*lab.Herald, error) {
	b, err := Binaries()
	if err != nil {
		return nil, err
	}
	return l.StartHerald(b)
}

// Shared is something a package's tests share on the shared lab, such as
// Herald with a suite's base configuration: the first test that asks
// starts it, and if that fails every test fails with the same error.
type Shared[T any] struct {
	once sync.Once
	v    T
	err  error
}

// Get returns the shared value, starting it with start on first use.
func (s *Shared[T]) Get(t testing.TB, start func(*lab.Lab) (T, error)) T {
	t.Helper()
	l := Lab(t)
	s.once.Do(func() { s.v, s.err = start(l) })
	if s.err != nil {
		t.Fatalf("labtest: starting on the shared lab: %v", s.err)
	}
	return s.v
}

// Deploy deploys a workload for the test (within a minute) and, when the
// test ends, deletes it and waits until it is gone, so the next test does
// not see its Service.
func Deploy(t testing.TB, l *lab.Lab, s lab.WorkloadSpec) *lab.Workload {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := l.Deploy(ctx, s)
	if w != nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := l.Delete(ctx, w); err != nil {
				t.Errorf("labtest: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("labtest: deploying %s: %v", s.Name, err)
	}
	return w
}
