package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	certutil "k8s.io/client-go/util/cert"

	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit"
)

// TestMetricsEndpoint runs the controller as its ServiceAccount with the
// manifests' RBAC and the default metrics settings: HTTPS, and only a
// caller the API server authenticates and authorizes for GET /metrics
// (the shipped ClusterRole herald-metrics-reader) gets the metrics. A
// second process serves the certificate given with --metrics-cert-dir.
func TestMetricsEndpoint(t *testing.T) {
	h := newHarness(t)
	h.applyRBAC(t)
	kubeconfig := h.serviceAccountKubeconfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reader, err := h.env.ServiceAccountToken(ctx, "monitoring", "prometheus", k8s.MetricsReaderRole)
	if err != nil {
		t.Fatal(err)
	}
	outsider, err := h.env.ServiceAccountToken(ctx, "monitoring", "outsider", "")
	if err != nil {
		t.Fatal(err)
	}

	port := testkit.FreePort(t)
	h.startProcess(t, "herald-controller-metrics", "--kubeconfig="+kubeconfig, "--leader-elect",
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(port), "--health-probe-bind-address=0")
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", port)

	var body string
	eventually(t, 30*time.Second, "the reader gets the metrics", func() (bool, string) {
		code, b, err := testenv.Scrape(ctx, nil, url, reader)
		body = b
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %v %.200s", code, err, b)
	})
	for _, want := range []string{"leader_election_master_status", "herald_allocations_total", "controller_runtime_reconcile_total"} {
		if !strings.Contains(body, want) {
			t.Errorf("the metrics lack %s", want)
		}
	}
	for _, c := range []struct {
		who, token string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a token the API server did not issue", "not-a-token", http.StatusUnauthorized},
		{"a ServiceAccount without herald-metrics-reader", outsider, http.StatusForbidden},
	} {
		code, b, err := testenv.Scrape(ctx, nil, url, c.token)
		if err != nil || code != c.want || strings.Contains(b, "herald_") {
			t.Errorf("%s: status %d (%v), want %d without metrics: %.200s", c.who, code, err, c.want, b)
		}
	}
	// The server may reset the connection right after its answer: the
	// status line is what counts.
	if code, b, err := testenv.Scrape(ctx, nil, strings.Replace(url, "https:", "http:", 1), reader); code != http.StatusBadRequest || strings.Contains(b, "herald_") {
		t.Errorf("plain HTTP: %d %v %.200s, want 400 without metrics", code, err, b)
	}
	// The checks went to the API server as the controller's ServiceAccount:
	// a missing tokenreviews or subjectaccessreviews right shows here.
	log, err := os.ReadFile(filepath.Join(h.env.Dir, "logs", "herald-controller-metrics.log"))
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(log, []byte("forbidden")); i >= 0 {
		t.Errorf("the controller lacks an RBAC right: %s", log[max(0, i-300):min(len(log), i+200)])
	}

	t.Run("--metrics-cert-dir serves the given certificate", func(t *testing.T) {
		dir := t.TempDir()
		certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("herald-controller-metrics.herald-system.svc", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(certPEM)
		port := testkit.FreePort(t)
		h.startProcess(t, "herald-controller-cert", "--kubeconfig="+kubeconfig, "--leader-elect",
			"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(port), "--metrics-cert-dir="+dir, "--health-probe-bind-address=0")
		addr := "127.0.0.1:" + strconv.Itoa(port)
		eventually(t, 30*time.Second, "the endpoint presents the certificate", func() (bool, string) {
			conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // comparing the certificate itself
			if err != nil {
				return false, err.Error()
			}
			defer conn.Close() //nolint:errcheck // only its certificate is read
			peer := conn.ConnectionState().PeerCertificates
			if len(peer) == 0 {
				return false, "no certificate"
			}
			return bytes.Equal(peer[0].Raw, block.Bytes), fmt.Sprintf("served %s", peer[0].Subject)
		})
		if code, _, err := testenv.Scrape(ctx, nil, "https://"+addr+"/metrics", reader); err != nil || code != http.StatusOK {
			t.Errorf("the reader: %d %v", code, err)
		}
	})
}
