package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/cmd/herald-migrate/migrate"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
)

// fixtures are MetalLB configurations written after MetalLB's documented
// examples (migrate/testdata); each converts without refusal.
var fixtures = []string{"layer2", "allocation", "bgp"}

func fixture(name string) string { return filepath.Join("migrate", "testdata", name+".yaml") }

// cluster is a real API server with Herald's CRDs and clients for it.
type cluster struct {
	env *testenv.Env
	reg *netns.Registry
	c   client.Client
	dyn dynamic.Interface
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	if err := netns.RequireRoot(); err != nil {
		t.Skip(err)
	}
	reg := netns.New(netns.UniquePrefix(), nil)
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Errorf("ending processes: %v", err)
		}
	})
	env := testenv.Start(t, testenv.WithoutControllerManager(), testenv.WithRegistry(reg))
	scheme, err := k8s.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{env: env, reg: reg, c: c, dyn: dynamic.NewForConfigOrDie(env.Config)}
}

// migrate runs herald-migrate with args and returns its exit code and output.
func (cl *cluster) migrate(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	o, err := parse(append([]string{"--kubeconfig", cl.env.Kubeconfig}, args...))
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code = run(context.Background(), o, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// converted is what herald-migrate makes of a fixture, read by the same
// code as the command.
func converted(t *testing.T, name string) migrate.Result {
	t.Helper()
	f, err := os.Open(fixture(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() //nolint:errcheck // read only
	rd := &migrate.Reader{Namespace: "metallb-system"}
	if err := rd.ReadYAML(f, name); err != nil {
		t.Fatal(err)
	}
	return migrate.Convert(rd.Config)
}

// specOf reads a Herald object's spec from the API server, as JSON.
func (cl *cluster) specOf(t *testing.T, kind, name string) (spec map[string]any, resourceVersion string) {
	t.Helper()
	u, err := cl.dyn.Resource(v1beta1.GroupVersion.WithResource(strings.ToLower(kind)+"s")).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
	spec, _ = u.Object["spec"].(map[string]any)
	return spec, u.GetResourceVersion()
}

// wantSpec checks that the API server holds obj's spec (after its defaults).
func (cl *cluster) wantSpec(t *testing.T, obj client.Object) string {
	t.Helper()
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	spec, rv := cl.specOf(t, kind, obj.GetName())
	// Both sides through JSON, so numbers compare as numbers.
	var got, want map[string]any
	raw, _ := json.Marshal(spec)
	_ = json.Unmarshal(raw, &got)
	raw, _ = json.Marshal(obj)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	want, _ = m["spec"].(map[string]any)
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s %s: spec.%s is %v in the cluster, %v converted", kind, obj.GetName(), k, got[k], v)
		}
	}
	return rv
}

// TestMigrateIntoTheAPIServer: herald-migrate --apply writes each fixture's
// Herald objects and the API server accepts all of them; refused settings
// write nothing; and read from a cluster that runs MetalLB's kinds, the
// same configuration converts to the same objects, so applying it again
// changes nothing.
func TestMigrateIntoTheAPIServer(t *testing.T) {
	cl := startCluster(t)

	code, _, stderr := cl.migrate(t, "-f", fixture("refused"), "--apply")
	if code != exitRefused || !strings.Contains(stderr, "refused: BGPPeer metallb-system/in-vrf: spec.vrf:") || !strings.Contains(stderr, "nothing written") {
		t.Fatalf("refused fixture: exit %d, stderr:\n%s", code, stderr)
	}
	var pools v1beta1.IPPoolList
	if err := cl.c.List(context.Background(), &pools); err != nil || len(pools.Items) != 0 {
		t.Fatalf("pools after a refused migration: %v %v", pools.Items, err)
	}

	versions := map[string]string{}
	for _, name := range fixtures {
		code, _, stderr := cl.migrate(t, "-f", fixture(name), "--apply")
		res := converted(t, name)
		if code != exitOK || !strings.Contains(stderr, fmt.Sprintf("applied %d objects", len(res.Objects))) {
			t.Fatalf("%s: exit %d, stderr:\n%s", name, code, stderr)
		}
		for _, o := range res.Objects {
			versions[o.GetName()] = cl.wantSpec(t, o)
		}
	}

	// MetalLB's kinds in the cluster, holding the same fixtures.
	if _, err := testenv.InstallCRDs(context.Background(), cl.env.Config, filepath.Join("testdata", "metallb-crds")); err != nil {
		t.Fatal(err)
	}
	if err := cl.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "metallb-system"}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range fixtures {
		cl.createMetalLB(t, fixture(name))
	}
	code, stdout, stderr := cl.migrate(t)
	if code != exitOK {
		t.Fatalf("read from the cluster: exit %d, stderr:\n%s", code, stderr)
	}
	total := 0
	for _, name := range fixtures {
		total += len(converted(t, name).Objects)
	}
	if n := strings.Count(stdout, "\napiVersion: herald.dev/v1beta1\n"); n != total {
		t.Errorf("read from the cluster: %d objects printed, want %d:\n%s", n, total, stdout)
	}
	if code, _, stderr := cl.migrate(t, "--apply"); code != exitOK {
		t.Fatalf("apply from the cluster: exit %d, stderr:\n%s", code, stderr)
	}
	for _, name := range fixtures {
		for _, o := range converted(t, name).Objects {
			if rv := cl.wantSpec(t, o); rv != versions[o.GetName()] {
				t.Errorf("%s %s changed when applied from the cluster (resource version %s -> %s)", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), versions[o.GetName()], rv)
			}
		}
	}
}

