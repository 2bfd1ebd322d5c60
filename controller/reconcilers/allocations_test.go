package reconcilers

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/controller/allocator"
	"github.com/heraldlb/herald/internal/k8s"
)

func v4Request(name string, ips ...string) allocator.Request {
	return allocator.Request{Service: "ns/" + name, Families: []allocator.Family{allocator.IPv4}, IPs: addrs(ips...)}
}

func twoAddressPool() []allocator.Pool {
	return []allocator.Pool{{Name: "p", AutoAssign: true, Ranges: []allocator.Range{{First: netip.MustParseAddr("198.51.100.1"), Last: netip.MustParseAddr("198.51.100.2")}}}}
}

func TestAllocationsRetryAndRelease(t *testing.T) {
	a := NewAllocations(nil)
	if changed, _ := a.SetPools(twoAddressPool()); !changed {
		t.Fatal("first pools not a change")
	}
	if changed, _ := a.SetPools(twoAddressPool()); changed {
		t.Fatal("same pools reported as a change")
	}
	for _, n := range []string{"a", "b"} {
		if ch := a.Allocate(v4Request(n), nil); ch.Err != nil || !slices.Equal(ch.Pools, []string{"p"}) {
			t.Fatalf("allocate %s: %+v", n, ch)
		}
	}
	full := a.Allocate(v4Request("c"), nil)
	if !errors.Is(full.Err, allocator.ErrPoolExhausted) {
		t.Fatalf("third allocation: %v", full.Err)
	}
	bad := a.Allocate(v4Request("d"), k8s.ErrBadAnnotation)
	if !errors.Is(bad.Err, k8s.ErrBadAnnotation) {
		t.Fatalf("bad request: %v", bad.Err)
	}
	// Freeing an address retries the Service waiting for one, not the one
	// whose own spec is wrong.
	rel := a.Release("ns/a")
	if !slices.Equal(rel.Released, addrs("198.51.100.1")) || !slices.Equal(rel.Retry, []string{"ns/c"}) {
		t.Fatalf("release: %+v", rel)
	}
	if got := a.Allocate(v4Request("c"), nil); got.Err != nil || !slices.Equal(got.Assignment.IPs, addrs("198.51.100.1")) {
		t.Fatalf("retry: %+v", got)
	}
	// A refused Service keeps nothing its spec no longer allows.
	moved := a.Allocate(v4Request("b", "198.51.100.1"), nil)
	if !errors.Is(moved.Err, allocator.ErrIPInUse) || !slices.Equal(moved.Released, addrs("198.51.100.2")) {
		t.Fatalf("refused re-request: %+v", moved)
	}
	stats := a.PoolStats("p")
	if len(stats) != 1 || stats[0].Assigned != 1 {
		t.Fatalf("stats %+v", stats)
	}
}

func TestAllocationsEviction(t *testing.T) {
	a := NewAllocations(nil)
	a.SetPools(twoAddressPool())
	a.Allocate(v4Request("a"), nil)
	a.Allocate(v4Request("b"), nil)
	a.Allocate(v4Request("c"), nil) // refused: full
	shrunk := twoAddressPool()
	shrunk[0].Ranges[0].Last = netip.MustParseAddr("198.51.100.1")
	changed, retry := a.SetPools(shrunk)
	slices.Sort(retry)
	if !changed || !slices.Equal(retry, []string{"ns/b", "ns/c"}) {
		t.Fatalf("shrink: changed %v retry %v", changed, retry)
	}
	ch := a.Allocate(v4Request("b"), nil)
	if !ch.Evicted || !errors.Is(ch.Err, allocator.ErrPoolExhausted) {
		t.Fatalf("evicted Service: %+v", ch)
	}
	if again := a.Allocate(v4Request("b"), nil); again.Evicted {
		t.Fatal("eviction reported twice")
	}
}

func TestImportKeepsAddresses(t *testing.T) {
	a := NewAllocations(nil)
	a.SetPools(twoAddressPool())
	if err := a.Import(v4Request("b"), addrs("198.51.100.2")); err != nil {
		t.Fatal(err)
	}
	if err := a.Import(v4Request("x"), addrs("198.51.100.2")); !errors.Is(err, allocator.ErrIPInUse) {
		t.Fatalf("second claim on one IP: %v", err)
	}
	if got := a.Allocate(v4Request("b"), nil); !slices.Equal(got.Assignment.IPs, addrs("198.51.100.2")) || len(got.Pools) != 0 {
		t.Fatalf("imported Service moved or counted as a change: %+v", got)
	}
}

func TestRequestFor(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Labels: map[string]string{"tier": "front"},
			Annotations: map[string]string{"metallb.io/address-pool": "lan", "herald.dev/allow-shared-ip": "k", "herald.dev/load-balancer-ips": "2001:db8::1"}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack), Selector: map[string]string{"app": "web"},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports:                 []corev1.ServicePort{{Port: 53, Protocol: corev1.ProtocolUDP}, {Port: 80}},
		},
	}
	req, err := requestFor(svc, map[string]string{"team": "a"})
	if err != nil {
		t.Fatal(err)
	}
	want := allocator.Request{
		Service: "ns/web", Namespace: "ns", NamespaceLabels: map[string]string{"team": "a"}, ServiceLabels: map[string]string{"tier": "front"},
		Families: []allocator.Family{allocator.IPv6, allocator.IPv4}, FamilyPolicy: allocator.RequireDualStack,
		Pool: "lan", IPs: addrs("2001:db8::1"), SharingKey: "k",
		Ports:                []allocator.Port{{Protocol: "UDP", Port: 53}, {Protocol: "", Port: 80}},
		LocalTrafficSelector: "app=web",
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("request\n got %+v\nwant %+v", req, want)
	}
	for _, tc := range []struct {
		mutate func(*corev1.Service)
		ok     bool
	}{
		{func(*corev1.Service) {}, true},
		{func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }, false},
		{func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("x") }, false},
		{func(s *corev1.Service) { s.DeletionTimestamp = ptr.To(metav1.Now()) }, false},
	} {
		s := svc.DeepCopy()
		tc.mutate(s)
		if ok, why := serves(s, ""); ok != tc.ok || (!ok && why == "") {
			t.Errorf("serves = %v (%q), want %v", ok, why, tc.ok)
		}
	}
}
