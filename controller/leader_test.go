package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// serviceAccount is the identity config/rbac/controller.yaml grants rights to.
const serviceAccount = "system:serviceaccount:herald-system:herald-controller"

// applyRBAC creates the objects of config/rbac/controller.yaml and
// metrics.yaml (the role a Prometheus is given).
func (h *harness) applyRBAC(t *testing.T) {
	t.Helper()
	for _, f := range []string{"controller.yaml", "metrics.yaml"} {
		h.createFromFile(t, filepath.Join("..", "config", "rbac", f))
	}
}

// createFromFile creates every object of a YAML file.
func (h *harness) createFromFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			t.Fatal(err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		h.create(t, &obj)
	}
}

// serviceAccountKubeconfig writes a kubeconfig that acts as the controller's
// ServiceAccount, so the controller runs with exactly the RBAC rights the
// manifests give it.
func (h *harness) serviceAccountKubeconfig(t *testing.T) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(h.env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = serviceAccount
	}
	path := filepath.Join(t.TempDir(), "controller.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLeaderElection runs two controller processes with the manifests' RBAC
// rights: only the leader writes; when it is killed, the other takes over
// and keeps every address.
func TestLeaderElection(t *testing.T) {
	h := newHarness(t)
	h.applyRBAC(t)
	kubeconfig := h.serviceAccountKubeconfig(t)
	h.create(t, objects.Pool("lan", true, "198.51.100.0/28"))
	h.createNamespace(t, "web")

	type replica struct {
		proc *netns.Proc
		port int
	}
	var replicas []replica
	for i := range 2 {
		port := testkit.FreePort(t)
		proc := h.startProcess(t, fmt.Sprintf("herald-controller-%d", i),
			"--kubeconfig="+kubeconfig, "--leader-elect", "--log-level=debug",
			"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms",
			// Plain HTTP: the test counts the standby's requests, and a
			// scrape with a token would add its TokenReview and
			// SubjectAccessReview (TestMetricsEndpoint checks those).
			"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(port), "--metrics-secure=false", "--health-probe-bind-address=0")
		replicas = append(replicas, replica{proc, port})
	}
	leaderOf := func() (int, string) {
		leader, states := -1, ""
		for i, r := range replicas {
			body, err := scrapeBody(r.port)
			if err != nil {
				states += fmt.Sprintf(" %d: %v", i, err)
				continue
			}
			v, _ := metricSum(body, "leader_election_master_status", `name="herald-controller"`)
			states += fmt.Sprintf(" %d: leader=%v", i, v)
			if v == 1 {
				if leader >= 0 {
					return -2, states
				}
				leader = i
			}
		}
		return leader, states
	}
	leader := -1
	eventually(t, 30*time.Second, "one leader", func() (bool, string) {
		var states string
		leader, states = leaderOf()
		return leader >= 0, states
	})

	h.create(t, objects.Service("web", "a"))
	first := ingressIPs(h.waitAssigned(t, "web", "a"))
	h.waitEvent(t, "web", "a", "IPAllocated", "from pool lan")
	h.memberlistKey(t)
	standby := 1 - leader
	body, err := scrapeBody(replicas[standby].port)
	if err != nil {
		t.Fatal(err)
	}
	// Both replicas may try to create the Lease at start (one POST); the
	// standby must write nothing else.
	allowed := map[string]float64{"POST": 1, "PUT": 0, "PATCH": 0, "DELETE": 0}
	for method, max := range allowed {
		if n, _ := metricSum(body, "rest_client_requests_total", `method="`+method+`"`); n > max {
			t.Errorf("the standby made %v %s requests", n, method)
		}
	}
	if n, _ := metricSum(body, "herald_status_writes_total"); n > 0 {
		t.Errorf("the standby wrote %v statuses", n)
	}

	killed := time.Now()
	if err := replicas[leader].proc.Kill(); err != nil {
		t.Fatal(err)
	}
	replicas = replicas[standby : standby+1]
	// The Lease expires after 4 s; the standby tries every 0.5 s.
	eventually(t, 30*time.Second, "the standby takes over", func() (bool, string) {
		l, states := leaderOf()
		return l == 0, states
	})
	h.create(t, objects.Service("web", "b"))
	h.waitAssigned(t, "web", "b")
	t.Logf("after the leader was killed, a new Service was assigned within %s", time.Since(killed).Round(100*time.Millisecond))
	if now := ingressIPs(h.service(t, "web", "a")); fmt.Sprint(now) != fmt.Sprint(first) {
		t.Errorf("Service web/a moved from %v to %v across the takeover", first, now)
	}
	for i := range 2 {
		name := fmt.Sprintf("herald-controller-%d", i)
		b, err := os.ReadFile(filepath.Join(h.env.Dir, "logs", name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte("forbidden")); i >= 0 {
			t.Errorf("%s lacks an RBAC right: %s", name, b[max(0, i-300):min(len(b), i+200)])
		}
	}
	lease, err := h.cs.CoordinationV1().Leases(v1beta1.Namespace).Get(context.Background(), "herald-controller", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("Lease herald-system/herald-controller: %v %+v", err, lease)
	}
}
