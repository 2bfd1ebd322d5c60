package l2

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/testkit"
)

// A speaker whose metrics port is taken on its node address goes on
// running and announcing, says why in an Event on its Node, and serves its
// metrics once the port is free.
func TestATakenMetricsPortIsReportedAndRetried(t *testing.T) {
	e := herald(t)
	ctx := labtest.Context(t, 2*time.Minute)
	node := e.Nodes[2]
	if err := e.Speaker(node.Name).Terminate(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	holder, err := e.Reg.Start(node.NS, "metrics-port-holder", filepath.Join(e.Dir, "logs", "metrics-port-holder.log"), nil,
		"socat", fmt.Sprintf("TCP-LISTEN:%d,bind=%s,fork,reuseaddr", lab.SpeakerMetricsPort, node.IPv4), "EXEC:cat")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Kill() })
	if err := e.Speaker(node.Name).Start(); err != nil {
		t.Fatal(err)
	}
	took := testkit.For(t, 30*time.Second, "ready, with an Event on the Node about the metrics port", func() error {
		if code, body, err := e.readyz(ctx, node.Name); err != nil {
			return fmt.Errorf("/readyz: %w", err)
		} else if code != http.StatusOK {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		return e.Event(ctx, "", node.Name, "MetricsUnavailable", node.IPv4.String()+":"+strconv.Itoa(lab.SpeakerMetricsPort))
	})
	t.Logf("ready and reported %v after the start", took.Round(time.Millisecond))
	if !e.Speaker(node.Name).Running() {
		t.Fatal("the speaker stopped")
	}
	if err := holder.Kill(); err != nil {
		t.Fatal(err)
	}
	took = testkit.For(t, 30*time.Second, "metrics served once the port is free", func() error {
		_, err := e.SpeakerMetrics(ctx, node.Name)
		return err
	})
	t.Logf("metrics served %v after the port was freed (retry every 10 s)", took.Round(time.Millisecond))
}
