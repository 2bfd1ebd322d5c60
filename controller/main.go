// Command herald-controller assigns LoadBalancer IPs to Services from
// Herald's IP pools, writes them to the Services' status, and keeps the
// status of Herald's config objects. See docs/controller.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/heraldlb/herald/controller/options"
	"github.com/heraldlb/herald/controller/reconcilers"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/k8s"
)

// leaseName is the Lease (in herald-system) the replicas compete for.
const leaseName = "herald-controller"

func main() {
	opts, err := options.Parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-controller:", err)
		os.Exit(2)
	}
	level, _ := k8s.ParseLevel(opts.LogLevel)
	log := k8s.NewLogger(os.Stderr, level)
	if err := run(ctrl.SetupSignalHandler(), opts, log, ctrlmetrics.Registry); err != nil {
		log.Error("herald-controller failed", "err", err)
		os.Exit(1)
	}
}

// run wires the controller and runs it until ctx ends, with its metrics on
// reg (the registry the manager serves). Tests call it in-process, once per
// controller incarnation.
func run(ctx context.Context, opts options.Options, log *slog.Logger, reg prometheus.Registerer) error {
	crLog := k8s.UseLogger(log)
	cfg, err := k8s.RESTConfig(opts.Kubeconfig, float32(opts.KubeAPIQPS), opts.KubeAPIBurst, "herald-controller")
	if err != nil {
		return fmt.Errorf("client configuration: %w", err)
	}
	lease := ""
	if opts.LeaderElect {
		lease = leaseName
	}
	mgr, err := k8s.NewManager(cfg, k8s.ManagerOptions{
		Logger:                  crLog,
		MetricsBindAddress:      opts.Metrics.BindAddress,
		MetricsSecure:           opts.Metrics.Secure,
		MetricsCertDir:          opts.Metrics.CertDir,
		HealthProbeBindAddress:  opts.HealthProbeBindAddress,
		LeaderElectionID:        lease,
		LeaseDuration:           opts.LeaseDuration,
		RenewDeadline:           opts.RenewDeadline,
		RetryPeriod:             opts.RetryPeriod,
		MaxConcurrentReconciles: 1,
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	metrics := reconcilers.NewMetrics()
	if err := metrics.Register(reg); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	defer metrics.Unregister(reg)

	allocs := reconcilers.NewAllocations(metrics)
	serviceQueue := &reconcilers.Queue[reconcile.Request]{}
	statusQueue := &reconcilers.Queue[config.Ref]{}
	events := &k8s.EventSink{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Controller: "herald-controller", Log: log.With("component", "events")}

	configs := &reconcilers.ConfigReconciler{
		Client: mgr.GetClient(), Allocs: allocs, Log: log.With("controller", "config"),
		Services: serviceQueue, Status: statusQueue,
	}
	services := &reconcilers.ServiceReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Allocs: allocs, Class: opts.LBClass, Events: events,
		Log: log.With("controller", "service"), Queue: serviceQueue, PoolStatus: statusQueue,
	}
	statuses := &reconcilers.ConfigStatusReconciler{
		Client: mgr.GetClient(), Allocs: allocs, Model: configs.Model, Events: events,
		Log: log.With("controller", "config-status"), Queue: statusQueue,
	}
	memberlist := &reconcilers.MemberlistKeyReconciler{Client: mgr.GetClient(), Events: events, Log: log.With("controller", "memberlist-key")}
	importer := &reconcilers.Importer{
		Reader: mgr.GetAPIReader(), Cache: mgr.GetClient(), Allocs: allocs, Config: configs,
		Class: opts.LBClass, Log: log.With("component", "import"),
	}

	if err := configs.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the config controller: %w", err)
	}
	if err := services.SetupWithManager(mgr, opts.Workers); err != nil {
		return fmt.Errorf("set up the service controller: %w", err)
	}
	if err := statuses.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the config-status controller: %w", err)
	}
	if err := memberlist.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the memberlist-key controller: %w", err)
	}
	if err := mgr.Add(events); err != nil {
		return fmt.Errorf("add the event sink: %w", err)
	}
	if err := mgr.Add(importer); err != nil {
		return fmt.Errorf("add the importer: %w", err)
	}
	log.Info("starting", "lbClass", opts.LBClass, "leaderElect", opts.LeaderElect, "workers", opts.Workers,
		"metrics", opts.Metrics.BindAddress, "metricsSecure", opts.Metrics.Secure)
	return mgr.Start(ctx)
}
