package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/controller/reconcilers"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// TestServices runs one controller against a real API server and walks
// through the Service shapes and life cycles a user meets. Subtests share
// the control plane and pools and run in order; each uses its own namespace.
func TestServices(t *testing.T) {
	h := newHarness(t)
	h.create(t, objects.Pool("lan", true, "198.51.100.0/28", "2001:db8:1::/124"))
	h.create(t, objects.Pool("reserved", false, "203.0.113.0/29"))
	o := h.controllerOptions()
	metricsPort := testkit.FreePort(t)
	// Plain HTTP (said explicitly): this test counts the controller's own
	// requests; TestMetricsEndpoint checks the secure endpoint.
	o.Metrics = k8s.MetricsFlags{BindAddress: fmt.Sprintf("127.0.0.1:%d", metricsPort), Secure: false}
	o.LeaderElect = true
	stop := h.runController(t, o)

	t.Run("single-stack IPv4", func(t *testing.T) {
		h.createNamespace(t, "v4")
		h.create(t, objects.Service("v4", "web", objects.Families(corev1.IPFamilyPolicySingleStack, corev1.IPv4Protocol)))
		svc := h.waitAssigned(t, "v4", "web")
		ips := ingressIPs(svc)
		if len(ips) != 1 {
			t.Fatalf("ingress %v, want one IP", ips)
		}
		inPrefix(t, ips[0], "198.51.100.0/28")
		h.waitEvent(t, "v4", "web", "IPAllocated", "assigned "+ips[0]+" from pool lan")
	})

	t.Run("single-stack IPv6", func(t *testing.T) {
		h.createNamespace(t, "v6")
		h.create(t, objects.Service("v6", "web", objects.Families(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol)))
		ips := ingressIPs(h.waitAssigned(t, "v6", "web"))
		if len(ips) != 1 {
			t.Fatalf("ingress %v, want one IP", ips)
		}
		inPrefix(t, ips[0], "2001:db8:1::/124")
	})

	t.Run("PreferDualStack", func(t *testing.T) {
		h.createNamespace(t, "dual")
		h.create(t, objects.Service("dual", "web", objects.Families(corev1.IPFamilyPolicyPreferDualStack)))
		ips := ingressIPs(h.waitAssigned(t, "dual", "web"))
		if len(ips) != 2 {
			t.Fatalf("ingress %v, want an IPv4 and an IPv6 address", ips)
		}
		inPrefix(t, ips[0], "198.51.100.0/28")
		inPrefix(t, ips[1], "2001:db8:1::/124")
	})

	t.Run("RequireDualStack IPv6 first", func(t *testing.T) {
		h.create(t, objects.Service("dual", "v6first", objects.Families(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol)))
		ips := ingressIPs(h.waitAssigned(t, "dual", "v6first"))
		if len(ips) != 2 {
			t.Fatalf("ingress %v, want two", ips)
		}
		inPrefix(t, ips[0], "2001:db8:1::/124")
		inPrefix(t, ips[1], "198.51.100.0/28")
	})

	t.Run("requested IPs", func(t *testing.T) {
		h.createNamespace(t, "req")
		h.create(t, objects.Service("req", "herald", objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, "198.51.100.9")))
		h.create(t, objects.Service("req", "spec", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.51.100.10" }))
		h.create(t, objects.Service("req", "metallb", objects.Annotate("metallb.io/loadBalancerIPs", "198.51.100.11")))
		h.create(t, objects.Service("req", "universe", objects.Annotate("metallb.universe.tf/loadBalancerIPs", "198.51.100.14")))
		h.create(t, objects.Service("req", "dual", objects.Families(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol),
			objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, "2001:db8:1::c, 198.51.100.12")))
		h.waitAssigned(t, "req", "herald", "198.51.100.9")
		h.waitAssigned(t, "req", "spec", "198.51.100.10")
		h.waitAssigned(t, "req", "metallb", "198.51.100.11")
		h.waitAssigned(t, "req", "universe", "198.51.100.14")
		h.waitAssigned(t, "req", "dual", "198.51.100.12", "2001:db8:1::c")
	})

	t.Run("requested IP outside every pool", func(t *testing.T) {
		h.create(t, objects.Service("req", "outside", objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, "198.51.100.200")))
		svc := h.waitRefused(t, "req", "outside", "NotInPool")
		if msg := allocatedCondition(svc).Message; !strings.Contains(msg, "198.51.100.200") {
			t.Errorf("condition message %q does not name the IP", msg)
		}
		h.waitEvent(t, "req", "outside", "AllocationFailed", "198.51.100.200")
	})

	t.Run("requested IP taken, then released", func(t *testing.T) {
		h.create(t, objects.Service("req", "first", objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, "198.51.100.13")))
		h.waitAssigned(t, "req", "first", "198.51.100.13")
		h.create(t, objects.Service("req", "second", objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, "198.51.100.13")))
		h.waitRefused(t, "req", "second", "IPInUse")
		h.waitEvent(t, "req", "second", "AllocationFailed", "req/first")
		if err := h.c.Delete(context.Background(), h.service(t, "req", "first")); err != nil {
			t.Fatal(err)
		}
		h.waitEvent(t, "req", "first", "IPReleased", "released 198.51.100.13: the Service was deleted")
		// The waiting Service is retried once the address is free.
		h.waitAssigned(t, "req", "second", "198.51.100.13")
		h.waitEvent(t, "req", "second", "IPAllocated", "assigned 198.51.100.13 from pool lan")
	})

	t.Run("pool by annotation", func(t *testing.T) {
		h.createNamespace(t, "pools")
		for name, key := range map[string]string{"herald": v1beta1.AnnotationIPPool, "metallb": "metallb.io/address-pool", "universe": "metallb.universe.tf/address-pool"} {
			h.create(t, objects.Service("pools", name, objects.Annotate(key, "reserved")))
		}
		for _, name := range []string{"herald", "metallb", "universe"} {
			svc := h.waitAssigned(t, "pools", name)
			inPrefix(t, ingressIPs(svc)[0], "203.0.113.0/29")
			h.waitEvent(t, "pools", name, "IPAllocated", "from pool reserved")
		}
		h.create(t, objects.Service("pools", "missing", objects.Annotate(v1beta1.AnnotationIPPool, "nonexistent")))
		h.waitRefused(t, "pools", "missing", "PoolNotFound")
	})

	t.Run("sharing", func(t *testing.T) {
		h.createNamespace(t, "share")
		ip := "203.0.113.5"
		h.create(t, objects.Service("share", "http", objects.Port(80), objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, ip, v1beta1.AnnotationAllowSharedIP, "k")))
		h.create(t, objects.Service("share", "https", objects.Port(443), objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, ip, "metallb.universe.tf/allow-shared-ip", "k")))
		h.waitAssigned(t, "share", "http", ip)
		h.waitAssigned(t, "share", "https", ip)
		h.create(t, objects.Service("share", "clash", objects.Port(80), objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, ip, v1beta1.AnnotationAllowSharedIP, "k")))
		h.waitRefused(t, "share", "clash", "SharingConflict")
		h.create(t, objects.Service("share", "nokey", objects.Port(8080), objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, ip)))
		h.waitRefused(t, "share", "nokey", "IPInUse")
		h.create(t, objects.Service("share", "local", objects.Port(9090), objects.Annotate(v1beta1.AnnotationLoadBalancerIPs, ip, "metallb.io/allow-shared-ip", "k"),
			func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }))
		h.waitRefused(t, "share", "local", "SharingConflict")
	})

	t.Run("other class is left alone", func(t *testing.T) {
		h.createNamespace(t, "class")
		h.create(t, objects.Service("class", "other", objects.Class("example.com/other")))
		h.create(t, objects.Service("class", "ours"))
		h.waitAssigned(t, "class", "ours")
		// The sign that the controller has decided about "other".
		h.waitLog(t, `"msg":"Service not served"`, `"service":"class/other"`)
		if svc := h.service(t, "class", "other"); len(svc.Status.LoadBalancer.Ingress) > 0 || len(svc.Status.Conditions) > 0 {
			t.Errorf("Service of another class got a status: %s", describe(svc))
		}
	})

	t.Run("type change and deletion release the IP", func(t *testing.T) {
		h.createNamespace(t, "release")
		h.create(t, objects.Pool("reuse", false, "203.0.113.16/30"))
		h.create(t, objects.Service("release", "a", objects.Annotate(v1beta1.AnnotationIPPool, "reuse")))
		h.waitAssigned(t, "release", "a", "203.0.113.16")
		update(t, h, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "release", Name: "a"}}, func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeClusterIP
			s.Spec.AllocateLoadBalancerNodePorts = nil
		})
		eventually(t, 20*time.Second, "status cleared after type change", func() (bool, string) {
			svc := h.service(t, "release", "a")
			return len(svc.Status.LoadBalancer.Ingress) == 0 && allocatedCondition(svc) == nil, describe(svc)
		})
		h.waitEvent(t, "release", "a", "IPReleased", "released 203.0.113.16: the Service is no longer of type LoadBalancer")
		h.create(t, objects.Service("release", "b", objects.Annotate(v1beta1.AnnotationIPPool, "reuse")))
		h.waitAssigned(t, "release", "b", "203.0.113.16")
		if err := h.c.Delete(context.Background(), h.service(t, "release", "b")); err != nil {
			t.Fatal(err)
		}
		h.waitEvent(t, "release", "b", "IPReleased", "released 203.0.113.16: the Service was deleted")
		h.create(t, objects.Service("release", "c", objects.Annotate(v1beta1.AnnotationIPPool, "reuse")))
		h.waitAssigned(t, "release", "c", "203.0.113.16")
	})

	t.Run("pool shrink moves only the affected Service", func(t *testing.T) {
		h.createNamespace(t, "shrink")
		h.create(t, objects.Pool("shrink", false, "203.0.113.24/29"))
		rv := map[string]string{}
		for i, name := range []string{"a", "b", "c"} {
			h.create(t, objects.Service("shrink", name, objects.Annotate(v1beta1.AnnotationIPPool, "shrink")))
			rv[name] = h.waitAssigned(t, "shrink", name, fmt.Sprintf("203.0.113.%d", 24+i)).ResourceVersion
		}
		update(t, h, &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "shrink"}}, func(p *v1beta1.IPPool) {
			p.Spec.Addresses = []v1beta1.AddressRange{"203.0.113.24-203.0.113.25", "203.0.113.30-203.0.113.31"}
		})
		h.waitAssigned(t, "shrink", "c", "203.0.113.30")
		h.waitEvent(t, "shrink", "c", "IPReleased", "released 203.0.113.26: no pool the Service may use contains it any more")
		h.waitEvent(t, "shrink", "c", "IPAllocated", "assigned 203.0.113.30 from pool shrink")
		eventually(t, 20*time.Second, "pool shrink status", func() (bool, string) {
			var p v1beta1.IPPool
			if err := h.c.Get(context.Background(), client.ObjectKey{Name: "shrink"}, &p); err != nil {
				return false, err.Error()
			}
			s := p.Status
			ok := s.IPv4 != nil && *s.IPv4 == v1beta1.AddressCounts{Total: 4, Assigned: 3, Available: 1} &&
				s.Assigned == 3 && s.Available == 1 && s.IPv6 == nil && s.ObservedGeneration == p.Generation
			return ok, fmt.Sprintf("%+v", s)
		})
		for _, name := range []string{"a", "b"} {
			if got := h.service(t, "shrink", name).ResourceVersion; got != rv[name] {
				t.Errorf("Service shrink/%s was written after an unrelated pool edit (resourceVersion %s -> %s)", name, rv[name], got)
			}
		}
	})

	t.Run("config problems are reported on the object at fault", func(t *testing.T) {
		h.create(t, objects.Pool("overlap", true, "198.51.100.8/29"))
		h.create(t, &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "l2"},
			Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan", "missing"}}}})
		h.waitConfigCondition(t, &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "overlap"}}, metav1.ConditionFalse, v1beta1.ReasonConflict)
		h.waitEvent(t, "default", "overlap", v1beta1.ReasonConflict, "lan")
		h.waitConfigCondition(t, &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "l2"}}, metav1.ConditionTrue, v1beta1.ReasonPartiallyApplied)
		h.waitEvent(t, "default", "l2", v1beta1.ReasonPartiallyApplied, "missing")
		h.waitConfigCondition(t, &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}, metav1.ConditionTrue, v1beta1.ReasonValid)

		update(t, h, &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "overlap"}}, func(p *v1beta1.IPPool) {
			p.Spec.Addresses = []v1beta1.AddressRange{"198.51.100.128/29"}
		})
		h.waitConfigCondition(t, &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "overlap"}}, metav1.ConditionTrue, v1beta1.ReasonValid)
		h.waitEvent(t, "default", "overlap", v1beta1.ReasonValid, "in use")
	})

	t.Run("a preferred node selector that prefers no node is reported until a node matches", func(t *testing.T) {
		h.create(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1", Labels: map[string]string{"zone": "a"}}})
		h.create(t, &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "pref"}, Spec: v1beta1.L2AdvertisementSpec{
			PoolSelection:          v1beta1.PoolSelection{IPPools: []string{"lan"}},
			PreferredNodeSelectors: []v1beta1.LabelSelector{{MatchLabels: map[string]v1beta1.LabelValue{"zone": "b"}}},
		}})
		h.waitConfigCondition(t, &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "pref"}}, metav1.ConditionTrue, v1beta1.ReasonPartiallyApplied)
		h.waitEvent(t, "default", "pref", v1beta1.ReasonPartiallyApplied, "preferredNodeSelectors[0] (zone=b) matches no node")
		update(t, h, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1"}}, func(n *corev1.Node) { n.Labels["zone"] = "b" })
		h.waitConfigCondition(t, &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "pref"}}, metav1.ConditionTrue, v1beta1.ReasonValid)
	})

	t.Run("memberlist key", func(t *testing.T) {
		key := h.memberlistKey(t)
		if len(key) != k8s.MemberlistKeySize {
			t.Fatalf("memberlist key has %d bytes, want %d", len(key), k8s.MemberlistKeySize)
		}
		// A key the speakers cannot use is reported on the Secret, and the
		// controller leaves the Secret alone.
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: v1beta1.Namespace, Name: k8s.MemberlistSecretName}}
		update(t, h, sec, func(s *corev1.Secret) { s.Data[k8s.MemberlistSecretKey] = []byte("7 bytes") })
		h.waitEvent(t, v1beta1.Namespace, k8s.MemberlistSecretName, reconcilers.ReasonInvalidMemberlistKey, "must be 16, 24 or 32 bytes")
		if got := h.memberlistKey(t); string(got) != "7 bytes" {
			t.Fatalf("the controller changed the Secret to %x", got)
		}
		update(t, h, sec, func(s *corev1.Secret) { s.Data[k8s.MemberlistSecretKey] = key[:16] })
	})

	t.Run("metrics", func(t *testing.T) {
		body := scrape(t, metricsPort)
		for _, want := range []string{
			`herald_pool_addresses{family="ipv4",pool="lan"} 16`,
			`herald_pool_addresses{family="ipv6",pool="lan"} 16`,
			`herald_pool_addresses{family="ipv4",pool="reserved"} 8`,
			`herald_allocation_failures_total{reason="notinpool"}`,
			`herald_allocation_failures_total{reason="inuse"}`,
			`herald_allocations_total `,
			`herald_releases_total `,
			`herald_pool_addresses_assigned{family="ipv4",pool="shrink"} 3`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})

	t.Run("restart keeps every IP and writes nothing", func(t *testing.T) {
		before := h.snapshot(t)
		key := h.memberlistKey(t)
		stop()
		// A process, so its metrics count only its own work.
		proc := h.startProcess(t, "herald-controller-restarted", "--kubeconfig="+h.env.Kubeconfig, "--leader-elect",
			"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms",
			fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort), "--metrics-secure=false", "--health-probe-bind-address=0")
		stop = func() {
			if err := proc.Stop(10 * time.Second); err != nil {
				t.Error(err)
			}
		}
		h.create(t, objects.Pool("after", false, "203.0.113.64/30"))
		h.create(t, objects.Service("v4", "after-restart", objects.Annotate(v1beta1.AnnotationIPPool, "after")))
		h.waitAssigned(t, "v4", "after-restart", "203.0.113.64")
		waitIdle(t, metricsPort, len(before.services)+1, 30*time.Second)
		after := h.snapshot(t)
		for k, was := range before.services {
			if now := after.services[k]; now != was {
				t.Errorf("Service %s changed across a restart: %s -> %s", k, was, now)
			}
		}
		for k, was := range before.pools {
			if now := after.pools[k]; now != was {
				t.Errorf("IPPool %s was written after a restart: %s -> %s", k, was, now)
			}
		}
		if got := h.memberlistKey(t); string(got) != string(key) {
			t.Error("the memberlist key changed across a restart")
		}
	})

	t.Run("lb-class flag", func(t *testing.T) {
		stop()
		o.LBClass = "herald.dev/test"
		h.runController(t, o)
		h.create(t, objects.Service("class", "herald", objects.Class("herald.dev/test"), objects.Annotate(v1beta1.AnnotationIPPool, "after")))
		inPrefix(t, ingressIPs(h.waitAssigned(t, "class", "herald"))[0], "203.0.113.64/30")
		// A Service without a class is no longer served: released, status cleared.
		eventually(t, 20*time.Second, "classless Service released", func() (bool, string) {
			svc := h.service(t, "v4", "web")
			return len(svc.Status.LoadBalancer.Ingress) == 0 && allocatedCondition(svc) == nil, describe(svc)
		})
		h.waitEvent(t, "v4", "web", "IPReleased", `has no loadBalancerClass; this controller serves class "herald.dev/test"`)
		if svc := h.service(t, "class", "other"); len(svc.Status.LoadBalancer.Ingress) > 0 || len(svc.Status.Conditions) > 0 {
			t.Errorf("Service of another class got a status: %s", describe(svc))
		}
	})
}

