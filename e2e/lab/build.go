package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/testenv"
)

// Binaries are Herald's programs built from this checkout.
type Binaries struct {
	Controller, Speaker string
	// SpeakerCapabilities are the only capabilities a speaker keeps: those
	// the shipped DaemonSet adds (config/speaker/daemonset.yaml).
	SpeakerCapabilities []string
}

// BuildHerald builds herald-controller and herald-speaker from this
// checkout into dir (the shared Go build cache makes it quick).
func BuildHerald(ctx context.Context, dir string) (Binaries, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return Binaries{}, err
	}
	caps, err := shippedSpeakerCapabilities(root)
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{Controller: filepath.Join(dir, "herald-controller"), Speaker: filepath.Join(dir, "herald-speaker"), SpeakerCapabilities: caps}
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

// SpeakerSpec runs a speaker for its node, extra flags appended, as root
// with only SpeakerCapabilities (and no_new_privs), as the DaemonSet runs
// it: setpriv drops the others and execs the speaker in place.
func (b Binaries) SpeakerSpec(extra ...string) ComponentSpec {
	args := append([]string{"--kubeconfig={kubeconfig}", "--node-name={node}"}, extra...)
	if b.SpeakerCapabilities == nil {
		return ComponentSpec{Binary: b.Speaker, Args: args}
	}
	bounding := "-all"
	for _, c := range b.SpeakerCapabilities {
		bounding += ",+" + strings.ToLower(c)
	}
	return ComponentSpec{Binary: "setpriv", Args: append([]string{"--bounding-set=" + bounding, "--inh-caps=-all", "--no-new-privs", "--", b.Speaker}, args...)}
}

// shippedSpeakerCapabilities reads the capabilities the speaker DaemonSet
// adds.
func shippedSpeakerCapabilities(root string) ([]string, error) {
	path := filepath.Join(root, "config", "speaker", "daemonset.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	var ds appsv1.DaemonSet
	if err := yaml.Unmarshal(raw, &ds); err != nil {
		return nil, fmt.Errorf("lab: %s: %w", path, err)
	}
	caps := []string{} // none added still means "drop the others"
	for _, c := range ds.Spec.Template.Spec.Containers {
		if sc := c.SecurityContext; sc != nil && sc.Capabilities != nil {
			for _, a := range sc.Capabilities.Add {
				caps = append(caps, string(a))
			}
		}
	}
	return caps, nil
}
