package routers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/poll"
)

// FRRDaemonDir is where Debian installs the FRR daemons.
const FRRDaemonDir = "/usr/lib/frr"

// frrDaemons start in this order (zebra first: the others connect to it)
// and stop in reverse.
var frrDaemons = []string{"zebra", "bfdd", "staticd", "bgpd"}

// FRR is one running FRR router: zebra, bfdd, staticd and bgpd in a namespace.
type FRR struct {
	Config FRRConfig
	NS     *netns.NS
	// Dir holds the router's configs, PID files, vty sockets and logs.
	Dir string

	procs []*netns.Proc
}

// StartFRR writes cfg's files into a fresh directory under the registry's
// state directory, tunes the namespace's kernel and starts the daemons in ns.
// It returns once every daemon answers on its vty socket.
//
// The daemons run as the Debian user "frr": FRR refuses to run as a user
// outside the "frrvty" group, and root is not in it on this host. They keep
// the capabilities they need (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN).
func StartFRR(ctx context.Context, reg *netns.Registry, ns *netns.NS, cfg FRRConfig) (*FRR, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkBinary(filepath.Join(FRRDaemonDir, "bgpd")); err != nil {
		return nil, err
	}
	if err := TuneKernel(ns); err != nil {
		return nil, err
	}
	dir := filepath.Join(reg.StateDir(), "frr-"+cfg.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("routers: %w", err)
	}
	r := &FRR{Config: cfg, NS: ns, Dir: dir}
	files := map[string]string{
		"zebra.conf":   cfg.zebraConf(),
		"bfdd.conf":    cfg.bfddConf(),
		"staticd.conf": cfg.staticdConf(),
		"bgpd.conf":    cfg.bgpdConf(),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o640); err != nil {
			return nil, fmt.Errorf("routers: %w", err)
		}
	}
	if err := chownFRR(dir); err != nil {
		return nil, err
	}
	for _, d := range frrDaemons {
		args := []string{
			filepath.Join(FRRDaemonDir, d),
			"-u", "frr", "-g", "frr",
			"-f", filepath.Join(dir, d+".conf"),
			"-i", filepath.Join(dir, d+".pid"),
			"--vty_socket", dir,
			"-z", filepath.Join(dir, "zserv.api"),
			"-P", "0", // no TCP vty
		}
		p, err := reg.Start(ns, "frr-"+cfg.Name+"-"+d, filepath.Join(dir, d+".log"), nil, args...)
		if err != nil {
			_ = r.stop() // the start failure is the one to report
			return nil, err
		}
		r.procs = append(r.procs, p)
		if err := r.waitReady(ctx, d, p); err != nil {
			_ = r.stop() // as above
			return nil, err
		}
	}
	return r, nil
}

// waitReady waits until daemon d has created its vty socket, or fails with
// the daemon's log if it exits first.
func (r *FRR) waitReady(ctx context.Context, d string, p *netns.Proc) error {
	sock := filepath.Join(r.Dir, d+".vty")
	err := within(ctx, 15*time.Second, func() error {
		if p.Exited() {
			return poll.Stop(fmt.Errorf("routers: FRR %s: %s exited: %s", r.Config.Name, d, tail(filepath.Join(r.Dir, d+".log"))))
		}
		_, err := os.Stat(sock)
		return err
	})
	if err != nil {
		return err
	}
	// The socket exists before the daemon has read its config; a query
	// through vtysh returns only once it serves commands.
	_, err = r.vtysh(ctx, d, "show version")
	return err
}

// Vtysh runs commands in one vtysh session against this router's daemons
// ("configure terminal" and the following commands work as typed).
func (r *FRR) Vtysh(ctx context.Context, cmds ...string) (string, error) {
	return r.vtysh(ctx, "", cmds...)
}

func (r *FRR) vtysh(ctx context.Context, daemon string, cmds ...string) (string, error) {
	args := []string{"--vty_socket", r.Dir}
	if daemon != "" {
		args = append(args, "-d", daemon)
	}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.CommandContext(ctx, "vtysh", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("routers: FRR %s: vtysh %q: %w: %s", r.Config.Name, cmds, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Configure applies configuration commands at run time, e.g.
// Configure(ctx, "router bgp 64512", "neighbor 10.0.0.9 remote-as 64513").
func (r *FRR) Configure(ctx context.Context, cmds ...string) error {
	_, err := r.Vtysh(ctx, append([]string{"configure terminal"}, cmds...)...)
	return err
}

// Signal sends sig to one of the router's daemons ("bgpd", "bfdd", ...):
// SIGSTOP freezes it (its sessions stay open, it reads nothing), SIGCONT
// thaws it.
func (r *FRR) Signal(daemon string, sig syscall.Signal) error {
	for i, d := range frrDaemons {
		if d == daemon && i < len(r.procs) {
			return r.procs[i].Signal(sig)
		}
	}
	return fmt.Errorf("routers: FRR %s has no daemon %q", r.Config.Name, daemon)
}

// PIDs maps each daemon to its PID.
func (r *FRR) PIDs() map[string]int {
	m := map[string]int{}
	for i, p := range r.procs {
		m[frrDaemons[i]] = p.PID
	}
	return m
}

// Logs returns the end of every daemon's log, for failure messages.
func (r *FRR) Logs() string {
	var b strings.Builder
	for _, d := range frrDaemons {
		fmt.Fprintf(&b, "--- %s %s.log\n%s\n", r.Config.Name, d, tail(filepath.Join(r.Dir, d+".log")))
	}
	return b.String()
}

// Close stops the daemons by PID (bgpd first, zebra last, so bgpd can send
// its Cease) and removes FRR's per-process scratch directories.
func (r *FRR) Close() error {
	return r.stop()
}

func (r *FRR) stop() error {
	var errs []error
	for i := len(r.procs) - 1; i >= 0; i-- {
		p := r.procs[i]
		if err := p.Stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
		// FRR keeps crash logs in /var/tmp/frr/<daemon>.<pid>; a clean exit
		// removes the directory, a killed daemon leaves it.
		_ = os.RemoveAll(fmt.Sprintf("/var/tmp/frr/%s.%d", frrDaemons[i], p.PID))
	}
	r.procs = nil
	return errors.Join(errs...)
}

// chownFRR gives the directory and its files to the frr user, which the
// daemons run as after start.
func chownFRR(dir string) error {
	u, err := user.Lookup("frr")
	if err != nil {
		return fmt.Errorf("routers: user frr (from the Debian frr package): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	})
}
