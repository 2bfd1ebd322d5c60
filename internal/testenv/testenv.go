// Package testenv runs a real Kubernetes control plane for tests and the lab:
// etcd, kube-apiserver, kube-controller-manager and optionally kube-scheduler,
// as processes on loopback with free ports and a private directory, built by
// hack/build-kube.sh. It installs the CRDs in config/crd and hands back an
// admin *rest.Config and kubeconfig. Every process is tracked by PID through
// internal/netns and ended by Stop (also when a test fails).
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
)

// Env is a running control plane.
type Env struct {
	// Config is an admin (system:masters) client config for Server.
	// QPS and Burst are raised, since this server serves one test.
	Config *rest.Config
	// Kubeconfig is a file holding the same admin credentials.
	Kubeconfig string
	// Server is the API server's URL, https://127.0.0.1:<port>.
	Server string
	// BinDir holds the Kubernetes binaries (kubectl, kube-proxy, ...).
	BinDir string
	// Dir holds certificates, etcd data, kubeconfigs and logs/<component>.log.
	Dir string
	// StartupTime is how long StartProcess took until everything was ready.
	StartupTime time.Duration

	pki      *pki
	reg      *netns.Registry
	ownReg   bool
	procs    []*netns.Proc
	apiArgs  []string // kube-apiserver's command line, for RestartAPIServer
	stopOnce sync.Once
}

// Start runs a control plane for the test and stops it in t.Cleanup. It fails
// the test when the binaries are missing (run `make kube`) or the control
// plane does not become ready; on failure it logs the tail of each component's log.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := StartProcess(ctx, dir, opts...)
	if err != nil {
		t.Fatalf("testenv: control plane did not start: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
				if tail := env.LogTail(c, 15); tail != "" {
					t.Logf("last lines of %s.log:\n%s", c, tail)
				}
			}
		}
		env.Stop()
	})
	return env
}

// StartProcess runs a control plane with its files under dir and returns once
// the API server is ready, the CRDs are established and (with the controller
// manager) the default ServiceAccount exists. On error nothing is left running.
func StartProcess(ctx context.Context, dir string, opts ...Option) (_ *Env, err error) {
	begin := time.Now()
	o := buildOptions(opts)
	e := &Env{Dir: dir, BinDir: o.BinDir, reg: o.Registry}
	if e.BinDir == "" {
		if e.BinDir, err = BinDir(); err != nil {
			return nil, err
		}
	} else if err := checkBinaries(e.BinDir); err != nil {
		return nil, err
	}
	if e.reg == nil {
		e.reg, e.ownReg = netns.New(netns.UniquePrefix(), o.Log), true
		// Lets `herald-lab down` (and the next lab) remove these processes if
		// this one dies without Stop. Without root there is no state directory.
		_ = e.reg.WriteOwner()
	}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if e.pki, err = writePKI(filepath.Join(dir, "pki")); err != nil {
		return nil, fmt.Errorf("testenv: certificates: %w", err)
	}
	pp, err := testkit.FreePorts(3)
	if err != nil {
		return nil, err
	}
	p := ports{etcdClient: pp[0], etcdPeer: pp[1], apiserver: pp[2]}
	e.Server = "https://127.0.0.1:" + strconv.Itoa(p.apiserver)
	e.Config = &rest.Config{
		Host:            e.Server,
		TLSClientConfig: rest.TLSClientConfig{CAFile: e.pki.CACert, CertFile: e.pki.AdminCert, KeyFile: e.pki.AdminKey},
		QPS:             1000,
		Burst:           2000,
	}
	e.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := e.WriteKubeconfig(e.Kubeconfig, e.Server); err != nil {
		return nil, err
	}

	// The API server retries etcd until it answers, so both start at once.
	if err := e.start("etcd", etcdArgs(dir, p)); err != nil {
		return nil, err
	}
	e.apiArgs = append(apiserverArgs(e.pki, p, o.ServiceAccounts), o.APIServerArgs...)
	if err := e.start("kube-apiserver", e.apiArgs); err != nil {
		return nil, err
	}
	if err := e.waitAPIServer(ctx); err != nil {
		return nil, err
	}
	o.Log.Info("kube-apiserver ready", "server", e.Server, "after", time.Since(begin).Round(time.Millisecond))
	// The controller manager and scheduler give up if the API server is not
	// healthy soon after they start, so they start only now.
	if !o.NoControllerManager {
		if err := e.start("kube-controller-manager", append(controllerManagerArgs(e.pki, e.Kubeconfig), o.ControllerManagerArgs...)); err != nil {
			return nil, err
		}
	}
	if o.Scheduler {
		if err := e.start("kube-scheduler", append(schedulerArgs(e.Kubeconfig), o.SchedulerArgs...)); err != nil {
			return nil, err
		}
	}
	if o.CRDDir != NoCRDs {
		crdDir := o.CRDDir
		if crdDir == "" {
			root, err := RepoRoot()
			if err != nil {
				return nil, err
			}
			crdDir = filepath.Join(root, "config", "crd")
		}
		names, err := InstallCRDs(ctx, e.Config, crdDir)
		if err != nil {
			return nil, err
		}
		o.Log.Info("CRDs established", "count", len(names), "dir", crdDir)
	}
	if !o.NoControllerManager {
		cs, err := kubernetes.NewForConfig(e.Config)
		if err != nil {
			return nil, err
		}
		// The serviceaccount controller creating default/default proves the
		// controller manager runs and talks to the API server.
		if err := e.waitFor(ctx, "kube-controller-manager (default ServiceAccount)", func(ctx context.Context) bool {
			_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1GetOptions)
			return err == nil
		}); err != nil {
			return nil, err
		}
	}
	e.StartupTime = time.Since(begin)
	o.Log.Info("control plane ready", "after", e.StartupTime.Round(time.Millisecond))
	return e, nil
}

