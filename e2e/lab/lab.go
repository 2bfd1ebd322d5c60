// Package lab is Herald's network lab: a small bare-metal site built from
// network namespaces on one machine, with a real Kubernetes control plane.
//
// Topology (docs/lab.md has the address plan): a LAN segment (a bridge in the
// "lan" namespace) joins N node namespaces, a LAN client, an FRR router and a
// BIRD router; an external client sits behind both routers. Each node runs a
// real kube-proxy (nftables) and reaches the API server through a proxy the
// lab opens inside the node's namespace. The lab plays kubelet: every Pod
// bound to a lab node gets a namespace behind that node with an echo backend
// that names its pod and node, and a Pod status the EndpointSlice controller
// acts on. Herald's controller and speakers are started from any binary as
// Components that tests kill, pause and restart; faults (link cuts,
// partitions, loss) are one call each.
//
// Every namespace and process goes through one internal/netns Registry with a
// per-run prefix: Close removes everything, `herald-lab down` (netns.Cleanup)
// after a crash.
package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
)

// Options configure a lab; the zero value is the standard lab.
type Options struct {
	// Nodes is the number of Kubernetes nodes (default 3, at most 80).
	Nodes int
	// Dir holds the run's files: control plane, kubeconfigs, logs. Default:
	// a new temporary directory, removed by Close unless KeepDir.
	Dir     string
	KeepDir bool
	// EchoCommand runs the pod backend (pod flags are appended). Default:
	// lab-echo, built from this repository with `go build`.
	EchoCommand []string
	// NoRouters leaves FRR and BIRD out (their namespaces and links still exist).
	NoRouters bool
	// NoKubeProxy runs no kube-proxy (API-only tests, scale runs).
	NoKubeProxy bool
	// Kubelet runs every node as a real kubelet with containerd and runc
	// (realnodes.go): pods are containers from images, host-network pods
	// (Herald's speakers) run too, and the lab does not play kubelet.
	// Slower to start than the default, where the lab runs each pod as a
	// process; install tests need it, functional tests do not.
	Kubelet bool
	// Images are image archives (OCI or Docker) loaded into every real
	// node's containerd, besides the lab's own pause and echo images.
	Images []string
	// Testenv adds options to the control plane (CRD folder, extra flags).
	Testenv []testenv.Option
	Log     *slog.Logger
}

// Lab is a running lab.
type Lab struct {
	// Prefix starts every namespace name of this run.
	Prefix string
	Dir    string
	Reg    *netns.Registry
	// Env is the control plane; Env.Kubeconfig is the admin kubeconfig.
	Env  *testenv.Env
	Kube kubernetes.Interface

	// LAN holds the bridge every LAN member is plugged into.
	LAN    *netns.NS
	Nodes  []*Node
	Client *Host // on the LAN, for Layer 2 tests
	Ext    *Host // behind the routers, for BGP tests
	FRR    *Router
	BIRD   *Router

	// StartupTime is how long Start took.
	StartupTime time.Duration

	opts    Options
	log     *slog.Logger
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	kubelet *kubelet
	faults  faults
	// macs names the node of each LAN MAC (NodeOfMAC).
	macsOnce sync.Once
	macs     map[string]string

	realNodes  []*RealNode
	imagePaths []string // loaded into every real node

	metricsReader metricsReader

	mu         sync.Mutex
	components []*Component
	closeOnce  sync.Once
	closeErr   error
}

// ErrTooManyNodes means Options.Nodes does not fit the address plan.
var ErrTooManyNodes = errors.New("lab: at most 80 nodes")

