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
)

// One lab serves every test; Herald is built and started in it on first
// use (herald). HERALD_KEEP_LAB_DIR=1 keeps the lab's logs (the speakers',
// the probes', the captures') after the run.
func TestMain(m *testing.M) { os.Exit(labtest.Main(m, lab.Options{})) }