// snapshot records every Service's resourceVersion and ingress, and every
// IPPool's resourceVersion.
type snapshot struct{ services, pools map[string]string }

func (h *harness) snapshot(t *testing.T) snapshot {
	t.Helper()
	s := snapshot{services: map[string]string{}, pools: map[string]string{}}
	var svcs corev1.ServiceList
	if err := h.c.List(context.Background(), &svcs); err != nil {
		t.Fatal(err)
	}
	for _, svc := range svcs.Items {
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			s.services[svc.Namespace+"/"+svc.Name] = fmt.Sprintf("rv %s ingress %v", svc.ResourceVersion, ingressIPs(&svc))
		}
	}
	var pools v1beta1.IPPoolList
	if err := h.c.List(context.Background(), &pools); err != nil {
		t.Fatal(err)
	}
	for _, p := range pools.Items {
		s.pools[p.Name] = p.ResourceVersion
	}
	return s
}

func (h *harness) waitConfigCondition(t *testing.T, obj client.Object, status metav1.ConditionStatus, reason string) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("%T %s Ready=%s %s", obj, obj.GetName(), status, reason), func() (bool, string) {
		if err := h.c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err.Error()
		}
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *v1beta1.IPPool:
			conds = o.Status.Conditions
		case *v1beta1.L2Advertisement:
			conds = o.Status.Conditions
		}
		c := readyCondition(conds)
		return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == obj.GetGeneration(), fmt.Sprintf("%+v", c)
	})
}

func (h *harness) memberlistKey(t *testing.T) []byte {
	t.Helper()
	var s corev1.Secret
	eventually(t, 20*time.Second, "memberlist Secret", func() (bool, string) {
		err := h.c.Get(context.Background(), client.ObjectKey{Namespace: v1beta1.Namespace, Name: k8s.MemberlistSecretName}, &s)
		return err == nil, fmt.Sprint(err)
	})
	return s.Data[k8s.MemberlistSecretKey]
}

func scrape(t *testing.T, port int) string {
	t.Helper()
	body, err := scrapeBody(port)
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	return body
}

func scrapeBody(port int) (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close() //nolint:errcheck // read only
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
