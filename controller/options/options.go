// Package options holds herald-controller's settings and their flags.
package options

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/heraldlb/herald/internal/k8s"
)

// Options are all of herald-controller's settings.
type Options struct {
	// LBClass is the spec.loadBalancerClass served; "" serves Services
	// without a class.
	LBClass string
	// LeaderElect runs only while holding the Lease herald-controller in
	// herald-system, so several replicas are safe.
	LeaderElect                               bool
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Metrics: where and how /metrics is served.
	Metrics k8s.MetricsFlags
	// HealthProbeBindAddress: host:port of /healthz and /readyz, "0" disables.
	HealthProbeBindAddress string
	// Workers write Service statuses in parallel (allocation itself is serialized).
	Workers int
	k8s.ClientFlags
}

// Defaults returns the settings used when no flag is given.
func Defaults() Options {
	return Options{
		LeaseDuration:          15 * time.Second,
		RenewDeadline:          10 * time.Second,
		RetryPeriod:            2 * time.Second,
		Metrics:                k8s.MetricsFlags{BindAddress: ":7472", Secure: true},
		HealthProbeBindAddress: ":8081",
		Workers:                8,
		ClientFlags:            k8s.ClientFlags{LogLevel: "info", KubeAPIQPS: 500, KubeAPIBurst: 1000},
	}
}

// Bind registers the flags on fs, with o's values as defaults.
func (o *Options) Bind(fs *flag.FlagSet) {
	fs.StringVar(&o.LBClass, "lb-class", o.LBClass, "serve Services of this spec.loadBalancerClass; empty: Services without a class")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "work only while holding the Lease herald-controller in herald-system")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", o.LeaseDuration, "how long a standby waits before taking over a Lease that is not renewed")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", o.RenewDeadline, "how long the leader keeps trying to renew before it gives up leading")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", o.RetryPeriod, "how often candidates try to acquire or renew the Lease")
	o.Metrics.Bind(fs, "address (host:port) of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "address of /healthz and /readyz; 0 disables them")
	fs.IntVar(&o.Workers, "workers", o.Workers, "Services whose status is written in parallel")
	o.ClientFlags.Bind(fs)
}

// Parse returns the settings from command-line arguments (without the program name).
func Parse(args []string) (Options, error) {
	o := Defaults()
	if err := k8s.ParseFlags("herald-controller", args, o.Bind); err != nil {
		return o, err
	}
	return o, o.Validate()
}

// Validate checks the settings.
func (o Options) Validate() error {
	errs := []error{o.ClientFlags.Validate(), o.Metrics.Validate()}
	if o.Workers < 1 {
		errs = append(errs, fmt.Errorf("--workers must be at least 1, not %d", o.Workers))
	}
	if o.LeaderElect && !(o.RetryPeriod > 0 && o.RetryPeriod < o.RenewDeadline && o.RenewDeadline < o.LeaseDuration) {
		errs = append(errs, fmt.Errorf("leader election needs 0 < retry period (%s) < renew deadline (%s) < lease duration (%s)", o.RetryPeriod, o.RenewDeadline, o.LeaseDuration))
	}
	return errors.Join(errs...)
}
