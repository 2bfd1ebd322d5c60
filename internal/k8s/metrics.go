package k8s

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// MetricsReaderRole is the ClusterRole Herald ships for scrapers: GET on
// the non-resource URL /metrics, which the secure endpoint checks with a
// SubjectAccessReview.
const MetricsReaderRole = "herald-metrics-reader"

// MetricsFlags say where and how a binary serves /metrics. Both binaries'
// options hold them, each with its own default address.
type MetricsFlags struct {
	// BindAddress is host:port; "0" disables the endpoint.
	BindAddress string
	// Secure serves HTTPS and answers only clients that the API server
	// authenticates (TokenReview) and authorizes for GET /metrics
	// (SubjectAccessReview). False serves plain HTTP to anyone.
	Secure bool
	// CertDir holds tls.crt and tls.key, reloaded when they change; empty:
	// a self-signed certificate made at start.
	CertDir string
}

// Bind registers the flags on fs, with m's values as defaults.
func (m *MetricsFlags) Bind(fs *flag.FlagSet, addressHelp string) {
	fs.StringVar(&m.BindAddress, "metrics-bind-address", m.BindAddress, addressHelp)
	fs.BoolVar(&m.Secure, "metrics-secure", m.Secure, "serve /metrics over HTTPS to clients the API server authenticates and authorizes for GET /metrics (ClusterRole "+MetricsReaderRole+"); false: plain HTTP to anyone who can connect")
	fs.StringVar(&m.CertDir, "metrics-cert-dir", m.CertDir, "folder with tls.crt and tls.key for the metrics endpoint, reloaded when they change; empty: a self-signed certificate made at start")
}

// Validate checks the settings.
func (m MetricsFlags) Validate() error {
	var errs []error
	if m.BindAddress != "0" {
		if _, _, err := splitBindAddress(m.BindAddress); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-bind-address: %w", err))
		}
	}
	if m.CertDir != "" && !m.Secure {
		errs = append(errs, errors.New("--metrics-cert-dir needs --metrics-secure: plain HTTP uses no certificate"))
	}
	return errors.Join(errs...)
}

// Enabled says whether the endpoint is served at all.
func (m MetricsFlags) Enabled() bool { return m.BindAddress != "0" && m.BindAddress != "" }

// serverOptions are controller-runtime's metrics server settings for m.
// An empty address disables the endpoint (controller-runtime would take
// :8080 on every address).
func (m MetricsFlags) serverOptions() metricsserver.Options {
	if !m.Enabled() {
		return metricsserver.Options{BindAddress: "0"}
	}
	o := metricsserver.Options{BindAddress: m.BindAddress}
	if !m.Secure {
		return o
	}
	o.SecureServing = true
	o.FilterProvider = authorizedMetrics
	o.CertDir = m.CertDir
	o.TLSOpts = []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		// HTTP/1.1 only: a scrape gains nothing from HTTP/2, and its
		// stream handling has been the way in for several DoS attacks.
		c.NextProtos = []string{"http/1.1"}
	}}
	return o
}

// NewMetricsServer returns a metrics server for m, for a manager built
// with its own endpoint disabled (the speaker adds one once it knows its
// node address, through RetryingMetricsServer). httpClient talks to the
// API server for the authentication and authorization checks.
func NewMetricsServer(m MetricsFlags, cfg *rest.Config, httpClient *http.Client) (metricsserver.Server, error) {
	srv, err := metricsserver.NewServer(m.serverOptions(), cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("metrics server: %w", err)
	}
	return srv, nil
}

// metricsRetry is how long a metrics endpoint that could not start waits
// before it tries again.
const metricsRetry = 10 * time.Second

// RetryingMetricsServer is a manager runnable that serves Flags like
// NewMetricsServer, except that an endpoint that cannot start (its port is
// taken, say) does not stop the manager: Failed hears why and a new
// endpoint is tried every Retry (0: 10 s). The speaker uses it: it must go
// on announcing without its metrics.
type RetryingMetricsServer struct {
	Flags      MetricsFlags
	Config     *rest.Config
	HTTPClient *http.Client
	// Failed is called after each failed attempt (from one goroutine).
	Failed func(error)
	Retry  time.Duration
}

// NeedLeaderElection is false: every replica serves its metrics.
func (r *RetryingMetricsServer) NeedLeaderElection() bool { return false }

// Start serves until ctx ends.
func (r *RetryingMetricsServer) Start(ctx context.Context) error {
	retry := r.Retry
	if retry <= 0 {
		retry = metricsRetry
	}
	for {
		srv, err := NewMetricsServer(r.Flags, r.Config, r.HTTPClient)
		if err != nil {
			return err // the settings are wrong: trying again will not help
		}
		// Each attempt has its own context, so what a failed one started
		// (a certificate watcher) ends with it.
		attempt, cancel := context.WithCancel(ctx)
		err = srv.Start(attempt)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("the metrics server stopped")
		}
		if r.Failed != nil {
			r.Failed(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
	}
}

// OnAddress returns bind with its host set to addr when bind names none
// (":7473"); a bind address with a host, or "0", is kept.
func OnAddress(bind string, addr netip.Addr) (string, error) {
	if bind == "0" {
		return bind, nil
	}
	host, port, err := splitBindAddress(bind)
	if err != nil {
		return "", err
	}
	if host != "" {
		return bind, nil
	}
	if !addr.IsValid() {
		return "", errors.New("no address to bind to")
	}
	return net.JoinHostPort(addr.String(), strconv.Itoa(port)), nil
}

// splitBindAddress parses host:port; the host may be empty.
func splitBindAddress(s string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port (or 0 to disable): %w", s, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, p)
	}
	return host, port, nil
}
