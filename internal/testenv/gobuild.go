package testenv

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// GoBuild builds the Go package pkg (an import path) into the test's
// temporary directory and returns the binary's path. The build cache makes
// every build after the first quick.
func GoBuild(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
