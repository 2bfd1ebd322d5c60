package options

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	o, err := Parse([]string{"--leader-elect", "--metrics-bind-address=:7472", "--health-probe-bind-address=:8081",
		"--lb-class=herald.dev/lb", "--log-level=debug", "--kubeconfig=/k", "--workers=4"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.LeaderElect || o.Metrics.BindAddress != ":7472" || !o.Metrics.Secure || o.HealthProbeBindAddress != ":8081" || o.LBClass != "herald.dev/lb" ||
		o.LogLevel != "debug" || o.Kubeconfig != "/k" || o.Workers != 4 || o.LeaseDuration != 15*time.Second {
		t.Errorf("parsed %+v", o)
	}
	d, err := Parse(nil)
	if err != nil || d != Defaults() {
		t.Errorf("no flags: %+v, %v", d, err)
	}
	if !d.Metrics.Secure || d.Metrics.BindAddress != ":7472" {
		t.Errorf("metrics by default: %+v, want HTTPS on :7472", d.Metrics)
	}
	if p, err := Parse([]string{"--metrics-secure=false"}); err != nil || p.Metrics.Secure {
		t.Errorf("--metrics-secure=false: %+v, %v", p.Metrics, err)
	}
	if c, err := Parse([]string{"--metrics-cert-dir=/certs"}); err != nil || c.Metrics.CertDir != "/certs" {
		t.Errorf("--metrics-cert-dir: %+v, %v", c.Metrics, err)
	}
	for _, bad := range [][]string{
		{"--log-level=loud"},
		{"--workers=0"},
		{"--metrics-bind-address=7472"},
		{"--metrics-secure=false", "--metrics-cert-dir=/certs"},
		{"--kube-api-qps=0"},
		{"--leader-elect", "--leader-elect-renew-deadline=20s"},
		{"stray"},
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%v: no error", bad)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%v: empty error", bad)
		}
	}
}