func (e *Env) start(name string, args []string) error {
	proc, err := e.reg.Start(nil, name, e.logPath(name), nil, append([]string{filepath.Join(e.BinDir, name)}, args...)...)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	e.procs = append(e.procs, proc)
	return nil
}

// waitFor polls cond every 50 ms until it holds, ctx ends, or a component exits.
func (e *Env) waitFor(ctx context.Context, what string, cond func(context.Context) bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok := cond(cctx)
		cancel()
		if ok {
			return nil
		}
		for _, p := range e.procs {
			if p.Exited() {
				//nolint:errorlint // nil after exit status 0, which %w would print as %!w(<nil>)
				return fmt.Errorf("testenv: waiting for %s: %s exited: %v\n%s", what, p.Name, p.Wait(), e.LogTail(p.Name, 20))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitAPIServer waits until kube-apiserver answers /readyz.
func (e *Env) waitAPIServer(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	return e.waitFor(ctx, "kube-apiserver /readyz", func(ctx context.Context) bool {
		return cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error() == nil
	})
}

// APIServer is the running kube-apiserver, for tests that take it away
// (Signal SIGSTOP/SIGCONT, Kill) to see what Herald does without it.
func (e *Env) APIServer() *netns.Proc {
	for i := len(e.procs) - 1; i >= 0; i-- {
		if e.procs[i].Name == "kube-apiserver" {
			return e.procs[i]
		}
	}
	return nil
}

// RestartAPIServer starts kube-apiserver again, as it was (same port,
// certificates and etcd), after a test killed it, and waits until it is
// ready.
func (e *Env) RestartAPIServer(ctx context.Context) error {
	if p := e.APIServer(); p != nil && !p.Exited() {
		return fmt.Errorf("testenv: kube-apiserver (pid %d) still runs", p.PID)
	}
	e.procs = slices.DeleteFunc(e.procs, func(p *netns.Proc) bool { return p.Name == "kube-apiserver" })
	if err := e.start("kube-apiserver", e.apiArgs); err != nil {
		return err
	}
	return e.waitAPIServer(ctx)
}

// Stop ends every component by PID, newest first. It is safe to call twice.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		for i := len(e.procs) - 1; i >= 0; i-- {
			_ = e.procs[i].Stop(5 * time.Second)
		}
		if e.ownReg {
			_ = e.reg.Close()
		}
	})
}

// Procs lists the running components (etcd, kube-apiserver, ...), for tests
// that check every one of them ended.
func (e *Env) Procs() []*netns.Proc { return append([]*netns.Proc(nil), e.procs...) }

// WriteKubeconfig writes the admin credentials for server to path; the lab
// uses it to point processes in a namespace at a local proxy of the API server.
func (e *Env) WriteKubeconfig(path, server string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["herald"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: e.pki.CACert}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: e.pki.AdminCert, ClientKey: e.pki.AdminKey}
	cfg.Contexts["herald"] = &clientcmdapi.Context{Cluster: "herald", AuthInfo: "admin"}
	cfg.CurrentContext = "herald"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("testenv: write kubeconfig: %w", err)
	}
	return nil
}

// LogTail returns the last n lines of a component's log ("" if there is none).
func (e *Env) LogTail(component string, n int) string {
	return TailFile(e.logPath(component), n)
}

func (e *Env) logPath(name string) string { return filepath.Join(e.Dir, "logs", name+".log") }

// TailFile returns the last n lines of a file ("" if it cannot be read),
// for failure messages that show a process's log.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var errNotEstablished = errors.New("not established")
