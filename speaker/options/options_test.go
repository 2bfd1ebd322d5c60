package options

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Setenv("NODE_NAME", "node-env")
	o, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.NodeName != "node-env" || o.MemberlistPort != 7946 || o.MemberlistSecret != "herald-memberlist" || o.Metrics.BindAddress != ":7473" || !o.Metrics.Secure ||
		o.ProbeInterval != 200*time.Millisecond || o.LBClass != "" || o.HealthProbeBindAddress != ":7474" || o.LeaseDuration != 30*time.Second {
		t.Fatalf("defaults %+v", o)
	}
	// The DaemonSet's arguments.
	o, err = Parse([]string{"--node-name=node2", "--node-ip=10.0.0.12", "--memberlist-port=7946", "--metrics-bind-address=:7473", "--lb-class=example.com/lb"})
	if err != nil || o.NodeName != "node2" || o.NodeIP != "10.0.0.12" || o.LBClass != "example.com/lb" {
		t.Fatalf("%+v, %v", o, err)
	}
	for _, bad := range [][]string{
		{"--node-ip=10.0.0.300"},
		{"--memberlist-port=0"},
		{"--memberlist-probe-timeout=300ms"},
		{"--log-level=loud"},
		{"--memberlist-secret="},
		{"--lease-duration=1s"},
		{"--metrics-bind-address=7473"},
		{"--metrics-secure=false", "--metrics-cert-dir=/certs"},
		{"extra"},
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%v) accepted", bad)
		}
	}
	if o, err := Parse([]string{"--metrics-secure=false", "--metrics-bind-address=127.0.0.1:7473"}); err != nil || o.Metrics.Secure || o.Metrics.BindAddress != "127.0.0.1:7473" {
		t.Errorf("plain HTTP on loopback: %+v, %v", o.Metrics, err)
	}
	t.Setenv("NODE_NAME", "")
	if _, err := Parse(nil); err == nil || !strings.Contains(err.Error(), "--node-name") {
		t.Errorf("without a node name: %v", err)
	}
}
