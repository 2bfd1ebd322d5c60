// Package options holds herald-speaker's settings and their flags.
package options

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/heraldlb/herald/speaker/presence"
	"github.com/heraldlb/herald/speaker/reconcile"
)

// Options are all of herald-speaker's settings.
type Options struct {
	// NodeName is this node's name (default: $NODE_NAME).
	NodeName string
	// NodeIP is the address memberlist binds to and advertises; empty: the
	// Node's first InternalIP.
	NodeIP string
	// MemberlistPort is memberlist's TCP and UDP port.
	MemberlistPort int
	// MemberlistSecret names the Secret in herald-system holding the
	// 32-byte gossip key under "key".
	MemberlistSecret string
	// Memberlist timings (failure detection, gossip, re-joins).
	ProbeInterval, ProbeTimeout, GossipInterval, RejoinInterval time.Duration
	SuspicionMult                                               int
	// LeaseDuration is how long the others count on this speaker after its
	// Lease's last renewal (renewed every third of it).
	LeaseDuration time.Duration
	// LBClass is the spec.loadBalancerClass served; "" serves Services
	// without a class (as the controller's flag).
	LBClass string
	// Metrics: where and how /metrics is served. An address without a host
	// (":7473") is bound on the node address (NodeIP, else the Node's
	// InternalIP), not on every address of the host network.
	Metrics k8s.MetricsFlags
	// HealthProbeBindAddress: host:port of /healthz and /readyz, "0"
	// disables them.
	HealthProbeBindAddress string
	// BGPGracefulShutdown is how long a node excluded from load balancing
	// keeps its BGP routes, marked GRACEFUL_SHUTDOWN, before withdrawing them.
	BGPGracefulShutdown time.Duration
	// ShutdownTimeout bounds the graceful stop; keep it a second or two
	// under the pod's terminationGracePeriodSeconds.
	ShutdownTimeout time.Duration
	k8s.ClientFlags
}

// Defaults returns the settings used when no flag is given.
func Defaults() Options {
	t := members.DefaultTimings
	return Options{
		NodeName:               os.Getenv("NODE_NAME"),
		MemberlistPort:         members.DefaultPort,
		MemberlistSecret:       k8s.MemberlistSecretName,
		ProbeInterval:          t.ProbeInterval,
		ProbeTimeout:           t.ProbeTimeout,
		GossipInterval:         t.GossipInterval,
		RejoinInterval:         t.RejoinInterval,
		SuspicionMult:          t.SuspicionMult,
		LeaseDuration:          presence.DefaultDuration,
		Metrics:                k8s.MetricsFlags{BindAddress: ":7473", Secure: true},
		HealthProbeBindAddress: ":7474",
		BGPGracefulShutdown:    reconcile.DefaultGracefulShutdown,
		ShutdownTimeout:        8 * time.Second,
		ClientFlags:            k8s.ClientFlags{LogLevel: "info", KubeAPIQPS: 50, KubeAPIBurst: 100},
	}
}

