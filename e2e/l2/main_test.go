// Package l2 holds the Layer 2 end-to-end tests: Herald's controller and a
// speaker per node in the network lab, real ARP and NDP from a LAN client,
// real kube-proxy, failover under faults, and (gated by HERALD_MEASURE=1)
// the failover measurements of docs/benchmarks.md (Layer 2 failover).
package l2

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/testenv"
)

// bin holds the binaries TestMain builds from this checkout.
var bin struct{ controller, speaker string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-l2-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.controller, bin.speaker = filepath.Join(dir, "herald-controller"), filepath.Join(dir, "herald-speaker")
	if err := build(map[string]string{bin.controller: "./controller", bin.speaker: "./speaker"}); err != nil {
		fmt.Fprintln(os.Stderr, "l2:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// HERALD_KEEP_LAB_DIR=1 keeps the lab's logs (the speakers', the probes') after the run.
	code := labtest.Main(m, lab.Options{KeepDir: os.Getenv("HERALD_KEEP_LAB_DIR") == "1"})
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(outs map[string]string) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	for out, pkg := range outs {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
	}
	return nil
}
