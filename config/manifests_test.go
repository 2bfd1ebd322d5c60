// Package manifests_test checks the deploy manifests and samples against a
// real API server.
package manifests_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/deploy"
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
		for _, want := range []string{"ippool.herald.dev/lan created", "bgppeer.herald.dev/frr created", "l2advertisement.herald.dev/lan created", "bgpadvertisement.herald.dev/routed created", "bfdprofile.herald.dev/fast created", "bgpadvertisement.herald.dev/routed-gold created", "l2advertisement.herald.dev/lan-edge created"} {
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
}

// objects splits a multi-document manifest into objects keyed by
// "Kind namespace/name".
func objects(t *testing.T, manifest string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, doc := range strings.Split(manifest, "\n---") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("manifest does not parse: %v\n%s", err, doc)
		}
		if len(obj) == 0 {
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		key := fmt.Sprintf("%v %v/%v", obj["kind"], meta["namespace"], meta["name"])
		if _, dup := out[key]; dup {
			t.Fatalf("%s twice in the manifest", key)
		}
		out[key] = obj
	}
	return out
}

// chartOnlyLabels are the labels the chart puts on every object to name
// the release; config/ has no release.
var chartOnlyLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

func withoutReleaseLabels(obj map[string]any) map[string]any {
	meta, _ := obj["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	for _, l := range chartOnlyLabels {
		delete(labels, l)
	}
	if len(labels) == 0 {
		delete(meta, "labels")
	}
	return obj
}

// TestChartAndKustomizeInstallTheSameObjects holds config/ (kubectl apply
// -k config/default, and the single manifest herald-dist renders from it)
// and the Helm chart with its default values to the same objects, field by
// field: a change to one that is not made to the other fails here.
func TestChartAndKustomizeInstallTheSameObjects(t *testing.T) {
	ch, err := deploy.LoadChart("")
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := deploy.RenderChart(ch, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	fromChart := objects(t, rendered)
	kustomized, err := deploy.Kustomize("")
	if err != nil {
		t.Fatal(err)
	}
	fromConfig := objects(t, kustomized)
	// The namespace is made by helm install --create-namespace (or kubectl)
	// for the chart; config/default holds it.
	delete(fromConfig, "Namespace <nil>/herald-system")
	for key, want := range fromConfig {
		got, ok := fromChart[key]
		if !ok {
			t.Errorf("config/ has %s, the chart does not", key)
			continue
		}
		if diff := cmp.Diff(want, withoutReleaseLabels(got)); diff != "" {
			t.Errorf("%s differs between config/ (-) and the chart (+):\n%s", key, diff)
		}
	}
	for key := range fromChart {
		if _, ok := fromConfig[key]; !ok {
			t.Errorf("the chart has %s, config/ does not", key)
		}
	}
	if len(fromChart) < 17 {
		t.Errorf("the chart renders only %d objects", len(fromChart))
	}
}

// TestChartCRDsAreConfigCRDs: make generate writes the CRDs to both places.
func TestChartCRDsAreConfigCRDs(t *testing.T) {
	want, _ := filepath.Glob("crd/herald.dev_*.yaml")
	got, _ := filepath.Glob("../charts/herald/crds/*.yaml")
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("config/crd has %d CRDs, charts/herald/crds %d", len(want), len(got))
	}
	for _, f := range want {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join("../charts/herald/crds", filepath.Base(f)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("charts/herald/crds/%s is not a copy of config/%s (run make generate): %v", filepath.Base(f), f, err)
		}
	}
}

func TestChartLintsClean(t *testing.T) {
	dir, err := deploy.ChartDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]string{
		nil,
		{"metrics.serviceMonitor.enabled=true", "speaker.memberlist.key=" + strings.Repeat("A", 43) + "=", "loadBalancerClass=herald.dev/lb"},
		{"metrics.serviceMonitor.enabled=true", "metrics.certSecret=herald-metrics-tls", "metrics.readers[0].name=prometheus", "metrics.readers[0].namespace=monitoring"},
		{"metrics.serviceMonitor.enabled=true", "metrics.secure=false"},
	} {
		vals, err := deploy.Values(set...)
		if err != nil {
			t.Fatal(err)
		}
		if errs := deploy.LintChart(dir, vals); len(errs) > 0 {
			t.Errorf("helm lint --strict with %v: %v", set, errs)
		}
	}
}

