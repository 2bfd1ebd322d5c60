// Command herald-speaker runs on every node (host network) and makes the
// outside world send the traffic of Herald's LoadBalancer IPs to the
// cluster: in Layer 2 mode one node per IP, elected without shared state
// through memberlist, answers ARP and NDP; in BGP mode every eligible node
// advertises the IP to its peers. See docs/speaker.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/speaker/announce"
	"github.com/heraldlb/herald/speaker/bgp"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/heraldlb/herald/speaker/options"
	"github.com/heraldlb/herald/speaker/presence"
	"github.com/heraldlb/herald/speaker/reconcile"
	"github.com/heraldlb/herald/speaker/status"
)

func main() {
	opts, err := options.Parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-speaker:", err)
		os.Exit(2)
	}
	level, _ := k8s.ParseLevel(opts.LogLevel)
	log := k8s.NewLogger(os.Stderr, level).With("node", opts.NodeName)
	if err := run(ctrl.SetupSignalHandler(), opts, log); err != nil {
		log.Error("herald-speaker failed", "err", err)
		os.Exit(1)
	}
}

// run wires the speaker and runs it until ctx ends (SIGTERM), then stops it
// gracefully: hand-over, leave, BGP withdrawal, final status.
func run(ctx context.Context, opts options.Options, log *slog.Logger) error {
	crLog := k8s.UseLogger(log)
	cfg, err := k8s.RESTConfig(opts.Kubeconfig, float32(opts.KubeAPIQPS), opts.KubeAPIBurst, "herald-speaker")
	if err != nil {
		return err
	}
	leaseSelector := labels.SelectorFromSet(presence.Labels)
	// The metrics endpoint is added once the node address is known.
	mgr, err := k8s.NewManager(cfg, k8s.ManagerOptions{
		Logger:                 crLog,
		MetricsBindAddress:     "0",
		HealthProbeBindAddress: opts.HealthProbeBindAddress,
		ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{v1beta1.Namespace: {}}, Label: leaseSelector},
			// Every speaker caches every slice and Node: only what it reads.
			&discoveryv1.EndpointSlice{}: {Transform: reconcile.SliceDigest},
			&corev1.Node{}:               {Transform: reconcile.NodeDigest},
			&corev1.Service{}:            {Transform: reconcile.ServiceDigest},
		},
	})
	if err != nil {
		return err
	}
	// The probes answer from the start; until the speaker runs they say
	// what it waits for.
	var probes speakerProbes
	probes.waiting("connecting to the API server")
	if opts.HealthProbeBindAddress != "0" {
		if err := mgr.AddHealthzCheck("speaker-loop", probes.alive); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("speaker", probes.ready); err != nil {
			return err
		}
	}
	events := &k8s.EventSink{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Controller: "herald-speaker", Log: log.With("component", "events")}
	if err := mgr.Add(events); err != nil {
		return err
	}
	// The manager (cache, metrics, Events) outlives the speaker's graceful
	// stop, so it has its own context, ended last. If it fails (its probe
	// port cannot be bound, say), the speaker stops too, with its error.
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	mgrCtx, stopMgr := context.WithCancel(context.WithoutCancel(ctx))
	mgrDone := make(chan error, 1)
	go func() {
		err := mgr.Start(mgrCtx)
		if err != nil {
			fail(fmt.Errorf("manager: %w", err))
		}
		mgrDone <- err
	}()
	defer func() {
		stopMgr()
		if err := <-mgrDone; err != nil {
			log.Error("manager stopped with an error", "err", err)
		}
	}()

	probes.waiting("waiting for this node's Node object")
	node, err := reconcile.WaitForNode(ctx, mgr.GetCache(), opts.NodeName, log)
	if err != nil {
		return err
	}
	nodeIP, err := bindAddress(opts.NodeIP, node.Status.Addresses)
	if err != nil {
		return err
	}
	metricsAddr, err := addMetricsServer(mgr, opts.Metrics, nodeIP, node, events, log)
	if err != nil {
		return err
	}
	probes.waiting("waiting for the memberlist key Secret " + v1beta1.Namespace + "/" + opts.MemberlistSecret)
	key, err := reconcile.WaitForMemberlistKey(ctx, mgr.GetCache(), opts.MemberlistSecret, log)
	if err != nil {
		return err
	}

	inbox := reconcile.NewInbox()
	reg := ctrlmetrics.Registry
	ml, err := members.New(members.Options{
		Name: opts.NodeName, BindAddr: nodeIP, Port: opts.MemberlistPort, Key: key,
		Timings: opts.Timings(), Logger: log, Registerer: reg, OnMessage: inbox.Message,
	})
	if err != nil {
		return err
	}
	l2, err := announce.New(announce.Options{Logger: log.With("component", "layer2"), Registerer: reg, OnChange: inbox.L2Changed, OnLinkChange: inbox.LinksChanged})
	if err != nil {
		return err
	}
	router := bgp.New(bgp.Options{Logger: log.With("component", "bgp"), Registerer: reg, OnEvent: inbox.BGPEvent})
	// SpeakerStatus and Lease reads are not cached: only this node's
	// objects matter.
	direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	lease, err := presence.NewHeartbeat(presence.HeartbeatOptions{
		Client: direct, Node: opts.NodeName, NodeUID: node.UID, Duration: opts.LeaseDuration,
		Healthy: func() error {
			if err := ml.Err(); err != nil {
				return err
			}
			if len(ml.Alive()) == 0 {
				return errors.New("memberlist is not running yet")
			}
			return nil
		},
		Log: log.With("component", "presence"),
	})
	if err != nil {
		return err
	}
	spk, err := reconcile.New(reconcile.Options{
		Node: opts.NodeName, NodeUID: node.UID, NodeIP: nodeIP, Class: opts.LBClass,
		Cache:            mgr.GetCache(),
		MemberlistSecret: opts.MemberlistSecret,
		Events:           events,
		Members:          ml, L2: l2, BGP: router, Inbox: inbox, Presence: lease,
		GracefulShutdown: opts.BGPGracefulShutdown,
		ShutdownTimeout:  opts.ShutdownTimeout,
		Log:              log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	probes.run(spk)
	writer, err := status.New(status.Options{
		Client: direct, Node: opts.NodeName, NodeUID: node.UID,
		Source: spk.Status, Announcements: spk.Announcements, Changed: spk.StatusChanged(), Log: log,
	})
	if err != nil {
		return err
	}
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan error, 1)
	go func() { writerDone <- writer.Run(writerCtx) }()

	log.Info("starting", "nodeIP", nodeIP, "memberlistPort", opts.MemberlistPort, "lbClass", opts.LBClass, "metrics", metricsAddr, "metricsSecure", opts.Metrics.Secure)
	runErr := spk.Run(ctx)
	if cause := context.Cause(ctx); runErr == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		runErr = cause
	}
	stopWriter()
	// Always nil: Run logs its failed writes itself.
	_ = <-writerDone
	final, cancel := context.WithTimeout(context.Background(), time.Second) // after ShutdownTimeout, within the grace period
	defer cancel()
	if err := writer.Sync(final); err != nil {
		log.Warn("final SpeakerStatus write failed", "err", err)
	}
	return runErr
}

