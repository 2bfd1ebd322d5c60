package reconcile

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

func TestWatcherServesItsClassOnly(t *testing.T) {
	lb := func(class *string) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: class}}
	}
	other := "example.com/other"
	for _, tc := range []struct {
		class string
		svc   *corev1.Service
		want  bool
	}{
		{"", lb(nil), true},
		{"", lb(&other), false},
		{other, lb(&other), true},
		{other, lb(nil), false},
		{"", &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}, false},
	} {
		if got := newWatcher(tc.class, "k").relevant(tc.svc); got != tc.want {
			t.Errorf("--lb-class=%q, Service class %v: served %v, want %v", tc.class, tc.svc.Spec.LoadBalancerClass, got, tc.want)
		}
	}
}

func TestReadyNodesAndSliceEvents(t *testing.T) {
	slice := &discoveryv1.EndpointSlice{Endpoints: []discoveryv1.Endpoint{
		{NodeName: ptr.To("n1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
		{NodeName: ptr.To("n2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		{NodeName: ptr.To("n3")}, // readiness unknown counts as ready
		{Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
	}}
	slice.Namespace, slice.Name = "d", "web-1"
	slice.Labels = map[string]string{discoveryv1.LabelServiceName: "web"}
	if got := fmt.Sprint(readyIn(slice).nodes); got != "[n1 n3]" {
		t.Fatalf("ready nodes %s", got)
	}
	w := newWatcher("", "k")
	w.onSlice(nil, slice)
	nodes, _ := w.readyEndpoints("d/web")
	if p := w.take(); fmt.Sprint(p.endpoints) != "[d/web]" || fmt.Sprint(nodes) != "[n1 n3]" {
		t.Fatalf("after add: pending %v, nodes %v", p.endpoints, nodes)
	}
	// A second slice of the Service: the union, sorted, each node once;
	// gone again, the first slice's nodes.
	second := &discoveryv1.EndpointSlice{Endpoints: []discoveryv1.Endpoint{{NodeName: ptr.To("n3")}, {NodeName: ptr.To("n2")}}}
	second.Namespace, second.Name, second.Labels = "d", "web-2", slice.Labels
	w.onSlice(nil, second)
	if nodes, _ := w.readyEndpoints("d/web"); fmt.Sprint(nodes) != "[n1 n2 n3]" {
		t.Fatalf("two slices: nodes %v, want [n1 n2 n3]", nodes)
	}
	w.onSlice(second, nil)
	nodes, _ = w.readyEndpoints("d/web")
	if p := w.take(); fmt.Sprint(p.endpoints) != "[d/web]" || fmt.Sprint(nodes) != "[n1 n3]" {
		t.Fatalf("second slice deleted: pending %v, nodes %v", p.endpoints, nodes)
	}
	same := slice.DeepCopy()
	w.onSlice(slice, same) // no change in ready nodes: nothing to do
	if p := w.take(); len(p.endpoints) != 0 {
		t.Fatalf("an unchanged slice made work: %v", p.endpoints)
	}
	if _, anyReady := w.readyEndpoints("d/web"); !anyReady {
		t.Fatal("a slice with ready endpoints counts as having none")
	}
	// Only the endpoint without a node stays ready: no node, but still an
	// endpoint, which withdrawWithoutEndpoints must see.
	offNode := slice.DeepCopy()
	for i := range offNode.Endpoints[:3] {
		offNode.Endpoints[i].Conditions.Ready = ptr.To(false)
	}
	w.onSlice(same, offNode)
	if p := w.take(); fmt.Sprint(p.endpoints) != "[d/web]" {
		t.Fatalf("a change of ready nodes made no work: %v", p.endpoints)
	}
	if nodes, anyReady := w.readyEndpoints("d/web"); len(nodes) != 0 || !anyReady {
		t.Fatalf("ready endpoints %v, any %v; want no node but some endpoint", nodes, anyReady)
	}
	none := offNode.DeepCopy()
	none.Endpoints[3].Conditions.Ready = ptr.To(false)
	w.onSlice(offNode, none)
	if p := w.take(); fmt.Sprint(p.endpoints) != "[d/web]" {
		t.Fatalf("losing the last ready endpoint made no work: %v", p.endpoints)
	}
	if _, anyReady := w.readyEndpoints("d/web"); anyReady {
		t.Fatal("no ready endpoint left, yet some counted")
	}
	w.onSlice(none, nil)
	nodes, _ = w.readyEndpoints("d/web")
	if p := w.take(); fmt.Sprint(p.endpoints) != "[d/web]" || len(nodes) != 0 {
		t.Fatalf("after delete: pending %v, nodes %v", p.endpoints, nodes)
	}
}