// Start brings a lab up: namespaces and links, control plane, routers,
// nodes, kube-proxies and the pod runner. On error everything already
// started is removed again. ctx bounds the start only.
func Start(ctx context.Context, opts Options) (_ *Lab, err error) {
	begin := time.Now()
	if err := netns.RequireRoot(); err != nil {
		return nil, err
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Nodes < 0 || opts.Nodes > 80 {
		return nil, ErrTooManyNodes
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Kubelet {
		bin, err := testenv.BinDir()
		if err != nil {
			return nil, err
		}
		if err := checkRuntime(bin); err != nil {
			return nil, err
		}
	}
	// A lab whose test binary panicked is still here: remove it first.
	if cleaned, err := CleanupStale(ctx); err != nil {
		opts.Log.Warn("lab: cleaning up crashed labs", "err", err)
	} else if len(cleaned) > 0 {
		opts.Log.Info("lab: removed labs left by crashed runs", "prefixes", cleaned)
	}
	prefix := netns.UniquePrefix()
	l := &Lab{Prefix: prefix, Reg: netns.New(prefix, opts.Log), opts: opts, log: opts.Log, Dir: opts.Dir}
	if err := l.Reg.WriteOwner(); err != nil {
		return nil, err
	}
	if l.Dir == "" {
		if l.Dir, err = os.MkdirTemp("", "herald-lab-"+prefix+"-"); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(l.logDir(), 0o755); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	defer func() {
		if err != nil {
			_ = l.Close()
		}
	}()

	// The control plane takes seconds; the network and routers come up meanwhile.
	type envResult struct {
		env *testenv.Env
		err error
	}
	envc := make(chan envResult, 1)
	go func() {
		topts := []testenv.Option{testenv.WithRegistry(l.Reg), testenv.WithScheduler(), testenv.WithLogger(l.log)}
		if opts.Kubelet {
			// Herald's install brings its CRDs, as for a user.
			topts = append(topts, testenv.WithServiceAccounts(), testenv.WithCRDDir(testenv.NoCRDs))
		}
		topts = append(topts, opts.Testenv...)
		env, err := testenv.StartProcess(ctx, filepath.Join(l.Dir, "kube"), topts...)
		envc <- envResult{env, err}
	}()
	echoc := make(chan error, 1)
	go func() { echoc <- l.prepareEcho(ctx) }()

	netErr := l.buildNetwork(ctx)
	if netErr == nil && !opts.NoRouters {
		netErr = l.startRouters(ctx)
	}
	res := <-envc
	echoErr := <-echoc
	l.Env = res.env
	if err := errors.Join(netErr, res.err, echoErr); err != nil {
		return nil, err
	}
	l.log.Info("lab network and control plane up", "after", time.Since(begin).Round(time.Millisecond))
	if l.Kube, err = kubernetes.NewForConfig(l.Env.Config); err != nil {
		return nil, err
	}
	if err := l.startNodes(ctx, bg); err != nil {
		return nil, err
	}
	l.StartupTime = time.Since(begin)
	l.log.Info("lab ready", "prefix", prefix, "after", l.StartupTime.Round(time.Millisecond))
	return l, nil
}

// startNodes connects each node to the API server, registers it (or has
// its kubelet do so), starts the pod runner (or the real nodes) and the
// kube-proxies and waits for them.
func (l *Lab) startNodes(ctx, bg context.Context) error {
	proxy := &apiProxy{target: l.Env.Server[len("https://"):]}
	for _, n := range l.Nodes {
		if err := os.MkdirAll(filepath.Join(l.Dir, "nodes", n.Name), 0o755); err != nil {
			return err
		}
		if err := proxy.listen(bg, n.NS); err != nil {
			return fmt.Errorf("lab: API server proxy in %s: %w", n.Name, err)
		}
		n.Kubeconfig = filepath.Join(l.Dir, "nodes", n.Name, "kubeconfig")
		if err := l.Env.WriteKubeconfig(n.Kubeconfig, fmt.Sprintf("https://127.0.0.1:%d", APIServerPort)); err != nil {
			return err
		}
		if l.opts.Kubelet {
			// Pods reach the API server through the kubernetes Service (publishAPIServer).
			if err := proxy.listenOn(bg, n.NS, n.IPv4.String()); err != nil {
				return fmt.Errorf("lab: API server proxy in %s: %w", n.Name, err)
			}
			if err := ipBatch(ctx, n.NS, serviceRoutes()...); err != nil {
				return err
			}
			continue
		}
		if err := l.registerNode(ctx, n); err != nil {
			return err
		}
	}
	l.wg.Add(1)
	go func() { defer l.wg.Done(); <-bg.Done(); proxy.wg.Wait() }()
	if l.opts.Kubelet {
		// Herald's install (chart or kustomize) makes its namespace, as for a user.
		if err := l.startRealNodes(ctx); err != nil {
			return err
		}
	} else {
		if err := l.createInstallNamespace(ctx); err != nil {
			return err
		}
		l.kubelet = newKubelet(l, l.opts.EchoCommand)
		ready := make(chan struct{})
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.kubelet.run(bg, ready) }()
		select {
		case <-ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if l.opts.NoKubeProxy {
		return nil
	}
	for _, n := range l.Nodes {
		if err := l.startKubeProxy(n); err != nil {
			return err
		}
	}
	for _, n := range l.Nodes {
		if err := l.waitKubeProxy(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// prepareEcho builds lab-echo unless Options.EchoCommand names a backend;
// for real nodes it builds the pause and echo images instead.
func (l *Lab) prepareEcho(ctx context.Context) error {
	if l.opts.Kubelet {
		paths, err := buildLabImages(ctx, filepath.Join(l.Dir, "images"))
		l.imagePaths = append(paths, l.opts.Images...)
		return err
	}
	if len(l.opts.EchoCommand) > 0 {
		return nil
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(l.Dir, "bin", "lab-echo")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./e2e/lab/cmd/lab-echo")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: build lab-echo: %w: %s", err, out)
	}
	l.opts.EchoCommand = []string{bin}
	return nil
}

func (l *Lab) logDir() string { return filepath.Join(l.Dir, "logs") }

// Node returns the lab node called name, or nil.
func (l *Lab) Node(name string) *Node {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NodeNames lists the nodes' names in order.
func (l *Lab) NodeNames() []string {
	var out []string
	for _, n := range l.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// NodeAddrs returns the nodes' LAN addresses of one family, sorted: of
// the nodes named, or of all. Routers see them as next hops.
func (l *Lab) NodeAddrs(v6 bool, names ...string) []netip.Addr {
	var out []netip.Addr
	for _, n := range l.Nodes {
		if len(names) > 0 && !slices.Contains(names, n.Name) {
			continue
		}
		if v6 {
			out = append(out, n.IPv6)
		} else {
			out = append(out, n.IPv4)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Close ends every process and removes every namespace of the lab, and the
// run directory unless Options.KeepDir. It is safe to call twice.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		l.mu.Lock()
		comps := append([]*Component(nil), l.components...)
		l.mu.Unlock()
		for i := len(comps) - 1; i >= 0; i-- {
			errs = append(errs, comps[i].Stop())
		}
		if l.cancel != nil {
			l.cancel()
		}
		l.wg.Wait()
		for _, n := range l.Nodes {
			if n.KubeProxy != nil {
				errs = append(errs, n.KubeProxy.Stop())
			}
		}
		if l.Env != nil {
			l.Env.Stop()
		}
		errs = append(errs, l.Reg.Close())
		if !l.opts.KeepDir && l.Dir != "" && l.opts.Dir == "" {
			errs = append(errs, os.RemoveAll(l.Dir))
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}
