package routers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/poll"
)

// BIRD is one running BIRD 2 router in a namespace.
type BIRD struct {
	Config BIRDConfig
	NS     *netns.NS
	// Dir holds bird.conf, the control socket, the PID file and the log.
	Dir  string
	proc *netns.Proc
}

// StartBIRD writes cfg's bird.conf into a fresh directory under the
// registry's state directory, tunes the namespace's kernel and starts bird
// in the foreground in ns. It returns once birdc gets an answer.
func StartBIRD(ctx context.Context, reg *netns.Registry, ns *netns.NS, cfg BIRDConfig) (*BIRD, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkBinary("bird"); err != nil {
		return nil, err
	}
	if err := TuneKernel(ns); err != nil {
		return nil, err
	}
	dir := filepath.Join(reg.StateDir(), "bird-"+cfg.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("routers: %w", err)
	}
	r := &BIRD{Config: cfg, NS: ns, Dir: dir}
	if err := os.WriteFile(r.confPath(), []byte(cfg.conf()), 0o644); err != nil {
		return nil, fmt.Errorf("routers: %w", err)
	}
	p, err := reg.Start(ns, "bird-"+cfg.Name, r.logPath(), nil,
		"bird", "-f", "-c", r.confPath(), "-s", r.socketPath(), "-P", filepath.Join(dir, "bird.pid"))
	if err != nil {
		return nil, err
	}
	r.proc = p
	err = within(ctx, 15*time.Second, func() error {
		if p.Exited() {
			return poll.Stop(fmt.Errorf("routers: BIRD %s exited: %s", cfg.Name, tail(r.logPath())))
		}
		if _, err := os.Stat(r.socketPath()); err != nil {
			return err
		}
		out, err := r.Birdc(ctx, "show status")
		if err == nil && !strings.Contains(out, "Daemon is up and running") {
			err = fmt.Errorf("BIRD %s: %s", cfg.Name, out)
		}
		return err
	})
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

func (r *BIRD) confPath() string   { return filepath.Join(r.Dir, "bird.conf") }
func (r *BIRD) socketPath() string { return filepath.Join(r.Dir, "bird.ctl") }
func (r *BIRD) logPath() string    { return filepath.Join(r.Dir, "bird.log") }

// PID is bird's process ID.
func (r *BIRD) PID() int { return r.proc.PID }

// Birdc runs one birdc command against this router's control socket.
func (r *BIRD) Birdc(ctx context.Context, cmd string) (string, error) {
	args := append([]string{"-s", r.socketPath()}, strings.Fields(cmd)...)
	out, err := exec.CommandContext(ctx, "birdc", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("routers: BIRD %s: birdc %q: %w: %s", r.Config.Name, cmd, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Reconfigure writes cfg as the new bird.conf and tells BIRD to load it;
// BIRD restarts only the protocols whose configuration changed.
func (r *BIRD) Reconfigure(ctx context.Context, cfg BIRDConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if err := os.WriteFile(r.confPath(), []byte(cfg.conf()), 0o644); err != nil {
		return fmt.Errorf("routers: %w", err)
	}
	out, err := r.Birdc(ctx, "configure")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Reconfigured") && !strings.Contains(out, "Reconfiguration in progress") {
		return fmt.Errorf("routers: BIRD %s: configure: %s", r.Config.Name, strings.TrimSpace(out))
	}
	r.Config = cfg
	return nil
}

// Logs returns the end of BIRD's log, for failure messages.
func (r *BIRD) Logs() string {
	return fmt.Sprintf("--- %s bird.log\n%s\n", r.Config.Name, tail(r.logPath()))
}

// Close stops bird by PID.
func (r *BIRD) Close() error {
	if r.proc == nil {
		return nil
	}
	return r.proc.Stop(5 * time.Second)
}
