package k8s

import (
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// Scheme returns a scheme with the built-in kinds and Herald's.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1beta1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// RESTConfig loads a client config: the kubeconfig file if given, else
// $KUBECONFIG or ~/.kube/config, else the in-cluster config. qps and burst
// replace client-go's low defaults.
func RESTConfig(kubeconfig string, qps float32, burst int, userAgent string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	cfg.UserAgent = userAgent
	return cfg, nil
}

// ManagerOptions are the settings both binaries pass to NewManager.
type ManagerOptions struct {
	Logger logr.Logger
	// MetricsBindAddress is the manager's /metrics endpoint; "0" or empty
	// leaves it out (the speaker adds its own with NewMetricsServer).
	// MetricsSecure and MetricsCertDir are as in MetricsFlags.
	MetricsBindAddress     string
	MetricsSecure          bool
	MetricsCertDir         string
	HealthProbeBindAddress string // "0" disables the probes
	// LeaderElectionID names the Lease in v1beta1.Namespace; "" disables
	// leader election.
	LeaderElectionID                          string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// MaxConcurrentReconciles is the default number of workers per controller.
	MaxConcurrentReconciles int
	// ByObject adds per-kind cache settings; Secrets are always restricted
	// to v1beta1.Namespace.
	ByObject map[client.Object]cache.ByObject
}

// NewManager returns a controller-runtime manager with Herald's scheme, a
// cache without managedFields (they are most of a Service's size), Secrets
// cached only from herald-system, /healthz and /readyz, and leader election
// that hands the Lease over at once on a clean shutdown.
func NewManager(cfg *rest.Config, o ManagerOptions) (manager.Manager, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	byObject := map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Namespaces: map[string]cache.Config{v1beta1.Namespace: {}}},
	}
	for obj, b := range o.ByObject {
		byObject[obj] = b
	}
	mo := manager.Options{
		Scheme: scheme,
		Logger: o.Logger,
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject:         byObject,
			// Caught up within half a second after an API server outage
			// instead of the reflector's 30-60 s backoff (see patient.go).
			NewInformer: newPatientInformer,
		},
		Metrics:                       MetricsFlags{BindAddress: o.MetricsBindAddress, Secure: o.MetricsSecure, CertDir: o.MetricsCertDir}.serverOptions(),
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		LeaderElection:                o.LeaderElectionID != "",
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       v1beta1.Namespace,
		LeaderElectionReleaseOnCancel: true,
		Controller: crconfig.Controller{
			MaxConcurrentReconciles: o.MaxConcurrentReconciles,
			// One process runs one manager, but tests restart a controller
			// in-process; names stay unique per manager.
			SkipNameValidation: ptr.To(true),
		},
	}
	if o.LeaseDuration > 0 {
		mo.LeaseDuration = &o.LeaseDuration
	}
	if o.RenewDeadline > 0 {
		mo.RenewDeadline = &o.RenewDeadline
	}
	if o.RetryPeriod > 0 {
		mo.RetryPeriod = &o.RetryPeriod
	}
	mgr, err := manager.New(cfg, mo)
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	if o.HealthProbeBindAddress != "0" && o.HealthProbeBindAddress != "" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
	}
	return mgr, nil
}
