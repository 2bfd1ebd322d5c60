package k8s

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testkit"
)

func TestOnAddress(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.11"), netip.MustParseAddr("fd00:10::11")
	for _, c := range []struct {
		bind string
		node netip.Addr
		want string
		err  bool
	}{
		{":7473", v4, "10.0.0.11:7473", false},
		{":7473", v6, "[fd00:10::11]:7473", false},
		{"0.0.0.0:7473", v4, "0.0.0.0:7473", false}, // every address, asked for
		{"[::]:7473", v4, "[::]:7473", false},
		{"127.0.0.1:9000", v6, "127.0.0.1:9000", false},
		{"0", v4, "0", false},
		{":7473", netip.Addr{}, "", true},
		{"7473", v4, "", true},
		{":http", v4, "", true},
	} {
		got, err := OnAddress(c.bind, c.node)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("OnAddress(%q, %v) = %q, %v; want %q, error %v", c.bind, c.node, got, err, c.want, c.err)
		}
	}
}

func TestMetricsFlags(t *testing.T) {
	for _, c := range []struct {
		m   MetricsFlags
		bad bool
	}{
		{MetricsFlags{BindAddress: ":7472", Secure: true}, false},
		{MetricsFlags{BindAddress: ":7472", Secure: true, CertDir: "/certs"}, false},
		{MetricsFlags{BindAddress: "127.0.0.1:0"}, false},
		{MetricsFlags{BindAddress: "0"}, false},
		{MetricsFlags{BindAddress: ""}, true},
		{MetricsFlags{BindAddress: "localhost"}, true},
		{MetricsFlags{BindAddress: ":70000", Secure: true}, true},
		{MetricsFlags{BindAddress: ":7472", CertDir: "/certs"}, true}, // a certificate for plain HTTP
	} {
		if err := c.m.Validate(); (err != nil) != c.bad {
			t.Errorf("%+v: error %v, want an error: %v", c.m, err, c.bad)
		}
	}

	secure := MetricsFlags{BindAddress: ":7472", Secure: true, CertDir: "/certs"}.serverOptions()
	if !secure.SecureServing || secure.FilterProvider == nil || secure.CertDir != "/certs" || len(secure.TLSOpts) == 0 {
		t.Errorf("secure: %+v, want HTTPS with the authentication filter", secure)
	}
	plain := MetricsFlags{BindAddress: ":7472"}.serverOptions()
	if plain.SecureServing || plain.FilterProvider != nil {
		t.Errorf("plain: %+v, want HTTP without a filter", plain)
	}
	// controller-runtime reads an empty address as :8080: never pass it on.
	for _, off := range []string{"", "0"} {
		if o := (MetricsFlags{BindAddress: off, Secure: true}).serverOptions(); o.BindAddress != "0" {
			t.Errorf("address %q: %+v, want the endpoint off", off, o)
		}
	}
}

// A metrics endpoint whose port is taken reports it and serves once the
// port is free, without returning (which would stop the manager).
func TestRetryingMetricsServer(t *testing.T) {
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := holder.Addr().String()
	failures := make(chan error, 100)
	r := &RetryingMetricsServer{
		Flags:  MetricsFlags{BindAddress: addr}, // plain HTTP: no API server needed
		Failed: func(err error) { failures <- err },
		Retry:  20 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	select {
	case err := <-failures:
		if !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("failure %v, want the port taken", err)
		}
	case err := <-done:
		t.Fatalf("Start returned %v while the port was taken", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no failure reported while the port was taken")
	}
	_ = holder.Close()
	testkit.For(t, 10*time.Second, "serving once the port is free", func() error {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start returned %v when its context ended", err)
		}
	case <-time.After(70 * time.Second): // controller-runtime allows a minute to shut down
		t.Error("Start did not return after its context ended")
	}
}
