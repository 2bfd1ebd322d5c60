package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/heraldlb/herald/internal/netns"
)

// Run is a lab (or any internal/netns run) present on this machine.
type Run struct {
	Prefix string
	// Owner is the PID that started it, if it recorded itself (labs and
	// testenv control planes do); OwnerAlive says whether it still runs.
	Owner      int
	OwnerAlive bool
}

// Stale reports whether the run is a lab whose owner has died.
func (r Run) Stale() bool { return r.Owner != 0 && !r.OwnerAlive }

// Runs lists the runs whose namespaces or state exist.
func Runs(ctx context.Context) ([]Run, error) {
	prefixes, err := netns.Prefixes(ctx)
	if err != nil {
		return nil, err
	}
	var runs []Run
	for _, p := range prefixes {
		r := Run{Prefix: p}
		r.Owner, r.OwnerAlive = netns.Owner(p)
		runs = append(runs, r)
	}
	return runs, nil
}

// CleanupRun removes everything of the run with prefix: processes,
// namespaces, state, and the lab's temporary run directory.
func CleanupRun(ctx context.Context, prefix string) error {
	err := netns.Cleanup(ctx, prefix)
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "herald-lab-"+prefix+"-*"))
	for _, d := range dirs {
		err = errors.Join(err, os.RemoveAll(d))
	}
	return err
}

// CleanupStale removes every run (lab or control plane) whose owner process has died (a test
// binary that panicked, a killed `herald-lab up`) and returns their prefixes.
// Runs of live processes and runs without an owner file are left alone.
func CleanupStale(ctx context.Context) ([]string, error) {
	runs, err := Runs(ctx)
	if err != nil {
		return nil, err
	}
	var cleaned []string
	var errs []error
	for _, r := range runs {
		if !r.Stale() {
			continue
		}
		if err := CleanupRun(ctx, r.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Prefix, err))
			continue
		}
		cleaned = append(cleaned, r.Prefix)
	}
	return cleaned, errors.Join(errs...)
}
