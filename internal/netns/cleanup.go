package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Cleanup removes what a crashed run with this prefix left behind: it ends
// the run's tracked processes (only those whose PID still names the same
// process), every process in its cgroups and inside its namespaces, then
// unmounts its mount namespaces and deletes its cgroups, namespaces and
// state directory.
func Cleanup(ctx context.Context, prefix string) error {
	if !strings.HasPrefix(prefix, NamePrefix) {
		return errors.New("netns: refusing to clean up a prefix this package did not make: " + prefix)
	}
	stateDir := filepath.Join(StateRoot, prefix)
	for _, p := range readPIDFiles(stateDir) {
		if p.alive() {
			_ = syscall.Kill(p.pid, syscall.SIGCONT)
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
	// Containers a kubelet of the run left in its cgroups, then the run's
	// mount namespaces.
	errs := []error{removeCgroups(prefix), unmountAll(stateDir)}
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix+"-") {
			continue
		}
		killNamespacePIDs(ctx, f[0])
		if _, err := run(ctx, "ip", "netns", "del", f[0]); err != nil {
			errs = append(errs, err)
		}
	}
	// Give killed processes a moment to be reaped by their parents.
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range readPIDFiles(stateDir) {
		for p.alive() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := os.RemoveAll(stateDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Prefixes lists the runs whose state or namespaces are present on this machine.
func Prefixes(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	entries, _ := os.ReadDir(StateRoot)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), NamePrefix) {
			seen[e.Name()] = true
		}
	}
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if p, _, ok := strings.Cut(f[0], "-"); ok && strings.HasPrefix(p, NamePrefix) && len(p) == len(NamePrefix)+6 {
			seen[p] = true
		}
	}
	var list []string
	for p := range seen {
		list = append(list, p)
	}
	return list, nil
}

// ownerFile, in a run's state directory, names the process that owns the
// run ("<pid> <start time>"), so a later run can tell a crashed run from a
// live one.
const ownerFile = "owner"

// WriteOwner records the calling process as the run's owner.
func (r *Registry) WriteOwner() error {
	if err := os.MkdirAll(r.StateDir(), 0o755); err != nil {
		return err
	}
	pid := os.Getpid()
	return os.WriteFile(filepath.Join(r.StateDir(), ownerFile), fmt.Appendf(nil, "%d %d\n", pid, startTime(pid)), 0o644)
}

// Owner returns the PID WriteOwner recorded for the run with prefix (0 if
// none) and whether that very process still runs.
func Owner(prefix string) (pid int, alive bool) {
	b, err := os.ReadFile(filepath.Join(StateRoot, prefix, ownerFile))
	if err != nil {
		return 0, false
	}
	var start uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &start); err != nil {
		return 0, false
	}
	return pid, start != 0 && startTime(pid) == start
}
