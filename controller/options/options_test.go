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
	if !o.LeaderElect || o.MetricsBindAddress != ":7472" || o.HealthProbeBindAddress != ":8081" || o.LBClass != "herald.dev/lb" ||
		o.LogLevel != "debug" || o.Kubeconfig != "/k" || o.Workers != 4 || o.LeaseDuration != 15*time.Second {
		t.Errorf("parsed %+v", o)
	}
	d, err := Parse(nil)
	if err != nil || d != Defaults() {
		t.Errorf("no flags: %+v, %v", d, err)
	}
	for _, bad := range [][]string{
		{"--log-level=loud"},
		{"--workers=0"},
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
