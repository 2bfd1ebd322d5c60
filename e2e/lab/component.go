package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
)

// ErrNotRunning means the component has no live process.
var ErrNotRunning = errors.New("component is not running")

// ComponentSpec says how to run a program: a binary, its arguments and extra
// environment ("KEY=value"). In Args, {node}, {kubeconfig}, {nodeIPv4} and
// {nodeIPv6} are replaced by the component's node name, kubeconfig path and
// node addresses ({kubeconfig} only for the controller).
type ComponentSpec struct {
	Binary string
	Args   []string
	Env    []string
}

// Component is a lab process that tests can kill, stop, continue and
// restart: the Herald controller, a speaker, a node's kube-proxy. Every
// start appends to the same log file.
type Component struct {
	Name string
	// NS is the namespace it runs in (nil: the host namespace).
	NS      *netns.NS
	Spec    ComponentSpec
	LogPath string

	reg  *netns.Registry
	mu   sync.Mutex
	proc *netns.Proc
}

func newComponent(reg *netns.Registry, logDir, name string, ns *netns.NS, spec ComponentSpec) *Component {
	return &Component{Name: name, NS: ns, Spec: spec, LogPath: filepath.Join(logDir, name+".log"), reg: reg}
}

// expand replaces the placeholders of ComponentSpec.Args.
func expand(args []string, vars map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		for k, v := range vars {
			a = strings.ReplaceAll(a, "{"+k+"}", v)
		}
		out[i] = a
	}
	return out
}

// Start runs the component unless it is already running.
func (c *Component) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil && !c.proc.Exited() {
		return fmt.Errorf("%s already runs as pid %d", c.Name, c.proc.PID)
	}
	if f, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		_, _ = fmt.Fprintf(f, "--- herald-lab: starting %s at %s ---\n", c.Name, time.Now().Format(time.RFC3339Nano))
		_ = f.Close()
	}
	p, err := c.reg.Start(c.NS, c.Name, c.LogPath, c.Spec.Env, append([]string{c.Spec.Binary}, c.Spec.Args...)...)
	if err != nil {
		return err
	}
	c.proc = p
	return nil
}

// Proc is the current process (nil before the first Start).
func (c *Component) Proc() *netns.Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc
}

// Running reports whether the process is alive (stopped with SIGSTOP counts as alive).
func (c *Component) Running() bool {
	p := c.Proc()
	return p != nil && !p.Exited()
}

func (c *Component) live() (*netns.Proc, error) {
	p := c.Proc()
	if p == nil || p.Exited() {
		return nil, fmt.Errorf("%s: %w", c.Name, ErrNotRunning)
	}
	return p, nil
}

// Kill sends SIGKILL and waits until the process is gone.
func (c *Component) Kill() error {
	p, err := c.live()
	if err != nil {
		return err
	}
	return p.Kill()
}

// Terminate sends SIGTERM and waits up to grace for the process to exit,
// then SIGKILLs it. A paused process is continued first so it can exit.
func (c *Component) Terminate(grace time.Duration) error {
	p, err := c.live()
	if err != nil {
		return err
	}
	return p.Stop(grace)
}

// Pause sends SIGSTOP: the process hangs, its sockets stay open.
func (c *Component) Pause() error { return c.signal(syscall.SIGSTOP) }

// Resume sends SIGCONT.
func (c *Component) Resume() error { return c.signal(syscall.SIGCONT) }

func (c *Component) signal(sig syscall.Signal) error {
	p, err := c.live()
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

// Restart terminates the component (if running, grace 5 s) and starts it again.
func (c *Component) Restart() error {
	if c.Running() {
		if err := c.Terminate(5 * time.Second); err != nil {
			return err
		}
	}
	return c.Start()
}

// Stop terminates the component if it runs; it is not an error if it does not.
func (c *Component) Stop() error {
	if !c.Running() {
		return nil
	}
	return c.Terminate(5 * time.Second)
}

// LogTail returns the last n lines of the component's log.
func (c *Component) LogTail(n int) string { return testenv.TailFile(c.LogPath, n) }
