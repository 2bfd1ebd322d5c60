package reconcile

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// SliceDigest is the informer transform for EndpointSlices: it keeps only
// what the speaker reads (the Service name label, and which nodes have a
// ready endpoint, see readyIn): one ready endpoint per node, plus one
// without a node if the slice has such, with no addresses, ports, hints,
// targets or other metadata, and no endpoint that is not ready. Every
// speaker caches every slice of the cluster, so this is most of its
// memory in a large cluster (docs/benchmarks.md, speaker memory).
func SliceDigest(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil // a tombstone: handlers unwrap it
	}
	out := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion,
			Generation: s.Generation, DeletionTimestamp: s.DeletionTimestamp,
		},
		AddressType: s.AddressType,
	}
	if name, ok := s.Labels[discoveryv1.LabelServiceName]; ok {
		out.Labels = map[string]string{discoveryv1.LabelServiceName: name}
	}
	ready := readyIn(s)
	offNode := slices.ContainsFunc(s.Endpoints, func(ep discoveryv1.Endpoint) bool { return ep.NodeName == nil && endpointReady(ep) })
	if len(ready.nodes) == 0 && !offNode {
		return out, nil
	}
	// Readiness not set counts as ready: no pointer to keep. The node
	// names point into ready.nodes, one allocation for all.
	out.Endpoints = make([]discoveryv1.Endpoint, len(ready.nodes), len(ready.nodes)+1)
	for i := range ready.nodes {
		out.Endpoints[i].NodeName = &ready.nodes[i]
	}
	if offNode {
		out.Endpoints = append(out.Endpoints, discoveryv1.Endpoint{})
	}
	return out, nil
}

var _ toolscache.TransformFunc = SliceDigest

// NodeDigest is the informer transform for Nodes: it drops the parts of a
// Node's status the speaker never reads and that grow with what runs on
// it (the image list, often tens of kilobytes a node, and volumes), and
// managed fields.
func NodeDigest(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	n.ManagedFields = nil
	n.Status.Images = nil
	n.Status.VolumesInUse = nil
	n.Status.VolumesAttached = nil
	return n, nil
}

// ServiceDigest is the informer transform for Services: it keeps only
// what the speaker reads (see readService and watcher.relevant): identity,
// labels (advertisement Service selectors), type, class, traffic policy
// and the ingress IPs. Annotations (kubectl's last-applied copy of the
// whole object among them), ports, selector and cluster IPs are dropped:
// every speaker caches every Service of the cluster.
func ServiceDigest(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil // a tombstone: handlers unwrap it
	}
	out := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: svc.Name, Namespace: svc.Namespace, UID: svc.UID, ResourceVersion: svc.ResourceVersion,
			Generation: svc.Generation, DeletionTimestamp: svc.DeletionTimestamp, Labels: svc.Labels,
		},
		Spec: corev1.ServiceSpec{
			Type: svc.Spec.Type, LoadBalancerClass: svc.Spec.LoadBalancerClass,
			ExternalTrafficPolicy: svc.Spec.ExternalTrafficPolicy,
		},
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		out.Status.LoadBalancer.Ingress = append(out.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: in.IP})
	}
	return out, nil
}
