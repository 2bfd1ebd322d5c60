package reconcile

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// SliceDigest is the informer transform for EndpointSlices: it keeps only
// what the speaker reads (the Service name label, and which nodes have a
// ready endpoint, see readyIn), one endpoint per node and readiness, with
// no addresses, ports, hints, targets or other metadata. Every speaker
// caches every slice of the cluster, so this is most of its memory in a
// large cluster (docs/benchmarks.md, speaker memory).
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
	type kept struct {
		node  string
		named bool
		ready bool
	}
	seen := make(map[kept]bool, 4)
	for _, ep := range s.Endpoints {
		k := kept{ready: ep.Conditions.Ready == nil || *ep.Conditions.Ready}
		if ep.NodeName != nil {
			k.node, k.named = *ep.NodeName, true
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		d := discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: &k.ready}}
		if k.named {
			d.NodeName = &k.node
		}
		out.Endpoints = append(out.Endpoints, d)
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

// ServiceDigest is the informer transform for Services: it drops managed
// fields and kubectl's last-applied-configuration annotation (a copy of
// the whole object as last applied, often half its size), which the
// speaker never reads.
func ServiceDigest(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	svc.ManagedFields = nil
	delete(svc.Annotations, corev1.LastAppliedConfigAnnotation)
	return svc, nil
}
