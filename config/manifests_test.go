// Package manifests_test checks the deploy manifests and samples against a
// real API server.
package manifests_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
)

func kubectl(t *testing.T, env *testenv.Env, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(env.BinDir, "kubectl"), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestManifests(t *testing.T) {
	if err := netns.RequireRoot(); err != nil {
		t.Skip(err)
	}
	env := testenv.Start(t, testenv.WithoutControllerManager())

	t.Run("every sample is accepted", func(t *testing.T) {
		out, err := kubectl(t, env, "apply", "-f", "samples/")
		if err != nil {
			t.Fatalf("kubectl apply -f config/samples failed: %v\n%s", err, out)
		}
		for _, want := range []string{"ippool.herald.dev/lan created", "bgppeer.herald.dev/frr created", "l2advertisement.herald.dev/lan created", "bgpadvertisement.herald.dev/routed created", "bfdprofile.herald.dev/fast created"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("config/default applies with --dry-run=server", func(t *testing.T) {
		// A server-side dry run cannot create namespaced objects in a
		// namespace that the same dry run only pretends to create.
		if out, err := kubectl(t, env, "create", "namespace", "herald-system"); err != nil {
			t.Fatalf("create namespace: %v\n%s", err, out)
		}
		out, err := kubectl(t, env, "apply", "-k", "default", "--dry-run=server")
		if err != nil {
			t.Fatalf("kubectl apply -k config/default --dry-run=server failed: %v\n%s", err, out)
		}
		for _, want := range []string{"deployment.apps/herald-controller created", "daemonset.apps/herald-speaker created", "clusterrole.rbac.authorization.k8s.io/herald-speaker created"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("speaker is not privileged and holds only NET_RAW and NET_ADMIN", func(t *testing.T) {
		out, err := kubectl(t, env, "kustomize", "default")
		if err != nil {
			t.Fatalf("kubectl kustomize: %v\n%s", err, out)
		}
		var ds *appsv1.DaemonSet
		for _, doc := range strings.Split(out, "\n---\n") {
			if strings.Contains(doc, "kind: DaemonSet") {
				ds = &appsv1.DaemonSet{}
				if err := yaml.Unmarshal([]byte(doc), ds); err != nil {
					t.Fatal(err)
				}
			}
		}
		if ds == nil {
			t.Fatal("config/default renders no DaemonSet")
		}
		if !ds.Spec.Template.Spec.HostNetwork {
			t.Error("the speaker must use the host network")
		}
		sc := ds.Spec.Template.Spec.Containers[0].SecurityContext
		if sc == nil || sc.Capabilities == nil {
			t.Fatal("the speaker has no securityContext capabilities")
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Error("the speaker must not be privileged")
		}
		add := fmt.Sprint(sc.Capabilities.Add)
		if add != "[NET_RAW NET_ADMIN]" || fmt.Sprint(sc.Capabilities.Drop) != "[ALL]" {
			t.Errorf("capabilities add %s drop %v, want add [NET_RAW NET_ADMIN] drop [ALL]", add, sc.Capabilities.Drop)
		}
	})
}
