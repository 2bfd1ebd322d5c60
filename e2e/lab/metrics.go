package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testenv"
)

// The lab scrapes Herald's metrics as a Prometheus in the cluster does:
// over HTTPS, with the token of a ServiceAccount bound to the shipped
// ClusterRole herald-metrics-reader.
const (
	MetricsReaderNamespace = "lab-monitoring"
	MetricsReaderName      = "prometheus"
	// SpeakerMetricsPort is the speaker's default metrics port.
	SpeakerMetricsPort = 7473
)

// metricsReader keeps the reader's token; tokens live an hour, so a new
// one is asked for after half of that.
type metricsReader struct {
	mu    sync.Mutex
	token string
	at    time.Time
}

// MetricsToken returns a token of the lab's metrics reader
// (lab-monitoring/prometheus, bound to herald-metrics-reader), creating
// the ServiceAccount and binding on first use. The ClusterRole itself comes
// with Herald: StartHerald applies it, an install brings it.
func (l *Lab) MetricsToken(ctx context.Context) (string, error) {
	r := &l.metricsReader
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.token != "" && time.Since(r.at) < 30*time.Minute {
		return r.token, nil
	}
	tok, err := l.Env.ServiceAccountToken(ctx, MetricsReaderNamespace, MetricsReaderName, k8s.MetricsReaderRole)
	if err != nil {
		return "", err
	}
	r.token, r.at = tok, time.Now()
	return tok, nil
}

// SpeakerMetrics scrapes node's speaker from inside the node's namespace,
// at the node's address (where the speaker binds its endpoint), with the
// lab reader's token.
func (l *Lab) SpeakerMetrics(ctx context.Context, node string) (string, error) {
	n := l.Node(node)
	if n == nil {
		return "", fmt.Errorf("lab: no node %q", node)
	}
	tok, err := l.MetricsToken(ctx)
	if err != nil {
		return "", err
	}
	url := "https://" + net.JoinHostPort(n.IPv4.String(), strconv.Itoa(SpeakerMetricsPort)) + "/metrics"
	code, body, err := testenv.Scrape(ctx, Dialer(n.NS), url, tok)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("lab: %s answered %d: %.200s", url, code, body)
	}
	return body, nil
}

// applyMetricsReaderRole creates the ClusterRole herald-metrics-reader
// from config/rbac/metrics.yaml, as an install of Herald does.
func (l *Lab) applyMetricsReaderRole(ctx context.Context) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	return l.Apply(ctx, filepath.Join(root, "config", "rbac", "metrics.yaml"))
}
