package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// Helpers that build and inspect the objects the tests use.

func (h *harness) create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := h.c.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func (h *harness) service(t *testing.T, ns, name string) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{}
	if err := h.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, svc); err != nil {
		t.Fatalf("get Service %s/%s: %v", ns, name, err)
	}
	return svc
}

// update re-reads the object and applies mutate until the write does not conflict.
func update[T client.Object](t *testing.T, h *harness, obj T, mutate func(T)) {
	t.Helper()
	for range 10 {
		if err := h.c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatalf("get %s: %v", obj.GetName(), err)
		}
		mutate(obj)
		err := h.c.Update(context.Background(), obj)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatalf("update %s: %v", obj.GetName(), err)
		}
	}
	t.Fatalf("update %s: conflicts", obj.GetName())
}

func ingressIPs(svc *corev1.Service) []string {
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

func allocatedCondition(svc *corev1.Service) *metav1.Condition {
	return meta.FindStatusCondition(svc.Status.Conditions, v1beta1.ConditionServiceIPAllocated)
}

// waitAssigned waits until the Service has as many IPs as it has families
// (or want, if given), each with ipMode VIP and the condition true, and
// returns it.
func (h *harness) waitAssigned(t *testing.T, ns, name string, want ...string) *corev1.Service {
	t.Helper()
	var svc *corev1.Service
	eventually(t, 20*time.Second, "Service "+ns+"/"+name+" assigned", func() (bool, string) {
		svc = h.service(t, ns, name)
		ips := ingressIPs(svc)
		c := allocatedCondition(svc)
		if c == nil || c.Status != metav1.ConditionTrue || len(ips) == 0 {
			return false, describe(svc)
		}
		if len(want) > 0 && !slices.Equal(ips, want) {
			return false, describe(svc)
		}
		if len(want) == 0 && svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack && len(ips) != len(svc.Spec.IPFamilies) {
			return false, describe(svc)
		}
		return true, ""
	})
	for i, in := range svc.Status.LoadBalancer.Ingress {
		if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
			t.Errorf("%s/%s ingress %d: ipMode %v, want VIP", ns, name, i, in.IPMode)
		}
		ip := netip.MustParseAddr(in.IP)
		fam := corev1.IPv4Protocol
		if ip.Is6() {
			fam = corev1.IPv6Protocol
		}
		if i >= len(svc.Spec.IPFamilies) || svc.Spec.IPFamilies[i] != fam {
			t.Errorf("%s/%s ingress %v not in family order %v", ns, name, ingressIPs(svc), svc.Spec.IPFamilies)
		}
	}
	c := allocatedCondition(svc)
	if c.Reason != "Allocated" || c.ObservedGeneration != svc.Generation || !strings.HasPrefix(c.Message, "assigned "+strings.Join(ingressIPs(svc), " and ")+" from pool ") {
		t.Errorf("%s/%s condition %+v does not describe the assignment %v (generation %d)", ns, name, c, ingressIPs(svc), svc.Generation)
	}
	return svc
}

// waitRefused waits until the Service has no IP and the condition is false
// with the reason.
func (h *harness) waitRefused(t *testing.T, ns, name, reason string) *corev1.Service {
	t.Helper()
	var svc *corev1.Service
	eventually(t, 20*time.Second, "Service "+ns+"/"+name+" refused with "+reason, func() (bool, string) {
		svc = h.service(t, ns, name)
		c := allocatedCondition(svc)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == reason && len(svc.Status.LoadBalancer.Ingress) == 0, describe(svc)
	})
	return svc
}

// waitEvent waits for an Event about the object with the reason whose
// message contains substr, and returns the message.
func (h *harness) waitEvent(t *testing.T, ns, name, reason, substr string) string {
	t.Helper()
	var msg string
	eventually(t, 20*time.Second, fmt.Sprintf("Event %s %q about %s/%s", reason, substr, ns, name), func() (bool, string) {
		list, err := h.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			seen = append(seen, e.Reason+": "+e.Message)
			if e.Reason == reason && strings.Contains(e.Message, substr) {
				msg = e.Message
				return true, ""
			}
		}
		return false, strings.Join(seen, " | ")
	})
	return msg
}

func inPrefix(t *testing.T, ip, prefix string) {
	t.Helper()
	if !netip.MustParsePrefix(prefix).Contains(netip.MustParseAddr(ip)) {
		t.Errorf("IP %s is not in %s", ip, prefix)
	}
}

func readyCondition(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, v1beta1.ConditionReady)
}
