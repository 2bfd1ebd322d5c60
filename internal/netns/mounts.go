package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// MountNS is a persistent mount namespace of the run, kept alive by a bind
// mount of its namespace file under the run's state directory
// (<StateRoot>/<prefix>/mnt/<prefix>-<short>). Mounts made inside it (a
// kubelet's volumes, a node's private /run) stay inside: its propagation is
// private. Close and Cleanup unmount the file, which frees the namespace
// once no process uses it.
type MountNS struct {
	Name string
	// Path is the namespace file, for nsenter --mount=Path.
	Path string
}

func mountDir(stateDir string) string { return filepath.Join(stateDir, "mnt") }

// AddMountNS creates a mount namespace, a private copy of the caller's.
func (r *Registry) AddMountNS(ctx context.Context, short string) (*MountNS, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, errors.New("netns: registry is closed")
	}
	if err := os.MkdirAll(mountDir(r.StateDir()), 0o755); err != nil {
		return nil, err
	}
	m := &MountNS{Name: r.prefix + "-" + short, Path: filepath.Join(mountDir(r.StateDir()), r.prefix+"-"+short)}
	if err := os.WriteFile(m.Path, nil, 0o600); err != nil {
		return nil, err
	}
	if _, err := run(ctx, "unshare", "--mount="+m.Path, "--propagation", "private", "true"); err != nil {
		_ = os.Remove(m.Path)
		return nil, fmt.Errorf("netns: mount namespace %s: %w", m.Name, err)
	}
	r.mu.Lock()
	r.mounts = append(r.mounts, m)
	r.mu.Unlock()
	return m, nil
}

// Run executes a command inside the mount namespace (and the caller's
// network namespace).
func (m *MountNS) Run(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "nsenter", append([]string{"--mount=" + m.Path, "--"}, args...)...)
}

// unmountAll unmounts every mount namespace file of a run's state directory.
func unmountAll(stateDir string) error {
	entries, err := os.ReadDir(mountDir(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(mountDir(stateDir), e.Name())
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("netns: unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// mountedUnder lists the mount points below dir in the caller's mount
// namespace (for Leftovers).
func mountedUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}
