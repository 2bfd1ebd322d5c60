package testenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

func TestControlPlaneServesLoadBalancerServicesAndEndpointSlices(t *testing.T) {
	env := Start(t)
	t.Logf("control plane ready after %v", env.StartupTime.Round(time.Millisecond))
	if _, err := os.Stat(env.Kubeconfig); err != nil {
		t.Fatalf("kubeconfig %s: %v", env.Kubeconfig, err)
	}
	cs := kubernetes.NewForConfigOrDie(env.Config)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A dual-stack LoadBalancer Service gets a ClusterIP per family, and its
	// status can carry an ingress IP (what Herald's controller writes).
	dual := corev1.IPFamilyPolicyRequireDualStack
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeLoadBalancer,
			IPFamilyPolicy: &dual,
			Selector:       map[string]string{"app": "web"},
			Ports:          []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create LoadBalancer Service: %v", err)
	}
	if len(svc.Spec.ClusterIPs) != 2 {
		t.Fatalf("dual-stack Service got ClusterIPs %v, want one IPv4 and one IPv6", svc.Spec.ClusterIPs)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.10"}}
	if _, err := cs.CoreV1().Services("default").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("write Service ingress status: %v", err)
	}

	// The endpointslice controller publishes a Ready pod as a ready endpoint.
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node1"},
		Status:     corev1.NodeStatus{Capacity: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10")}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Node: %v", err)
	}
	pod, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName:   "node1",
			Containers: []corev1.Container{{Name: "web", Image: "none", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Pod: %v", err)
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase:  corev1.PodRunning,
		PodIP:  "10.244.1.2",
		PodIPs: []corev1.PodIP{{IP: "10.244.1.2"}},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set Pod Ready: %v", err)
	}
	var seen []string
	for {
		list, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			t.Fatal(err)
		}
		seen = readyAddresses(list.Items)
		if slices.Contains(seen, "10.244.1.2") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no ready endpoint 10.244.1.2 in the EndpointSlices of Service web; saw %v", seen)
		case <-time.After(50 * time.Millisecond):
		}
	}

	procs := env.Procs()
	if len(procs) != 3 {
		t.Fatalf("want etcd, kube-apiserver and kube-controller-manager running, got %d processes", len(procs))
	}
	env.Stop()
	for _, p := range procs {
		if !p.Exited() {
			t.Errorf("%s (pid %d) still running after Stop", p.Name, p.PID)
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(p.PID))); err == nil {
			t.Errorf("pid %d (%s) still exists after Stop", p.PID, p.Name)
		}
	}
}

func TestMissingBinariesSayHowToBuildThem(t *testing.T) {
	_, err := StartProcess(context.Background(), t.TempDir(), WithBinDir(t.TempDir()))
	if err == nil || !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("want ErrNoBinaries for an empty bin dir, got %v", err)
	}
	if want := "make kube"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say to run %q", err, want)
	}
}

func TestCRDsFromAFolderAreEstablished(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "widgets.yaml"), []byte(widgetCRD), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("resources: [widgets.yaml]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := Start(t, WithCRDDir(dir), WithoutControllerManager())
	rc, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	list, err := rc.Discovery().ServerResourcesForGroupVersion("example.herald.dev/v1")
	if err != nil {
		t.Fatalf("CRD group not served after Start: %v", err)
	}
	var names []string
	for _, r := range list.APIResources {
		names = append(names, r.Name)
	}
	if !slices.Contains(names, "widgets") {
		t.Fatalf("widgets not served by example.herald.dev/v1, saw %v", names)
	}
}

const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.herald.dev
spec:
  group: example.herald.dev
  scope: Cluster
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// BenchmarkStartToReady measures a control plane from nothing to ready
// (API server, controller manager, CRDs installed).
func BenchmarkStartToReady(b *testing.B) {
	for b.Loop() {
		env, err := StartProcess(context.Background(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(env.StartupTime.Milliseconds()), "ms/ready")
		env.Stop()
	}
}

func readyAddresses(items []discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
				out = append(out, ep.Addresses...)
			}
		}
	}
	return out
}