// reasonMetricsUnavailable is the Event on the Node when the metrics
// endpoint cannot start.
const reasonMetricsUnavailable = "MetricsUnavailable"

// addMetricsServer serves /metrics on m's address, on the node address
// when it names no host, and returns that address ("0": none). An endpoint
// that cannot start is reported (log, Event on the Node) and tried again;
// the speaker goes on announcing meanwhile.
func addMetricsServer(mgr manager.Manager, m k8s.MetricsFlags, nodeIP netip.Addr, node *corev1.Node, events k8s.EventRecorder, log *slog.Logger) (string, error) {
	if !m.Enabled() {
		return "0", nil
	}
	addr, err := k8s.OnAddress(m.BindAddress, nodeIP)
	if err != nil {
		return "", fmt.Errorf("--metrics-bind-address: %w", err)
	}
	m.BindAddress = addr
	if _, err := k8s.NewMetricsServer(m, mgr.GetConfig(), mgr.GetHTTPClient()); err != nil {
		return "", err // wrong settings fail at once, not on every retry
	}
	reported := ""
	return addr, mgr.Add(&k8s.RetryingMetricsServer{
		Flags: m, Config: mgr.GetConfig(), HTTPClient: mgr.GetHTTPClient(),
		Failed: func(err error) {
			if err.Error() == reported {
				return // said once; the retries are quiet
			}
			reported = err.Error()
			log.Error("metrics endpoint unavailable, retrying", "address", addr, "err", err)
			events.Warning(node, reasonMetricsUnavailable, "Serve",
				fmt.Sprintf("herald-speaker on %s cannot serve its metrics on %s, retrying (it announces as usual): %v", node.Name, addr, err))
		},
	})
}

// bindAddress is --node-ip, else the Node's first InternalIP.
func bindAddress(flagIP string, addrs []corev1.NodeAddress) (netip.Addr, error) {
	if flagIP != "" {
		return netip.ParseAddr(flagIP)
	}
	for _, a := range addrs {
		if a.Type == corev1.NodeInternalIP {
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, errors.New("the Node has no InternalIP: set --node-ip")
}

// speakerProbes answer /healthz and /readyz: before the speaker runs, what
// it waits for; then the speaker's own checks.
type speakerProbes struct {
	mu   sync.Mutex
	spk  *reconcile.Speaker
	wait string
}

func (p *speakerProbes) waiting(what string) {
	p.mu.Lock()
	p.wait = what
	p.mu.Unlock()
}

func (p *speakerProbes) run(spk *reconcile.Speaker) {
	p.mu.Lock()
	p.spk = spk
	p.mu.Unlock()
}

func (p *speakerProbes) alive(*http.Request) error {
	p.mu.Lock()
	spk := p.spk
	p.mu.Unlock()
	if spk == nil {
		return nil // still starting: readiness says what it waits for
	}
	return spk.Alive()
}

func (p *speakerProbes) ready(*http.Request) error {
	p.mu.Lock()
	spk, wait := p.spk, p.wait
	p.mu.Unlock()
	if spk == nil {
		return errors.New(wait)
	}
	return spk.Ready()
}