// Bind registers the flags on fs, with o's values as defaults.
func (o *Options) Bind(fs *flag.FlagSet) {
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "this node's name (default $NODE_NAME)")
	fs.StringVar(&o.NodeIP, "node-ip", o.NodeIP, "address memberlist binds to; empty: the Node's first InternalIP")
	fs.IntVar(&o.MemberlistPort, "memberlist-port", o.MemberlistPort, "memberlist TCP and UDP port")
	fs.StringVar(&o.MemberlistSecret, "memberlist-secret", o.MemberlistSecret, "Secret in herald-system with the gossip key (16, 24 or 32 bytes) under \"key\" (the controller creates it; a new key is rotated to without a restart)")
	fs.DurationVar(&o.ProbeInterval, "memberlist-probe-interval", o.ProbeInterval, "how often each speaker probes another one")
	fs.DurationVar(&o.ProbeTimeout, "memberlist-probe-timeout", o.ProbeTimeout, "how long a probe waits for its ack before indirect probes")
	fs.IntVar(&o.SuspicionMult, "memberlist-suspicion-mult", o.SuspicionMult, "suspicion time before a speaker is declared dead, in probe intervals (scaled by log10 of the member count)")
	fs.DurationVar(&o.GossipInterval, "memberlist-gossip-interval", o.GossipInterval, "how often state changes are gossiped")
	fs.DurationVar(&o.RejoinInterval, "memberlist-rejoin-interval", o.RejoinInterval, "how often nodes that are not members are joined again (heals partitions)")
	fs.DurationVar(&o.LeaseDuration, "lease-duration", o.LeaseDuration, "how long the other speakers count on this one after its Lease's last renewal (renewed every third of it)")
	fs.StringVar(&o.LBClass, "lb-class", o.LBClass, "serve Services of this spec.loadBalancerClass; empty: Services without a class")
	o.Metrics.Bind(fs, "address (host:port) of the Prometheus metrics endpoint; without a host (:7473) the node address (--node-ip, else the Node's InternalIP); 0 disables it")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "bound on the graceful stop (hand-over, leave, BGP withdrawal); keep it under terminationGracePeriodSeconds minus a second")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "address of /healthz (the loop runs) and /readyz (memberlist runs, a majority of the speakers is seen); 0 disables them")
	fs.DurationVar(&o.BGPGracefulShutdown, "bgp-graceful-shutdown-time", o.BGPGracefulShutdown, "how long a node excluded from load balancing (herald.dev/drain, ...) keeps its BGP routes, marked with the GRACEFUL_SHUTDOWN community (RFC 8326), before it withdraws them")
	o.ClientFlags.Bind(fs)
}

// Parse returns the settings from command-line arguments (without the program name).
func Parse(args []string) (Options, error) {
	o := Defaults()
	if err := k8s.ParseFlags("herald-speaker", args, o.Bind); err != nil {
		return o, err
	}
	return o, o.Validate()
}

// Validate checks the settings.
func (o Options) Validate() error {
	var errs []error
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name (or $NODE_NAME) is required"))
	}
	if o.NodeIP != "" {
		if ip, err := netip.ParseAddr(o.NodeIP); err != nil || ip.Zone() != "" {
			errs = append(errs, fmt.Errorf("--node-ip %q is not an IP address", o.NodeIP))
		}
	}
	if o.MemberlistPort < 1 || o.MemberlistPort > 65535 {
		errs = append(errs, fmt.Errorf("--memberlist-port %d is not a port", o.MemberlistPort))
	}
	if o.MemberlistSecret == "" {
		errs = append(errs, errors.New("--memberlist-secret must name a Secret"))
	}
	if o.ProbeInterval <= 0 || o.ProbeTimeout <= 0 || o.GossipInterval <= 0 || o.RejoinInterval <= 0 || o.SuspicionMult < 1 {
		errs = append(errs, errors.New("memberlist timings must be positive"))
	}
	if o.ProbeTimeout >= o.ProbeInterval {
		errs = append(errs, fmt.Errorf("--memberlist-probe-timeout (%s) must be shorter than --memberlist-probe-interval (%s)", o.ProbeTimeout, o.ProbeInterval))
	}
	if o.BGPGracefulShutdown < 0 || o.BGPGracefulShutdown > 10*time.Minute {
		errs = append(errs, fmt.Errorf("--bgp-graceful-shutdown-time %s is outside 0-10m", o.BGPGracefulShutdown))
	}
	if o.ShutdownTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %s is too short (at least 1s)", o.ShutdownTimeout))
	}
	if o.LeaseDuration < 3*time.Second {
		errs = append(errs, fmt.Errorf("--lease-duration %s is too short (at least 3s)", o.LeaseDuration))
	}
	errs = append(errs, o.ClientFlags.Validate(), o.Metrics.Validate())
	return errors.Join(errs...)
}

// Timings maps the flags onto memberlist's timings.
func (o Options) Timings() members.Timings {
	return members.Timings{
		ProbeInterval:  o.ProbeInterval,
		ProbeTimeout:   o.ProbeTimeout,
		SuspicionMult:  o.SuspicionMult,
		GossipInterval: o.GossipInterval,
		RejoinInterval: o.RejoinInterval,
	}
}
