package netns

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one process the run started, tracked by PID.
type Proc struct {
	Name string
	PID  int
	Cmd  *exec.Cmd

	pidFile string
	netns   string // the namespace it was started in ("" for the caller's)
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// Start runs args inside the namespace (ns nil: in the caller's namespace)
// with output appended to logPath ("" discards it), and tracks it by PID.
func (r *Registry) Start(ns *NS, name, logPath string, env []string, args ...string) (*Proc, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, errors.New("netns: registry is closed")
	}
	if ns != nil {
		args = append([]string{"ip", "netns", "exec", ns.Name}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out := io.Discard
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("netns: log for %s: %w", name, err)
		}
		defer f.Close() //nolint:errcheck // the child holds its own descriptor
		out = f
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group, so a signal to the test process's group never reaches it twice.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netns: start %s: %w", name, err)
	}
	p := &Proc{Name: name, PID: cmd.Process.Pid, Cmd: cmd, done: make(chan struct{})}
	if ns != nil {
		p.netns = ns.Name
	}
	dir := filepath.Join(r.StateDir(), "pids")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		p.pidFile = filepath.Join(dir, fmt.Sprintf("%d", p.PID))
		_ = os.WriteFile(p.pidFile, []byte(fmt.Sprintf("%d %d %s\n", p.PID, startTime(p.PID), name)), 0o644)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	return p, nil
}

// Signal sends sig to the process (SIGSTOP, SIGCONT, SIGTERM, ...).
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("%s (pid %d) has exited", p.Name, p.PID)
	}
	return syscall.Kill(p.PID, sig)
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process ends.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to end and returns its exit error.
func (p *Proc) Wait() error {
	<-p.done
	return p.waitErr
}

// Stop sends SIGTERM (after SIGCONT, in case it was stopped), waits up to
// grace, then SIGKILLs. It returns nil once the process is gone.
func (p *Proc) Stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		if !p.Exited() {
			_ = syscall.Kill(p.PID, syscall.SIGCONT)
			_ = syscall.Kill(p.PID, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(grace):
				_ = syscall.Kill(p.PID, syscall.SIGKILL)
				select {
				case <-p.done:
				case <-time.After(10 * time.Second):
					err = fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.PID)
				}
			}
		}
		if p.pidFile != "" {
			_ = os.Remove(p.pidFile)
		}
	})
	return err
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() error {
	if !p.Exited() {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
	<-p.done
	return p.Stop(0)
}

// startTime is the process start time in clock ticks (field 22 of /proc/pid/stat),
// which tells a live tracked process from a later one that reused its PID.
func startTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

type pidRecord struct {
	pid   int
	start uint64
	name  string
}

func (p pidRecord) alive() bool { return p.start != 0 && startTime(p.pid) == p.start }

func readPIDFiles(stateDir string) []pidRecord {
	entries, _ := os.ReadDir(filepath.Join(stateDir, "pids"))
	var recs []pidRecord
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(stateDir, "pids", e.Name()))
		if err != nil {
			continue
		}
		var r pidRecord
		if _, err := fmt.Sscanf(string(b), "%d %d %s", &r.pid, &r.start, &r.name); err == nil {
			recs = append(recs, r)
		}
	}
	return recs
}
