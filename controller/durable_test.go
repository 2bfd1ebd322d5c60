package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// TestBadEditSurvivesRestart: the older of two pools is edited into the
// younger one's addresses. The edited pool is at fault and keeps serving
// its last valid addresses; that verdict is recorded in its status, so a
// restarted controller (a new leader) decides the same: no Service's
// address changes, and the bad edit stays reported. A controller that
// remembered the verdict only in memory would let the older pool win after
// the restart and move every Service of the younger one.
func TestBadEditSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	// Created in this order (and within one second, the names order them the same way).
	h.create(t, objects.Pool("old", false, "198.51.100.0/28"))
	h.create(t, objects.Pool("young", false, "203.0.113.0/28"))
	o := h.controllerOptions()
	o.LeaderElect = true
	stop := h.runController(t, o)

	h.createNamespace(t, "apps")
	for i, p := range []string{"old", "old", "young", "young"} {
		h.create(t, objects.Service("apps", fmt.Sprintf("%s-%d", p, i), objects.Annotate(v1beta1.AnnotationIPPool, p)))
	}
	for i, p := range []string{"old", "old", "young", "young"} {
		h.waitAssigned(t, "apps", fmt.Sprintf("%s-%d", p, i))
	}
	w, stopWatch := watchIngress(t, h.cs)
	defer stopWatch()

	update(t, h, &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "old"}}, func(p *v1beta1.IPPool) {
		p.Spec.Addresses = []v1beta1.AddressRange{"203.0.113.0/29"}
	})
	keptLastValid := func(what string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() (bool, string) {
			var p v1beta1.IPPool
			if err := h.c.Get(context.Background(), client.ObjectKey{Name: "old"}, &p); err != nil {
				return false, err.Error()
			}
			c := readyCondition(p.Status.Conditions)
			ok := c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1beta1.ReasonConflict && c.ObservedGeneration == p.Generation &&
				p.Status.LastApplied != nil && slices.Equal(p.Status.LastApplied.Addresses, []v1beta1.AddressRange{"198.51.100.0/28"})
			return ok, fmt.Sprintf("condition %+v lastApplied %+v", c, p.Status.LastApplied)
		})
	}
	keptLastValid("the edited pool at fault, its last valid spec recorded")
	h.waitConfigCondition(t, &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "young"}}, metav1.ConditionTrue, v1beta1.ReasonValid)

	for round := range 2 {
		stop()
		stop = h.runController(t, o)
		// The new incarnation is leading and has built its model once it
		// assigns a new Service; only then can "nothing changed" mean anything.
		name := fmt.Sprintf("after-restart-%d", round)
		h.create(t, objects.Service("apps", name, objects.Annotate(v1beta1.AnnotationIPPool, "young")))
		h.waitAssigned(t, "apps", name)
		keptLastValid("after a restart, the edited pool still at fault")
		h.waitConfigCondition(t, &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "young"}}, metav1.ConditionTrue, v1beta1.ReasonValid)
	}
	for i, p := range []string{"old", "old", "young", "young"} {
		h.waitAssigned(t, "apps", fmt.Sprintf("%s-%d", p, i))
	}
	stopWatch()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.violations {
		t.Error(v)
	}
}
