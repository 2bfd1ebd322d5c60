// Package bgp holds the BGP end-to-end tests: Herald's controller and a
// speaker per node in the network lab, peering with the lab's real FRR
// (bgpd, bfdd, zebra) and BIRD 2 routers. Every assertion reads a router's
// own view (vtysh JSON, birdc, the router's kernel table) or what a user
// reads (SpeakerStatus, Events, conditions), and traffic goes from the
// external client through the routers and kube-proxy to echo pods.
//
// The measurements of docs/benchmarks.md (BGP) run with HERALD_MEASURE=1;
// without it the same paths are checked once against loose bounds.
//
// eBGP multihop is not covered here: the lab's only router chain is a node
// reaching BIRD's external address through FRR, and neither router can be
// its far end next to the nodes' LAN sessions (FRR keys neighbors by the
// node's address, which its LAN session already uses; BIRD 2.0.12 kept a
// dynamic multihop protocol Idle, and with an explicit one per node the
// node's LAN session to BIRD stayed Idle). speaker/bgp's TestEBGPMultihop
// covers it: FRR
// two hops away through a Linux router, no session with TTL 1, up with
// EBGPMultiHop, the route via the node's far address in FRR's kernel.
package bgp

import (
	"os"
	"testing"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
)

// One lab serves every test; Herald is built and started in it on first
// use (herald). HERALD_KEEP_LAB_DIR=1 keeps the lab's logs (speakers,
// routers) after the run.
func TestMain(m *testing.M) { os.Exit(labtest.Main(m, lab.Options{})) }