// createMetalLB creates the MetalLB objects of a YAML file.
func (cl *cluster) createMetalLB(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() //nolint:errcheck // read only
	plural := map[string]string{"Community": "communities"}
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) == 0 {
			continue
		}
		gv, _ := schema.ParseGroupVersion(u.GetAPIVersion())
		res := plural[u.GetKind()]
		if res == "" {
			res = strings.ToLower(u.GetKind()) + "s"
		}
		if _, err := cl.dyn.Resource(gv.WithResource(res)).Namespace(u.GetNamespace()).Create(context.Background(), &u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// service is a Service as a MetalLB user writes it: MetalLB's annotations.
type service struct {
	namespace, name string
	labels          map[string]string
	annotations     map[string]string
	port            int32
	// want is the address MetalLB gives it, and why.
	want, why string
}

// TestSameAddressesAsMetalLB: with the allocation fixture migrated, Herald's
// controller gives Services, created one after the other with MetalLB's
// annotations, the addresses MetalLB gives them: pinned pools first (by
// priority, then those without one), then the automatic pool, lowest
// address first, requested and shared addresses, avoidBuggyIPs. A Service
// that already has an address from MetalLB keeps it.
func TestSameAddressesAsMetalLB(t *testing.T) {
	cl := startCluster(t)
	ctx := context.Background()
	if code, _, stderr := cl.migrate(t, "-f", fixture("allocation"), "--apply"); code != exitOK {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}
	for name, labels := range map[string]map[string]string{
		v1beta1.Namespace: nil, "namespace-a": nil, "team-c": nil, "labeled": {"foo": "bar"},
	} {
		if err := cl.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
			t.Fatal(err)
		}
	}
	// A Service MetalLB served: its address is in its status already.
	legacy := cl.createService(t, service{namespace: "default", name: "legacy", port: 80})
	legacy.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.40"}}
	if err := cl.c.Status().Update(ctx, legacy); err != nil {
		t.Fatal(err)
	}

	bin := testenv.GoBuild(t, "github.com/heraldlb/herald/controller")
	p, err := cl.reg.Start(nil, "herald-controller", filepath.Join(cl.env.Dir, "logs", "herald-controller.log"), nil,
		bin, "--kubeconfig", cl.env.Kubeconfig, "--metrics-bind-address", "0", "--health-probe-bind-address", "0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("herald-controller:\n%s", cl.env.LogTail("herald-controller", 40))
		}
	})

	pool := func(name string) map[string]string { return map[string]string{"metallb.io/address-pool": name} }
	for _, s := range []service{
		{namespace: "default", name: "plain", want: "198.51.100.0", why: "the automatic pool, lowest address (host bits of 198.51.100.7/26 ignored)"},
		{namespace: "namespace-a", name: "web", labels: map[string]string{"app": "bar"}, want: "198.51.100.128", why: "tenant: its namespace and label, priority 50"},
		{namespace: "namespace-a", name: "other", want: "198.51.100.1", why: "tenant wants app=bar, so the automatic pool"},
		{namespace: "team-c", name: "api", want: "198.51.100.64", why: "team: pinned to team-c, tried before the automatic pool"},
		{namespace: "labeled", name: "web", labels: map[string]string{"app": "bar"}, want: "198.51.100.129", why: "tenant: a namespace labelled foo=bar"},
		{namespace: "default", name: "pinned", annotations: pool("expensive"), want: "203.0.113.64", why: "named pool, autoAssign off"},
		{namespace: "default", name: "buggy", annotations: map[string]string{"metallb.universe.tf/address-pool": "buggy"}, want: "203.0.113.1", why: "avoidBuggyIPs skips .0"},
		{namespace: "default", name: "requested", annotations: map[string]string{"metallb.io/loadBalancerIPs": "198.51.100.5"}, want: "198.51.100.5", why: "requested address"},
		{namespace: "default", name: "shared-a", port: 80, annotations: map[string]string{"metallb.io/loadBalancerIPs": "198.51.100.20", "metallb.io/allow-shared-ip": "k"}, want: "198.51.100.20", why: "requested, shareable"},
		{namespace: "default", name: "shared-b", port: 443, annotations: map[string]string{"metallb.io/loadBalancerIPs": "198.51.100.20", "metallb.io/allow-shared-ip": "k"}, want: "198.51.100.20", why: "same key, other port: shared"},
		{namespace: "default", name: "next", want: "198.51.100.2", why: "lowest free address of the automatic pool"},
	} {
		cl.createService(t, s)
		got := cl.waitIngress(t, s.namespace, s.name)
		if got != s.want {
			t.Errorf("%s/%s got %s, MetalLB gives %s (%s)", s.namespace, s.name, got, s.want, s.why)
		}
	}
	if got := cl.waitIngress(t, "default", "legacy"); got != "198.51.100.40" {
		t.Errorf("default/legacy moved from MetalLB's 198.51.100.40 to %s", got)
	}
}

