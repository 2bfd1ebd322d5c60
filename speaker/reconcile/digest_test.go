package reconcile

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// The digest keeps what the speaker reads from a slice: readyIn and the
// Service name give the same answer before and after, over random slices.
func TestSliceDigestKeepsWhatTheSpeakerReads(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	yes, no := true, false
	readiness := []*bool{nil, &yes, &no}
	for i := range 2000 {
		s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("s", i), Namespace: "ns",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web", "endpointslice.kubernetes.io/managed-by": "x"}}}
		for range rng.IntN(12) {
			ep := discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: readiness[rng.IntN(3)]}}
			if n := rng.IntN(5); n > 0 {
				name := fmt.Sprint("node", n)
				ep.NodeName = &name
			}
			s.Endpoints = append(s.Endpoints, ep)
		}
		got, err := SliceDigest(s)
		if err != nil {
			t.Fatal(err)
		}
		d := got.(*discoveryv1.EndpointSlice)
		if !readyIn(d).equal(readyIn(s)) {
			t.Fatalf("slice %d: digest reads %+v, the slice %+v", i, readyIn(d), readyIn(s))
		}
		if d.Labels[discoveryv1.LabelServiceName] != "web" || d.Name != s.Name || d.Namespace != "ns" || len(d.Labels) != 1 {
			t.Fatalf("slice %d: metadata %+v", i, d.ObjectMeta)
		}
		if len(d.Endpoints) > 5 {
			t.Fatalf("slice %d: %d endpoints kept, want at most one per node (4) and one without a node", i, len(d.Endpoints))
		}
	}
	tomb := toolscache.DeletedFinalStateUnknown{Key: "ns/s"}
	if got, _ := SliceDigest(tomb); got != tomb {
		t.Fatalf("a tombstone became %v", got)
	}
}

// The Service digest keeps what the speaker reads (relevance, ingress IPs,
// traffic policy, labels, identity) and drops the rest, over Services that
// vary in each.
func TestServiceDigestKeepsWhatTheSpeakerReads(t *testing.T) {
	w := newWatcher("", "")
	classW := newWatcher("example.com/lb", "")
	other := "example.com/lb"
	for i, svc := range []*corev1.Service{
		objects.Service("d", "plain"),
		func() *corev1.Service {
			s := objects.Service("d", "local")
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Labels = map[string]string{"app": "web", "tier": "front"}
			s.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: `{"big":"copy"}`, "herald.dev/ip-pool": "p"}
			s.Spec.Selector = map[string]string{"app": "web"}
			s.Spec.ClusterIPs = []string{"10.96.0.10", "fd00::10"}
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.7", Hostname: "x.example.com"}, {IP: "2001:db8::7"}}
			return s
		}(),
		func() *corev1.Service {
			s := objects.Service("d", "classed")
			s.Spec.LoadBalancerClass = &other
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.8"}}
			return s
		}(),
		func() *corev1.Service {
			s := objects.Service("d", "clusterip")
			s.Spec.Type = corev1.ServiceTypeClusterIP
			return s
		}(),
	} {
		svc.UID = types.UID(fmt.Sprint("uid-", i))
		svc.ResourceVersion = fmt.Sprint(100 + i)
		before := svc.DeepCopy()
		got, err := ServiceDigest(svc)
		if err != nil {
			t.Fatal(err)
		}
		d := got.(*corev1.Service)
		if w.relevant(d) != w.relevant(before) || classW.relevant(d) != classW.relevant(before) {
			t.Errorf("%s: relevant %v/%v after the digest, %v/%v before", svc.Name, w.relevant(d), classW.relevant(d), w.relevant(before), classW.relevant(before))
		}
		if a, b := fmt.Sprint(k8s.IngressIPs(d.Status.LoadBalancer)), fmt.Sprint(k8s.IngressIPs(before.Status.LoadBalancer)); a != b {
			t.Errorf("%s: ingress IPs %s after, %s before", svc.Name, a, b)
		}
		if k8s.ServiceKey(d) != k8s.ServiceKey(before) || d.UID != before.UID || d.ResourceVersion != before.ResourceVersion ||
			d.Spec.ExternalTrafficPolicy != before.Spec.ExternalTrafficPolicy || !maps.Equal(d.Labels, before.Labels) {
			t.Errorf("%s: identity, traffic policy or labels changed: %+v", svc.Name, d)
		}
		if d.Annotations != nil || d.Spec.Ports != nil || d.Spec.Selector != nil || d.Spec.ClusterIPs != nil {
			t.Errorf("%s: kept what the speaker never reads: %+v", svc.Name, d)
		}
	}
	tomb := toolscache.DeletedFinalStateUnknown{Key: "d/s"}
	if got, _ := ServiceDigest(tomb); got != tomb {
		t.Fatalf("a tombstone became %v", got)
	}
}