// TestChartValues renders the values a user sets and checks where they land.
func TestChartValues(t *testing.T) {
	ch, err := deploy.LoadChart("")
	if err != nil {
		t.Fatal(err)
	}
	key := "MDEyMzQ1Njc4OWFiY2RlZg==" // 16 bytes
	vals, err := deploy.Values(
		"controller.image.repository=registry.example:5000/herald/herald-controller",
		"speaker.image.tag=v2",
		"speaker.memberlist.port=7950",
		"speaker.logLevel=debug",
		"speaker.memberlist.key="+key,
		"speaker.nodeSelector.rack=r1",
		"controller.replicas=3",
		"loadBalancerClass=herald.dev/lb",
		"metrics.serviceMonitor.enabled=true",
		"speaker.memberlist.probeInterval=200ms",
		"speaker.memberlist.probeTimeout=100ms",
		"speaker.memberlist.gossipInterval=100ms",
	)
	if err != nil {
		t.Fatal(err)
	}
	out, err := deploy.RenderChart(ch, vals, false)
	if err != nil {
		t.Fatal(err)
	}
	objs := objects(t, out)
	ds := objs["DaemonSet herald-system/herald-speaker"]
	dep := objs["Deployment herald-system/herald-controller"]
	if ds == nil || dep == nil {
		t.Fatalf("no DaemonSet or Deployment in\n%s", out)
	}
	dsText, depText := toYAML(t, ds), toYAML(t, dep)
	for _, want := range []string{
		"image: ghcr.io/heraldlb/herald-speaker:v2", "--memberlist-port=7950", "containerPort: 7950", "--log-level=debug",
		"--lb-class=herald.dev/lb", "rack: r1", "herald.dev/memberlist-key-sha256",
		"--memberlist-probe-interval=200ms", "--memberlist-probe-timeout=100ms", "--memberlist-gossip-interval=100ms",
	} {
		if !strings.Contains(dsText, want) {
			t.Errorf("the DaemonSet lacks %q:\n%s", want, dsText)
		}
	}
	for _, want := range []string{"image: registry.example:5000/herald/herald-controller:v0.1.0", "replicas: 3", "--lb-class=herald.dev/lb"} {
		if !strings.Contains(depText, want) {
			t.Errorf("the Deployment lacks %q:\n%s", want, depText)
		}
	}
	secret := objs["Secret herald-system/herald-memberlist"]
	if data, _ := secret["data"].(map[string]any); data["key"] != key {
		t.Errorf("memberlist Secret %v, want key %s", secret, key)
	}
	for _, k := range []string{"Service herald-system/herald-controller-metrics", "ServiceMonitor herald-system/herald-speaker"} {
		if objs[k] == nil {
			t.Errorf("metrics.serviceMonitor.enabled renders no %s", k)
		}
	}
}