func (cl *cluster) createService(t *testing.T, s service) *corev1.Service {
	t.Helper()
	if s.port == 0 {
		s.port = 80
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: s.name, Labels: s.labels, Annotations: s.annotations},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: s.port}},
			AllocateLoadBalancerNodePorts: new(bool)},
	}
	if err := cl.c.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// waitIngress waits until the Service has an ingress address and returns it.
func (cl *cluster) waitIngress(t *testing.T, namespace, name string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var svc corev1.Service
		err := cl.c.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &svc)
		if err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
			return svc.Status.LoadBalancer.Ingress[0].IP
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s has no address after 30s: %v %+v", namespace, name, err, svc.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPartialWritesTheRest: with --partial, what translates is written and
// the exit status still says something was refused; without it, nothing.
func TestPartialWritesTheRest(t *testing.T) {
	for _, partial := range []bool{false, true} {
		args := []string{"-f", fixture("layer2"), "-f", fixture("refused"), "-o", filepath.Join(t.TempDir(), "out.yaml")}
		if partial {
			args = append(args, "--partial")
		}
		o, err := parse(args)
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		code := run(context.Background(), o, strings.NewReader(""), &bytes.Buffer{}, &stderr)
		out, _ := os.ReadFile(o.Output)
		wrote := strings.Contains(string(out), "name: first-pool")
		if code != exitRefused || wrote != partial || strings.Contains(string(out), "in-vrf") {
			t.Errorf("--partial=%v: exit %d, first-pool written %v:\n%s\n%s", partial, code, wrote, out, stderr.String())
		}
	}
}
