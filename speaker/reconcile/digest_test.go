package reconcile

import (
	"fmt"
	"math/rand/v2"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
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
		if len(d.Endpoints) > 10 {
			t.Fatalf("slice %d: %d endpoints kept, at most one per node (4) and readiness", i, len(d.Endpoints))
		}
	}
	tomb := toolscache.DeletedFinalStateUnknown{Key: "ns/s"}
	if got, _ := SliceDigest(tomb); got != tomb {
		t.Fatalf("a tombstone became %v", got)
	}
}
