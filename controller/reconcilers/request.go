package reconcilers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/heraldlb/herald/controller/allocator"
	"github.com/heraldlb/herald/internal/k8s"
)

// serves reports whether Herald assigns an IP to the Service; if not, why
// completes "released 198.51.100.10: ...".
func serves(svc *corev1.Service, class string) (ok bool, why string) {
	switch {
	case svc.DeletionTimestamp != nil:
		return false, "the Service is being deleted"
	case !k8s.IsLoadBalancer(svc):
		return false, "the Service is no longer of type LoadBalancer"
	case !k8s.HasClass(svc, class):
		if svc.Spec.LoadBalancerClass == nil {
			return false, fmt.Sprintf("the Service has no loadBalancerClass; this controller serves class %q", class)
		}
		return false, fmt.Sprintf("the Service has loadBalancerClass %q, which this controller does not serve", *svc.Spec.LoadBalancerClass)
	}
	return true, ""
}

// requestFor describes what the Service asks the allocator for.
// nsLabels are its namespace's labels, for pools restricted by namespace
// selectors. The error, if any, is the Service's own mistake.
func requestFor(svc *corev1.Service, nsLabels map[string]string) (allocator.Request, error) {
	req := allocator.Request{
		Service:              k8s.ServiceKey(svc),
		Namespace:            svc.Namespace,
		NamespaceLabels:      nsLabels,
		ServiceLabels:        svc.Labels,
		Pool:                 k8s.RequestedPool(svc),
		SharingKey:           k8s.SharingKey(svc),
		LocalTrafficSelector: k8s.LocalTrafficSelector(svc),
	}
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			req.Families = append(req.Families, allocator.IPv4)
		case corev1.IPv6Protocol:
			req.Families = append(req.Families, allocator.IPv6)
		}
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		switch *p {
		case corev1.IPFamilyPolicyPreferDualStack:
			req.FamilyPolicy = allocator.PreferDualStack
		case corev1.IPFamilyPolicyRequireDualStack:
			req.FamilyPolicy = allocator.RequireDualStack
		}
	}
	for _, p := range svc.Spec.Ports {
		req.Ports = append(req.Ports, allocator.Port{Protocol: string(p.Protocol), Port: p.Port})
	}
	var err error
	if req.IPs, err = k8s.RequestedIPs(svc); err != nil {
		return req, err
	}
	req.SharingNamespaces, err = k8s.SharingNamespaces(svc)
	return req, err
}
