// Package l2 holds the Layer 2 end-to-end tests: Herald's controller and a
// speaker per node in the network lab, real ARP and NDP from a LAN client,
// real kube-proxy, failover under faults, and (gated by HERALD_MEASURE=1)
// the failover measurements of docs/benchmarks.md (Layer 2 failover).
package l2

import (
	"os"
	"testing"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/testenv"
)

// One lab serves every test; Herald is built and started in it on first
// use (herald). HERALD_KEEP_LAB_DIR=1 keeps the lab's logs (the speakers',
// the probes', the captures') after the run.
func TestMain(m *testing.M) {
	var opts lab.Options
	if labtest.Measuring() {
		// TestSpeakerMemory's 10,000 Local Services each hold a health-check
		// node port: more than the default 30000-32767. The range grows
		// downwards, clear of the nodes' ephemeral ports (from 32768).
		opts.Testenv = []testenv.Option{testenv.WithAPIServerArgs("--service-node-port-range=20000-32767")}
	}
	os.Exit(labtest.Main(m, opts))
}
