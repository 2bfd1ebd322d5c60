package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CgroupRoot is where the cgroup hierarchies are mounted.
const CgroupRoot = "/sys/fs/cgroup"

// Cgroup is a cgroup of the run, /<prefix>-<short>, made in every
// hierarchy: a kubelet's cgroupRoot, say. Close and Cleanup end every
// process left in it or below it and remove the folders.
type Cgroup struct {
	// Name is the path below each hierarchy's root, "/<prefix>-<short>".
	Name string
}

// hierarchies lists the mounted cgroup hierarchies (v1 controllers and the
// unified v2 one of a hybrid layout, or the v2 root alone).
func hierarchies() []string {
	if _, err := os.Stat(filepath.Join(CgroupRoot, "cgroup.controllers")); err == nil {
		return []string{CgroupRoot} // cgroup v2 only
	}
	entries, _ := os.ReadDir(CgroupRoot)
	var out []string
	for _, e := range entries {
		p := filepath.Join(CgroupRoot, e.Name())
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

// AddCgroup creates /<prefix>-<short> in every hierarchy. In the cpuset
// hierarchy it inherits the parent's CPUs and memory nodes, which a new
// cpuset does not by itself.
func (r *Registry) AddCgroup(short string) (*Cgroup, error) {
	c := &Cgroup{Name: "/" + r.prefix + "-" + short}
	for _, h := range hierarchies() {
		dir := filepath.Join(h, c.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("netns: cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return nil, err
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return nil, fmt.Errorf("netns: cgroup %s/%s: %w", dir, f, err)
				}
			}
		}
	}
	r.mu.Lock()
	r.cgroups = append(r.cgroups, c)
	r.mu.Unlock()
	return c, nil
}

// Join moves pid into the cgroup's child sub ("" = the cgroup itself) of
// the hierarchies named ("pids", "freezer", ...): enough to find the
// process and everything it forks again at Close.
func (c *Cgroup) Join(pid int, sub string, hierarchyNames ...string) error {
	for _, name := range hierarchyNames {
		dir := filepath.Join(CgroupRoot, name, c.Name, sub)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("netns: move %d into %s: %w", pid, dir, err)
		}
	}
	return nil
}

// runCgroups lists the run's cgroup folders in every hierarchy.
func runCgroups(prefix string) []string {
	var out []string
	for _, h := range hierarchies() {
		m, _ := filepath.Glob(filepath.Join(h, prefix+"-*"))
		out = append(out, m...)
	}
	return out
}

// cgroupPIDs lists the processes in dir and every cgroup below it.
func cgroupPIDs(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// removeCgroups ends every process in the run's cgroups (containers a
// kubelet left, say), waits for them to go, and removes the folders,
// deepest first.
func removeCgroups(prefix string) error {
	dirs := runCgroups(prefix)
	self := os.Getpid()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []int
		for _, d := range dirs {
			for _, pid := range cgroupPIDs(d) {
				if pid != self && !slices.Contains(left, pid) {
					left = append(left, pid)
				}
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns: processes %v survive in the cgroups of %s", left, prefix)
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var errs []error
	for _, d := range dirs {
		var sub []string
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- {
			if err := rmdirRetry(sub[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// rmdirRetry removes an empty cgroup; the kernel may report it busy for a
// moment after its last process died.
func rmdirRetry(dir string) error {
	var err error
	for range 50 {
		if err = syscall.Rmdir(dir); err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("netns: remove cgroup %s: %w", dir, err)
}
