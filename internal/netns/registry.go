// Package netns creates Linux network namespaces, links and processes for the
// lab and for tests that need real links, and removes all of them again.
//
// Every namespace name starts with the registry's prefix, unique per run, so
// parallel runs never meet and a crashed run can be cleaned up by prefix alone.
// Every process is tracked by PID (and its start time, so a recycled PID is
// never signalled) in a state directory, and ended by that PID on Close.
// Requires root.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// StateRoot holds one directory per live run: <StateRoot>/<prefix>/pids/...
const StateRoot = "/run/herald-lab"

// NamePrefix starts every prefix this package makes; CleanupAll matches on it.
const NamePrefix = "hl"

// Registry owns the namespaces and processes of one run.
type Registry struct {
	prefix string
	log    *slog.Logger

	mu         sync.Mutex
	namespaces []*NS
	procs      []*Proc
	mounts     []*MountNS
	cgroups    []*Cgroup
	closed     bool
}

// UniquePrefix returns a short prefix such as "hl3fa9c1", unique per run.
// It is short because interface names are limited to 15 bytes.
func UniquePrefix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return NamePrefix + hex.EncodeToString(b)
}

// New returns a registry for prefix. It does no I/O.
func New(prefix string, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{prefix: prefix, log: log}
}

// Prefix is the run's unique prefix.
func (r *Registry) Prefix() string { return r.prefix }

// StateDir is where the run keeps its PID files and logs.
func (r *Registry) StateDir() string { return filepath.Join(StateRoot, r.prefix) }

// RequireRoot returns an error that says why the caller cannot run without root.
func RequireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root: run as root (make test does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("iproute2 'ip' not found: %w", err)
	}
	return nil
}

// Add creates the namespace <prefix>-<short> with loopback up.
func (r *Registry) Add(ctx context.Context, short string) (*NS, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("netns: registry is closed")
	}
	r.mu.Unlock()
	if err := os.MkdirAll(filepath.Join(r.StateDir(), "pids"), 0o755); err != nil {
		return nil, fmt.Errorf("netns: state dir: %w", err)
	}
	// Every run names its owner, so that `herald-lab down` can tell a
	// crashed run (of a lab, a test, anything) from a live one.
	if _, err := os.Stat(filepath.Join(r.StateDir(), ownerFile)); errors.Is(err, os.ErrNotExist) {
		if err := r.WriteOwner(); err != nil {
			return nil, fmt.Errorf("netns: owner record: %w", err)
		}
	}
	ns := &NS{Name: r.prefix + "-" + short, reg: r}
	if _, err := run(ctx, "ip", "netns", "add", ns.Name); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.namespaces = append(r.namespaces, ns)
	r.mu.Unlock()
	if _, err := ns.Run(ctx, "ip", "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return ns, nil
}

// Veth links namespace a (interface aIf) with namespace b (interface bIf); both ends up.
func (r *Registry) Veth(ctx context.Context, a *NS, aIf string, b *NS, bIf string) error {
	tmp := fmt.Sprintf("%sv%d", r.prefix, time.Now().UnixNano()%100000)
	if _, err := a.Run(ctx, "ip", "link", "add", aIf, "type", "veth", "peer", "name", tmp); err != nil {
		return err
	}
	if _, err := a.Run(ctx, "ip", "link", "set", tmp, "netns", b.Name); err != nil {
		return err
	}
	if _, err := b.Run(ctx, "ip", "link", "set", tmp, "name", bIf); err != nil {
		return err
	}
	if _, err := a.Run(ctx, "ip", "link", "set", aIf, "up"); err != nil {
		return err
	}
	_, err := b.Run(ctx, "ip", "link", "set", bIf, "up")
	return err
}

// Remove deletes one namespace before the run ends (a lab pod going away,
// say): it ends the processes started in it by PID (also one that has not
// entered it yet), then whatever else runs inside, then deletes it.
func (r *Registry) Remove(ctx context.Context, ns *NS) error {
	r.mu.Lock()
	var procs []*Proc
	for _, p := range r.procs {
		if p.netns == ns.Name {
			procs = append(procs, p)
		}
	}
	r.mu.Unlock()
	for _, p := range procs {
		_ = p.Stop(time.Second)
	}
	killNamespacePIDs(ctx, ns.Name)
	_, err := run(ctx, "ip", "netns", "del", ns.Name)
	r.mu.Lock()
	for i, n := range r.namespaces {
		if n == ns {
			r.namespaces = append(r.namespaces[:i], r.namespaces[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
	return err
}

// Close ends every process of the run by PID (SIGTERM, then SIGKILL after a
// grace period) and deletes every namespace. It is safe to call twice.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	procs := append([]*Proc(nil), r.procs...)
	namespaces := append([]*NS(nil), r.namespaces...)
	r.mu.Unlock()

	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(3 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	// What the run's processes started in its cgroups (containers), then
	// its mount namespaces, before the network namespaces they used.
	errs = append(errs, removeCgroups(r.prefix), unmountAll(r.StateDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ns := range namespaces {
		// Processes the run did not start itself (FRR forks, say) are still ours:
		// end whatever is left inside our namespaces before deleting them.
		killNamespacePIDs(ctx, ns.Name)
		if _, err := run(ctx, "ip", "netns", "del", ns.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(r.StateDir()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Leftovers lists namespaces, live tracked processes, cgroups and mounts
// that carry prefix.
// A test calls it after Close to prove the run left nothing behind.
func Leftovers(prefix string) ([]string, error) {
	var left []string
	out, err := run(context.Background(), "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			left = append(left, "namespace "+f[0])
		}
	}
	for _, p := range readPIDFiles(filepath.Join(StateRoot, prefix)) {
		if p.alive() {
			left = append(left, fmt.Sprintf("process %s pid %d", p.name, p.pid))
		}
	}
	for _, c := range runCgroups(prefix) {
		left = append(left, "cgroup "+c)
	}
	for _, m := range mountedUnder(filepath.Join(StateRoot, prefix)) {
		left = append(left, "mount "+m)
	}
	return left, nil
}

// run executes a command and returns its combined output; the error carries the output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
