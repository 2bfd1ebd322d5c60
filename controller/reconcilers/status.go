package reconcilers

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/controller/allocator"
	"github.com/heraldlb/herald/internal/k8s"
)

// Reasons of the herald.dev/IPAllocated condition and of Service Events.
// A false condition takes its reason from the allocator's error (reasons.go).
const (
	ReasonAllocated = "Allocated"

	EventIPAllocated      = "IPAllocated"
	EventIPReleased       = "IPReleased"
	EventAllocationFailed = "AllocationFailed"
)

// serviceEvent is an Event to record once the status that implies it is written.
type serviceEvent struct {
	warning              bool
	reason, action, note string
}

// ingressFor lists one ingress per IP, in the Service's family order. ipMode
// is set here: the API server defaults it, and a status compared without it
// would differ from what the server returns and be written twice.
func ingressFor(ips []netip.Addr) []corev1.LoadBalancerIngress {
	out := make([]corev1.LoadBalancerIngress, 0, len(ips))
	for _, ip := range ips {
		out = append(out, corev1.LoadBalancerIngress{IP: ip.String(), IPMode: new(corev1.LoadBalancerIPModeVIP)})
	}
	return out
}

// joinIPs reads "198.51.100.10" or "198.51.100.10 and 2001:db8::10".
func joinIPs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, " and ")
}

func assignedNote(a allocator.Assignment) string {
	return "assigned " + joinIPs(a.IPs) + " from pool " + a.Pool
}

// statusAssigned is cur with the Service holding a: its IPs as ingress and
// the condition true. Unchanged parts, lastTransitionTime included, stay as
// they are, so a Service that keeps its IPs compares equal.
func statusAssigned(cur corev1.ServiceStatus, generation int64, a allocator.Assignment) corev1.ServiceStatus {
	st := *cur.DeepCopy()
	st.LoadBalancer.Ingress = ingressFor(a.IPs)
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1beta1.ConditionServiceIPAllocated, Status: metav1.ConditionTrue,
		Reason: ReasonAllocated, Message: assignedNote(a), ObservedGeneration: generation,
	})
	return st
}

// statusFailed is cur without an IP and with the condition false, saying why.
func statusFailed(cur corev1.ServiceStatus, generation int64, err error) corev1.ServiceStatus {
	st := *cur.DeepCopy()
	st.LoadBalancer.Ingress = nil
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1beta1.ConditionServiceIPAllocated, Status: metav1.ConditionFalse,
		Reason: failureOf(err).reason, Message: err.Error(), ObservedGeneration: generation,
	})
	return st
}

// statusForgotten is cur without what Herald wrote, for a Service Herald no
// longer serves. The condition says Herald wrote the ingress; without it,
// only ingress entries with IPs Herald just released are removed, so another
// implementation's status stays.
func statusForgotten(cur corev1.ServiceStatus, released []netip.Addr) corev1.ServiceStatus {
	st := *cur.DeepCopy()
	if meta.FindStatusCondition(st.Conditions, v1beta1.ConditionServiceIPAllocated) != nil {
		st.LoadBalancer.Ingress = nil
		meta.RemoveStatusCondition(&st.Conditions, v1beta1.ConditionServiceIPAllocated)
		return st
	}
	st.LoadBalancer.Ingress = slices.DeleteFunc(st.LoadBalancer.Ingress, func(in corev1.LoadBalancerIngress) bool {
		ip, err := netip.ParseAddr(in.IP)
		return err == nil && slices.Contains(released, ip.Unmap())
	})
	if len(st.LoadBalancer.Ingress) == 0 {
		st.LoadBalancer.Ingress = nil
	}
	return st
}

// eventsFor lists the Events that a status change from cur to next stands
// for: addresses released (why completes "released 198.51.100.10: ..."),
// addresses assigned, and a new or different failure.
func eventsFor(cur, next corev1.ServiceStatus, pool, why string) []serviceEvent {
	var out []serviceEvent
	before, after := k8s.IngressIPs(cur.LoadBalancer), k8s.IngressIPs(next.LoadBalancer)
	var gone []netip.Addr
	for _, ip := range before {
		if !slices.Contains(after, ip) {
			gone = append(gone, ip)
		}
	}
	if len(gone) > 0 {
		out = append(out, releasedEvent(gone, why))
	}
	if len(after) > 0 && !slices.Equal(before, after) {
		out = append(out, serviceEvent{reason: EventIPAllocated, action: "Allocate", note: assignedNote(allocator.Assignment{Pool: pool, IPs: after})})
	}
	was := meta.FindStatusCondition(cur.Conditions, v1beta1.ConditionServiceIPAllocated)
	now := meta.FindStatusCondition(next.Conditions, v1beta1.ConditionServiceIPAllocated)
	if now != nil && now.Status == metav1.ConditionFalse &&
		(was == nil || was.Status != now.Status || was.Reason != now.Reason || was.Message != now.Message) {
		out = append(out, serviceEvent{warning: true, reason: EventAllocationFailed, action: "Allocate", note: now.Message})
	}
	return out
}

// releasedEvent says that ips were released, and why if known.
func releasedEvent(ips []netip.Addr, why string) serviceEvent {
	note := "released " + joinIPs(ips)
	if why != "" {
		note += ": " + why
	}
	return serviceEvent{reason: EventIPReleased, action: "Release", note: note}
}
