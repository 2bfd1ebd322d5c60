package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// TestTenants: namespaces are tenants. A tenant who asks for another
// tenant's address learns neither the Service that holds it nor its sharing
// key, whatever key it guesses; sharing an address across namespaces takes
// the opt-in of both Services; and a namespace created just before its
// Service is never mistaken for one without labels.
func TestTenants(t *testing.T) {
	h := newHarness(t)
	h.create(t, objects.Pool("shared", false, "198.51.100.0/28"))
	teams := objects.Pool("teams", true, "203.0.113.0/26")
	teams.Spec.AllocateTo = &v1beta1.AllocateTo{NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tenant": "yes"}}}}
	h.create(t, teams)
	h.runController(t, h.controllerOptions())

	const ip = "198.51.100.5"
	h.createNamespace(t, "team-a")
	h.createNamespace(t, "team-b")
	h.create(t, objects.Service("team-a", "payroll", objects.Port(80), objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, ip, v1beta1.AnnotationAllowSharedIP, "s3cr3t-key")))
	h.waitAssigned(t, "team-a", "payroll", ip)

	t.Run("refusals do not reveal another namespace's Service or key", func(t *testing.T) {
		secrets := []string{"payroll", "team-a", "s3cr3t-key"}
		for i, key := range []string{"", "guess", "s3cr3t-key"} {
			name := fmt.Sprintf("probe-%d", i)
			opts := []objects.ServiceOption{objects.Port(443), objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, ip)}
			if key != "" {
				opts = append(opts, objects.Annotate(v1beta1.AnnotationAllowSharedIP, key))
			}
			h.create(t, objects.Service("team-b", name, opts...))
			svc := h.waitRefused(t, "team-b", name, "IPInUse")
			msg := allocatedCondition(svc).Message
			if !strings.Contains(msg, "another namespace") || !strings.Contains(msg, v1beta1.AnnotationSharingCrossNamespace) {
				t.Errorf("key %q: the refusal %q does not say why", key, msg)
			}
			event := h.waitEvent(t, "team-b", name, "AllocationFailed", ip)
			for _, s := range secrets {
				if strings.Contains(msg, s) || strings.Contains(event, s) {
					t.Errorf("key %q: the refusal reveals %q: condition %q, Event %q", key, s, msg, event)
				}
			}
		}
	})

	t.Run("sharing across namespaces needs both Services to opt in", func(t *testing.T) {
		const shared = "198.51.100.6"
		h.createNamespace(t, "team-c")
		h.create(t, objects.Service("team-a", "web", objects.Port(80), objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, shared,
			v1beta1.AnnotationAllowSharedIP, "k", v1beta1.AnnotationSharingCrossNamespace, "team-c")))
		h.waitAssigned(t, "team-a", "web", shared)
		// team-c/api has the key but does not list team-a: refused.
		h.create(t, objects.Service("team-c", "api", objects.Port(443), objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, shared, v1beta1.AnnotationAllowSharedIP, "k")))
		h.waitRefused(t, "team-c", "api", "IPInUse")
		// Opting in lets it share.
		update(t, h, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "team-c", Name: "api"}}, func(s *corev1.Service) {
			s.Annotations[v1beta1.AnnotationSharingCrossNamespace] = "team-a"
		})
		h.waitAssigned(t, "team-c", "api", shared)
		// A third namespace that lists "*" is still refused: team-a/web did not list it.
		h.create(t, objects.Service("team-b", "api", objects.Port(8080), objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, shared,
			v1beta1.AnnotationAllowSharedIP, "k", v1beta1.AnnotationSharingCrossNamespace, "*")))
		h.waitRefused(t, "team-b", "api", "IPInUse")
		// A malformed list is the Service's own mistake.
		h.create(t, objects.Service("team-c", "typo", objects.Port(9090), objects.Annotate(v1beta1.AnnotationAllowSharedIP, "k", v1beta1.AnnotationSharingCrossNamespace, "Team_A")))
		h.waitRefused(t, "team-c", "typo", "InvalidRequest")
	})

	t.Run("a namespace created just before its Service", func(t *testing.T) {
		// Every Service may use only the pool restricted to labelled
		// namespaces; none may ever be refused, however far the controller's
		// namespace cache lags behind its Service cache. (The lag cannot be
		// forced here; reconcile's TestNamespaceUnknownToTheCache makes it.)
		var mu sync.Mutex
		var refused []string
		stop := watchServices(t, h.cs, func(_ watch.EventType, svc *corev1.Service) {
			if !strings.HasPrefix(svc.Namespace, "fresh-") {
				return
			}
			if c := allocatedCondition(svc); c != nil && c.Status == metav1.ConditionFalse {
				mu.Lock()
				refused = append(refused, fmt.Sprintf("%s/%s: %s", svc.Namespace, svc.Name, c.Message))
				mu.Unlock()
			}
		}, func(err error) { t.Error(err) })
		defer stop()
		const n = 40
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ns := fmt.Sprintf("fresh-%d", i)
				if err := h.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"tenant": "yes"}}}); err != nil {
					t.Error(err)
					return
				}
				if err := h.c.Create(context.Background(), objects.Service(ns, "web")); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for i := range n {
			inPrefix(t, ingressIPs(h.waitAssigned(t, fmt.Sprintf("fresh-%d", i), "web"))[0], "203.0.113.0/26")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(refused) > 0 {
			t.Errorf("%d of %d Services were refused before they got their address:\n%s", len(refused), n, strings.Join(refused, "\n"))
		}
	})
}
