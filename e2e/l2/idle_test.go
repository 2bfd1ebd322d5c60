package l2

import (
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
)

// TestMeasureIdleSpeaker measures what an idle speaker costs (CPU over 30 s
// and resident memory) with one dual-stack Service, for
// docs/benchmarks.md (Layer 2 failover). It runs only with HERALD_MEASURE=1:
//
//	HERALD_MEASURE=1 go test ./e2e/l2 -run TestMeasureIdleSpeaker -v
func TestMeasureIdleSpeaker(t *testing.T) {
	if !labtest.Measuring() {
		t.Skip("measurement: set HERALD_MEASURE=1")
	}
	e := herald(t)
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "idle", Replicas: 3})
	// Settled: each address has its owner and answers the client.
	ctx := labtest.Context(t, time.Minute)
	for _, ip := range w.IPs {
		if _, err := e.WaitOwner(ctx, ip); err != nil {
			t.Fatalf("%s: %v", ip, err)
		}
		if _, err := e.Client.GetEventually(ctx, lab.URL(ip, 80)); err != nil {
			t.Fatal(err)
		}
	}
	const window = 30 * time.Second
	before := map[string]lab.Usage{}
	for _, n := range e.Nodes {
		before[n.Name] = usage(t, e.Speaker(n.Name))
	}
	time.Sleep(window) // the measurement window itself, not a wait for a condition
	for _, n := range e.Nodes {
		u := usage(t, e.Speaker(n.Name))
		used := u.CPU - before[n.Name].CPU
		t.Logf("%s: %.2f%% of one core over %v, RSS %.1f MiB", n.Name, 100*used.Seconds()/window.Seconds(), window, float64(u.RSS)/(1<<20))
	}
}

func usage(t *testing.T, c *lab.Component) lab.Usage {
	t.Helper()
	u, err := c.Usage()
	if err != nil {
		t.Fatal(err)
	}
	return u
}
