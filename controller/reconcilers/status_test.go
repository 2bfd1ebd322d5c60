package reconcilers

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/controller/allocator"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// An assignment written once compares equal to itself afterwards, as the
// API server returns it (second-precision time): a restart writes nothing.
func TestStatusAssignedIsStable(t *testing.T) {
	a := allocator.Assignment{Pool: "lan", IPs: addrs("198.51.100.10", "2001:db8::a")}
	other := metav1.Condition{Type: "example.com/Other", Status: metav1.ConditionTrue, Reason: "X", LastTransitionTime: metav1.NewTime(time.Unix(100, 0))}
	cur := corev1.ServiceStatus{Conditions: []metav1.Condition{other}}
	first := statusAssigned(cur, 3, a)
	if equality.Semantic.DeepEqual(cur, first) {
		t.Fatal("a new assignment must differ from an empty status")
	}
	// What the API server stores: times truncated to seconds.
	stored := *first.DeepCopy()
	for i := range stored.Conditions {
		stored.Conditions[i].LastTransitionTime = metav1.NewTime(stored.Conditions[i].LastTransitionTime.Truncate(time.Second))
	}
	again := statusAssigned(stored, 3, a)
	if !equality.Semantic.DeepEqual(stored, again) {
		t.Fatalf("same assignment gives a different status:\n%+v\n%+v", stored, again)
	}
	want := []corev1.LoadBalancerIngress{
		{IP: "198.51.100.10", IPMode: new(corev1.LoadBalancerIPModeVIP)},
		{IP: "2001:db8::a", IPMode: new(corev1.LoadBalancerIPModeVIP)},
	}
	if !equality.Semantic.DeepEqual(first.LoadBalancer.Ingress, want) {
		t.Errorf("ingress %+v, want %+v", first.LoadBalancer.Ingress, want)
	}
	c := meta.FindStatusCondition(first.Conditions, v1beta1.ConditionServiceIPAllocated)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonAllocated || c.ObservedGeneration != 3 ||
		c.Message != "assigned 198.51.100.10 and 2001:db8::a from pool lan" {
		t.Errorf("condition %+v", c)
	}
	if meta.FindStatusCondition(first.Conditions, "example.com/Other") == nil {
		t.Error("another controller's condition was dropped")
	}
	// Without ipMode (as an older writer left it) the status must be rewritten.
	noMode := *stored.DeepCopy()
	noMode.LoadBalancer.Ingress[0].IPMode = nil
	if equality.Semantic.DeepEqual(noMode, statusAssigned(noMode, 3, a)) {
		t.Error("an ingress without ipMode counts as up to date")
	}
}

func TestStatusFailedAndForgotten(t *testing.T) {
	a := allocator.Assignment{Pool: "lan", IPs: addrs("198.51.100.10")}
	held := statusAssigned(corev1.ServiceStatus{}, 1, a)
	err := fmt.Errorf("wrapped: %w", allocator.ErrPoolExhausted)
	failed := statusFailed(held, 2, err)
	c := meta.FindStatusCondition(failed.Conditions, v1beta1.ConditionServiceIPAllocated)
	if len(failed.LoadBalancer.Ingress) != 0 || c == nil || c.Status != metav1.ConditionFalse || c.Reason != "PoolExhausted" || c.Message != err.Error() {
		t.Errorf("failed status %+v", failed)
	}
	gone := statusForgotten(held, nil)
	if len(gone.LoadBalancer.Ingress) != 0 || len(gone.Conditions) != 0 {
		t.Errorf("forgotten status keeps Herald's parts: %+v", gone)
	}
	// Without Herald's condition, only the addresses Herald released go.
	foreign := corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.51.100.10"}, {IP: "203.0.113.1"}}}}
	kept := statusForgotten(foreign, addrs("198.51.100.10"))
	if len(kept.LoadBalancer.Ingress) != 1 || kept.LoadBalancer.Ingress[0].IP != "203.0.113.1" {
		t.Errorf("foreign ingress handled wrongly: %+v", kept.LoadBalancer.Ingress)
	}
	if untouched := statusForgotten(foreign, nil); !equality.Semantic.DeepEqual(untouched, foreign) {
		t.Errorf("a status Herald did not write was changed: %+v", untouched)
	}
}

func TestEventsFor(t *testing.T) {
	empty := corev1.ServiceStatus{}
	v4 := statusAssigned(empty, 1, allocator.Assignment{Pool: "lan", IPs: addrs("198.51.100.10")})
	moved := statusAssigned(v4, 1, allocator.Assignment{Pool: "lan", IPs: addrs("198.51.100.20")})
	failed := statusFailed(v4, 1, allocator.ErrIPInUse)
	failedAgain := statusFailed(failed, 1, allocator.ErrIPInUse)
	names := func(es []serviceEvent) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.reason+": "+e.note)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		cur, next corev1.ServiceStatus
		why       string
		want      []string
	}{
		{"new", empty, v4, "", []string{"IPAllocated: assigned 198.51.100.10 from pool lan"}},
		{"unchanged", v4, v4, "", nil},
		{"moved", v4, moved, whyEvicted, []string{"IPReleased: released 198.51.100.10: " + whyEvicted, "IPAllocated: assigned 198.51.100.20 from pool lan"}},
		{"failed", v4, failed, "", []string{"IPReleased: released 198.51.100.10", "AllocationFailed: " + allocator.ErrIPInUse.Error()}},
		{"failed the same way again", failed, failedAgain, "", nil},
		{"forgotten", v4, statusForgotten(v4, nil), "the Service was deleted", []string{"IPReleased: released 198.51.100.10: the Service was deleted"}},
	} {
		got := names(eventsFor(tc.cur, tc.next, "lan", tc.why))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: events %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPoolStatus(t *testing.T) {
	ready := metav1.Condition{Type: v1beta1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1beta1.ReasonValid, Message: "in use", ObservedGeneration: 2}
	st := poolStatus(v1beta1.IPPoolStatus{}, 2, ready, []allocator.PoolStats{
		{Pool: "p", Family: allocator.IPv4, Total: 16, Assigned: 3, Available: 13},
		{Pool: "p", Family: allocator.IPv6, Total: 1 << 62, Assigned: 1, Available: 1<<63 - 1},
	})
	if st.Assigned != 4 || st.Available != 1<<63-1 || st.IPv4.Total != 16 || st.IPv6.Assigned != 1 || st.ObservedGeneration != 2 {
		t.Errorf("pool status %+v", st)
	}
	if again := poolStatus(st, 2, ready, []allocator.PoolStats{
		{Pool: "p", Family: allocator.IPv4, Total: 16, Assigned: 3, Available: 13},
		{Pool: "p", Family: allocator.IPv6, Total: 1 << 62, Assigned: 1, Available: 1<<63 - 1},
	}); !equality.Semantic.DeepEqual(st, again) {
		t.Error("same counts give a different pool status")
	}
	unused := poolStatus(st, 3, ready, nil)
	if unused.IPv4 != nil || unused.IPv6 != nil || unused.Assigned != 0 || unused.Available != 0 {
		t.Errorf("pool not in use keeps counts: %+v", unused)
	}
}
