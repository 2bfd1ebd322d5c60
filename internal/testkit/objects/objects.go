// Package objects builds the Kubernetes objects Herald's tests and the lab
// create: LoadBalancer Services and IPPools. It imports no testing code, so
// the lab's own binary uses it too.
package objects

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// ServiceOption changes a Service that Service builds.
type ServiceOption func(*corev1.Service)

// Service is a LoadBalancer Service namespace/name with one TCP port, 80,
// no node ports and no selector (the API server allocates its IPs all the
// same), changed by opts in order.
func Service(namespace, name string, opts ...ServiceOption) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			Ports:                         []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
			AllocateLoadBalancerNodePorts: ptr.To(false),
		},
	}
	for _, o := range opts {
		o(svc)
	}
	return svc
}

// Annotate sets annotations, given as key, value, key, value...
func Annotate(kv ...string) ServiceOption {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

// FromPool asks for an address of the named pool.
func FromPool(pool string) ServiceOption { return Annotate(v1beta1.AnnotationIPPool, pool) }

// Families sets the IP family policy and families.
func Families(policy corev1.IPFamilyPolicy, fams ...corev1.IPFamily) ServiceOption {
	return func(s *corev1.Service) { s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &policy, fams }
}

// Port makes the one TCP port p.
func Port(p int32) ServiceOption {
	return func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Name: "p", Port: p, Protocol: corev1.ProtocolTCP}}
	}
}

// Class sets spec.loadBalancerClass.
func Class(c string) ServiceOption { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c } }

// LocalTraffic sets externalTrafficPolicy Local.
func LocalTraffic(s *corev1.Service) {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}

// Pool is an IPPool of ranges; with autoAssign false only Services that
// name it take its addresses, so one test's pool never serves another's
// Services.
func Pool(name string, autoAssign bool, ranges ...v1beta1.AddressRange) *v1beta1.IPPool {
	return &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPPoolSpec{Addresses: ranges, AutoAssign: ptr.To(autoAssign)}}
}
