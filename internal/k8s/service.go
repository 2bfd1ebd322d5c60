// Package k8s holds the Kubernetes helpers the controller and the speaker
// share: reading what a Service asks for (annotations, class, traffic
// policy), the memberlist Secret's name, event recording, logging and
// manager setup. Nothing here decides anything; it only reads and wires.
package k8s

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// ErrBadAnnotation is wrapped by errors about a Service's annotations or
// spec.loadBalancerIP that cannot be read.
var ErrBadAnnotation = errors.New("invalid Service annotation")

// ServiceKey is "namespace/name", the identity Herald uses for a Service.
func ServiceKey(svc *corev1.Service) string { return svc.Namespace + "/" + svc.Name }

// IsLoadBalancer reports whether the Service is of type LoadBalancer.
func IsLoadBalancer(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer
}

// HasClass reports whether the Service belongs to the load balancer class
// Herald serves: with class "", Services without spec.loadBalancerClass;
// otherwise exactly that class.
func HasClass(svc *corev1.Service, class string) bool {
	if svc.Spec.LoadBalancerClass == nil {
		return class == ""
	}
	return *svc.Spec.LoadBalancerClass == class
}

// annotation returns the first of name and its aliases that is set.
func annotation(svc *corev1.Service, name string, aliases []string) (value, key string) {
	if v, ok := svc.Annotations[name]; ok {
		return strings.TrimSpace(v), name
	}
	for _, a := range aliases {
		if v, ok := svc.Annotations[a]; ok {
			return strings.TrimSpace(v), a
		}
	}
	return "", ""
}

// RequestedPool is the pool the Service names (herald.dev/ip-pool or a
// MetalLB alias), "" for none.
func RequestedPool(svc *corev1.Service) string {
	v, _ := annotation(svc, v1beta1.AnnotationIPPool, v1beta1.IPPoolAliases)
	return v
}

// SharingKey is the Service's allow-shared-ip key, "" for none.
func SharingKey(svc *corev1.Service) string {
	v, _ := annotation(svc, v1beta1.AnnotationAllowSharedIP, v1beta1.AllowSharedIPAliases)
	return v
}

// SharingNamespaces returns the namespaces, other than its own, whose
// Services may share an IP with the Service (herald.dev/sharing-cross-namespace):
// namespace names or "*", sorted, without duplicates; nil without the annotation.
func SharingNamespaces(svc *corev1.Service) ([]string, error) {
	v, key := annotation(svc, v1beta1.AnnotationSharingCrossNamespace, nil)
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s != "*" && len(validation.IsDNS1123Label(s)) > 0 {
			return nil, fmt.Errorf("%w: %s: %q is neither a namespace name nor \"*\"", ErrBadAnnotation, key, s)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// RequestedIPs returns the IPs the Service asks for: the load-balancer-ips
// annotation (Herald's, else a MetalLB alias), comma-separated, and
// spec.loadBalancerIP. When both are set, the spec's IP must be one of the
// annotation's. The result has no duplicates, in the order written.
func RequestedIPs(svc *corev1.Service) ([]netip.Addr, error) {
	var ips []netip.Addr
	v, key := annotation(svc, v1beta1.AnnotationLoadBalancerIPs, v1beta1.LoadBalancerIPsAliases)
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("%w: %s: %q is not an IP address", ErrBadAnnotation, key, s)
		}
		ip = ip.Unmap()
		if !slices.Contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	if s := strings.TrimSpace(svc.Spec.LoadBalancerIP); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("%w: spec.loadBalancerIP: %q is not an IP address", ErrBadAnnotation, s)
		}
		ip = ip.Unmap()
		switch {
		case len(ips) == 0:
			ips = append(ips, ip)
		case !slices.Contains(ips, ip):
			return nil, fmt.Errorf("%w: spec.loadBalancerIP %s is not among the IPs of annotation %s (%s)", ErrBadAnnotation, ip, key, v)
		}
	}
	return ips, nil
}

// NoSelector stands for an empty pod selector in LocalTrafficSelector, so
// that "Local without selector" differs from "Cluster".
const NoSelector = "<none>"

// LocalTrafficSelector is the Service's pod selector in canonical form
// (keys sorted) when externalTrafficPolicy is Local, and "" otherwise.
// Services sharing an IP must agree on it: one node answers for the IP.
func LocalTrafficSelector(svc *corev1.Service) string {
	if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		return ""
	}
	if len(svc.Spec.Selector) == 0 {
		return NoSelector
	}
	return labels.SelectorFromSet(svc.Spec.Selector).String()
}

// IngressIPs returns the IPs of a status.loadBalancer, in order, skipping
// entries without a valid IP (hostnames).
func IngressIPs(lb corev1.LoadBalancerStatus) []netip.Addr {
	var out []netip.Addr
	for _, in := range lb.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}
