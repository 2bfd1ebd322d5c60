package testenv

import (
	"log/slog"

	"github.com/heraldlb/herald/internal/netns"
)

// Options configure the control plane; the zero value runs etcd,
// kube-apiserver and kube-controller-manager and installs config/crd.
type Options struct {
	// Registry tracks the processes by PID. Nil: the Env makes one of its own.
	Registry *netns.Registry
	// Scheduler also runs kube-scheduler (the lab needs it; API tests do not).
	Scheduler bool
	// NoControllerManager leaves kube-controller-manager out.
	NoControllerManager bool
	// ServiceAccounts keeps the ServiceAccount admission plugin, which gives
	// every pod its service account token: needed when real kubelets run
	// the pods, pointless when the lab only pretends to.
	ServiceAccounts bool
	// CRDDir is the folder whose CustomResourceDefinitions are installed;
	// "" means config/crd in the repository, NoCRDs installs none.
	CRDDir string
	// BinDir overrides BinDir().
	BinDir string
	// Log receives progress messages. Nil discards them.
	Log *slog.Logger
	// Extra flags appended to each component's command line.
	APIServerArgs, ControllerManagerArgs, SchedulerArgs []string
}

// NoCRDs as Options.CRDDir installs no CRDs.
const NoCRDs = "-"

// Option changes Options.
type Option func(*Options)

// WithScheduler runs kube-scheduler too.
func WithScheduler() Option { return func(o *Options) { o.Scheduler = true } }

// WithoutControllerManager leaves kube-controller-manager out.
func WithoutControllerManager() Option { return func(o *Options) { o.NoControllerManager = true } }

// WithServiceAccounts keeps the ServiceAccount admission plugin on.
func WithServiceAccounts() Option { return func(o *Options) { o.ServiceAccounts = true } }

// WithRegistry tracks the processes in r, so a lab's Close and Cleanup cover them.
func WithRegistry(r *netns.Registry) Option { return func(o *Options) { o.Registry = r } }

// WithCRDDir installs the CRDs found under dir (NoCRDs: none).
func WithCRDDir(dir string) Option { return func(o *Options) { o.CRDDir = dir } }

// WithBinDir runs the Kubernetes binaries found in dir.
func WithBinDir(dir string) Option { return func(o *Options) { o.BinDir = dir } }

// WithLogger reports progress to log.
func WithLogger(log *slog.Logger) Option { return func(o *Options) { o.Log = log } }

// WithAPIServerArgs appends flags to kube-apiserver's command line.
func WithAPIServerArgs(args ...string) Option {
	return func(o *Options) { o.APIServerArgs = append(o.APIServerArgs, args...) }
}

// WithControllerManagerArgs appends flags to kube-controller-manager's command line.
func WithControllerManagerArgs(args ...string) Option {
	return func(o *Options) { o.ControllerManagerArgs = append(o.ControllerManagerArgs, args...) }
}

func buildOptions(opts []Option) Options {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}
