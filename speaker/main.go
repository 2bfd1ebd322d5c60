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
	"net/netip"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/speaker/announce"
	"github.com/heraldlb/herald/speaker/bgp"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/heraldlb/herald/speaker/reconcile"
	"github.com/heraldlb/herald/speaker/status"
)

func main() {
	opts, err := Parse(os.Args[1:])
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
func run(ctx context.Context, opts Options, log *slog.Logger) error {
	crLog := k8s.UseLogger(log)
	cfg, err := k8s.RESTConfig(opts.Kubeconfig, float32(opts.KubeAPIQPS), opts.KubeAPIBurst, "herald-speaker")
	if err != nil {
		return err
	}
	mgr, err := k8s.NewManager(cfg, k8s.ManagerOptions{
		Logger:                 crLog,
		MetricsBindAddress:     opts.MetricsBindAddress,
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	events := &k8s.EventSink{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Controller: "herald-speaker", Log: log.With("component", "events")}
	if err := mgr.Add(events); err != nil {
		return err
	}
	// The manager (cache, metrics, Events) outlives the speaker's graceful
	// stop, so it has its own context, ended last.
	mgrCtx, stopMgr := context.WithCancel(context.WithoutCancel(ctx))
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	defer func() {
		stopMgr()
		if err := <-mgrDone; err != nil {
			log.Error("manager stopped with an error", "err", err)
		}
	}()

	node, err := reconcile.WaitForNode(ctx, mgr.GetCache(), opts.NodeName, log)
	if err != nil {
		return err
	}
	nodeIP, err := bindAddress(opts.NodeIP, node.Status.Addresses)
	if err != nil {
		return err
	}
	key, err := reconcile.WaitForMemberlistKey(ctx, mgr.GetCache(), opts.MemberlistSecret, log)
	if err != nil {
		return err
	}

	inbox := reconcile.NewInbox()
	reg := ctrlmetrics.Registry
	ml, err := members.New(members.Options{
		Name: opts.NodeName, BindAddr: nodeIP, Port: opts.MemberlistPort, Key: key,
		Timings: opts.timings(), Logger: log, Registerer: reg, OnMessage: inbox.Message,
	})
	if err != nil {
		return err
	}
	l2, err := announce.New(announce.Options{Logger: log.With("component", "layer2"), Registerer: reg, OnChange: inbox.L2Changed})
	if err != nil {
		return err
	}
	router := bgp.New(bgp.Options{Logger: log.With("component", "bgp"), Registerer: reg, OnEvent: inbox.BGPEvent})
	spk, err := reconcile.New(reconcile.Options{
		Node: opts.NodeName, NodeIP: nodeIP, Class: opts.LBClass,
		Cache:            mgr.GetCache(),
		MemberlistSecret: opts.MemberlistSecret, MemberlistKey: key,
		Events:  events,
		Members: ml, L2: l2, BGP: router, Inbox: inbox,
		QuorumMemory: opts.QuorumMemory,
		Log:          log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	// SpeakerStatus reads are not cached: only this node's object matters.
	direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	writer, err := status.New(status.Options{
		Client: direct, Node: opts.NodeName, NodeUID: node.UID,
		Source: spk.Status, Changed: spk.StatusChanged(), Log: log,
	})
	if err != nil {
		return err
	}
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan error, 1)
	go func() { writerDone <- writer.Run(writerCtx) }()

	log.Info("starting", "nodeIP", nodeIP, "memberlistPort", opts.MemberlistPort, "lbClass", opts.LBClass, "metrics", opts.MetricsBindAddress)
	runErr := spk.Run(ctx)
	stopWriter()
	<-writerDone
	final, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := writer.Sync(final); err != nil {
		log.Warn("final SpeakerStatus write failed", "err", err)
	}
	return runErr
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