// TestChartRefusesBadValues: values.schema.json and the templates turn a
// wrong value into an error that names it, before anything is installed.
func TestChartRefusesBadValues(t *testing.T) {
	ch, err := deploy.LoadChart("")
	if err != nil {
		t.Fatal(err)
	}
	for set, want := range map[string]string{
		"speaker.memberlist.port=70000":               "port",
		"controller.logLevel=loud":                    "logLevel",
		"controller.replicas=0":                       "replicas",
		"speaker.memberlist.key=c2hvcnQ=":             "key",
		"speaker.image.pullPolicy=Sometimes":          "pullPolicy",
		"speaker.tolerations[0].operator=Maybe":       "operator",
		"controller.image.tag=v1 rc":                  "tag",
		"spekaer.logLevel=debug":                      "spekaer",
		"metrics.serviceMonitor.interval=often":       "interval",
		"controller.nodeSelector.rack.floor=three":    "rack",
		"metrics.secure=false,metrics.certSecret=tls": "certSecret",
		"metrics.readers[0].name=prometheus":          "namespace",
		"metrics.certSecret=Not_A_Name":               "certSecret",
		"speaker.memberlist.probeInterval=fast":       "probeInterval",
	} {
		vals, err := deploy.Values(strings.Split(set, ",")...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = deploy.RenderChart(ch, vals, false)
		if err == nil {
			t.Errorf("%s: rendered without error", set)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error does not name %q: %v", set, want, err)
		}
	}
}

// TestChartMetricsValues: metrics.secure, metrics.certSecret,
// metrics.readers and the ServiceMonitor that goes with them.
func TestChartMetricsValues(t *testing.T) {
	ch, err := deploy.LoadChart("")
	if err != nil {
		t.Fatal(err)
	}
	render := func(t *testing.T, set ...string) map[string]map[string]any {
		t.Helper()
		vals, err := deploy.Values(append(set, "metrics.serviceMonitor.enabled=true")...)
		if err != nil {
			t.Fatal(err)
		}
		out, err := deploy.RenderChart(ch, vals, false)
		if err != nil {
			t.Fatalf("%v: %v", set, err)
		}
		return objects(t, out)
	}
	pods := []string{"DaemonSet herald-system/herald-speaker", "Deployment herald-system/herald-controller"}
	monitors := []string{"ServiceMonitor herald-system/herald-speaker", "ServiceMonitor herald-system/herald-controller"}
	has := func(t *testing.T, objs map[string]map[string]any, key string, want ...string) {
		t.Helper()
		text := toYAML(t, objs[key])
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", key, w, text)
			}
		}
	}
	lacks := func(t *testing.T, objs map[string]map[string]any, key string, unwanted ...string) {
		t.Helper()
		text := toYAML(t, objs[key])
		for _, w := range unwanted {
			if strings.Contains(text, w) {
				t.Errorf("%s has %q:\n%s", key, w, text)
			}
		}
	}

	t.Run("default: HTTPS, Prometheus's token, self-signed certificate", func(t *testing.T) {
		objs := render(t)
		for _, k := range monitors {
			has(t, objs, k, "scheme: https", "bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token", "insecureSkipVerify: true")
		}
		for _, k := range pods {
			lacks(t, objs, k, "--metrics-secure", "--metrics-cert-dir", "metrics-cert")
		}
		if objs["ClusterRoleBinding <nil>/herald-metrics-reader"] != nil {
			t.Error("a binding of herald-metrics-reader without metrics.readers")
		}
	})
	t.Run("certSecret: mounted, and verified by the ServiceMonitor", func(t *testing.T) {
		objs := render(t, "metrics.certSecret=herald-metrics-tls")
		for _, k := range pods {
			has(t, objs, k, "--metrics-cert-dir=/etc/herald/metrics-cert", "mountPath: /etc/herald/metrics-cert", "secretName: herald-metrics-tls")
		}
		has(t, objs, monitors[0], "serverName: herald-speaker-metrics.herald-system.svc", "name: herald-metrics-tls", "key: ca.crt")
		has(t, objs, monitors[1], "serverName: herald-controller-metrics.herald-system.svc")
		lacks(t, objs, monitors[0], "insecureSkipVerify")
	})
	t.Run("secure=false: plain HTTP, said on both pods", func(t *testing.T) {
		objs := render(t, "metrics.secure=false")
		for _, k := range pods {
			has(t, objs, k, "--metrics-secure=false")
		}
		for _, k := range monitors {
			lacks(t, objs, k, "https", "bearerToken", "tlsConfig")
		}
	})
	t.Run("readers are bound to herald-metrics-reader", func(t *testing.T) {
		objs := render(t, "metrics.readers[0].name=prometheus-k8s", "metrics.readers[0].namespace=monitoring")
		has(t, objs, "ClusterRoleBinding <nil>/herald-metrics-reader", "name: herald-metrics-reader", "name: prometheus-k8s", "namespace: monitoring")
	})
}

func toYAML(t *testing.T, obj map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
