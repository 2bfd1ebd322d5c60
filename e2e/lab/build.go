package lab

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/heraldlb/herald/internal/testenv"
)

// Binaries are Herald's programs built from this checkout.
type Binaries struct {
	Controller, Speaker string
}

// BuildHerald builds herald-controller and herald-speaker from this
// checkout into dir (the shared Go build cache makes it quick).
func BuildHerald(ctx context.Context, dir string) (Binaries, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{Controller: filepath.Join(dir, "herald-controller"), Speaker: filepath.Join(dir, "herald-speaker")}
	for out, pkg := range map[string]string{b.Controller: "./controller", b.Speaker: "./speaker"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("lab: go build %s: %w\n%s", pkg, err, msg)
		}
	}
	return b, nil
}

// ControllerSpec runs the controller against the lab's API server, with no
// listeners on the host (metrics and probes off) and extra flags appended.
func (b Binaries) ControllerSpec(extra ...string) ComponentSpec {
	args := []string{"--kubeconfig={kubeconfig}", "--metrics-bind-address=0", "--health-probe-bind-address=0"}
	return ComponentSpec{Binary: b.Controller, Args: append(args, extra...)}
}

// SpeakerSpec runs a speaker for its node, extra flags appended.
func (b Binaries) SpeakerSpec(extra ...string) ComponentSpec {
	return ComponentSpec{Binary: b.Speaker, Args: append([]string{"--kubeconfig={kubeconfig}", "--node-name={node}"}, extra...)}
}
