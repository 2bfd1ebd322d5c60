package reconcilers

import (
	"context"
	"fmt"
	"log/slog"
	"math"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/controller/allocator"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/k8s"
)

// ConfigStatusReconciler writes each config object's status: the Ready
// condition from the model, an Event when the object's problem changes,
// and for an IPPool its address counts and the spec in use. It writes only
// what changed.
type ConfigStatusReconciler struct {
	Client client.Client // cache-backed
	Allocs *Allocations
	Model  func() *config.Model
	Events k8s.EventRecorder
	Log    *slog.Logger
	Queue  *Queue[config.Ref]
}

// SetupWithManager registers the controller; it is fed only through Queue.
func (r *ConfigStatusReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return builder.TypedControllerManagedBy[config.Ref](mgr).
		Named("config-status").
		WatchesRawSource(r.Queue.Source()).
		Complete(r)
}

// Reconcile brings one object's status up to date.
func (r *ConfigStatusReconciler) Reconcile(ctx context.Context, ref config.Ref) (reconcile.Result, error) {
	// Pool counts mean something only once existing assignments are imported.
	if err := r.Allocs.WaitImported(ctx); err != nil {
		return reconcile.Result{}, nil
	}
	model := r.Model()
	if model == nil {
		return reconcile.Result{}, nil
	}
	obj, status := configObject(ref.Kind)
	if obj == nil {
		return reconcile.Result{}, nil
	}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: ref.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			if ref.Kind == config.KindIPPool {
				r.Allocs.Metrics.setPoolGauges(ref.Name, nil)
			}
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get %s %s: %w", ref.Kind, ref.Name, err)
	}
	c := model.ConditionFor(ref)
	ready := metav1.Condition{
		Type: v1beta1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: c.Reason, Message: c.Message, ObservedGeneration: obj.GetGeneration(),
	}
	if !c.Ready {
		ready.Status = metav1.ConditionFalse
	}
	var old *metav1.Condition
	changed := false
	if pool, ok := obj.(*v1beta1.IPPool); ok {
		old = meta.FindStatusCondition(pool.Status.Conditions, v1beta1.ConditionReady).DeepCopy()
		var stats []allocator.PoolStats
		if model.Pools[ref.Name] != nil {
			stats = r.Allocs.PoolStats(ref.Name)
		}
		r.Allocs.Metrics.setPoolGauges(ref.Name, stats)
		next := poolStatus(pool.Status, pool.Generation, ready, stats)
		// What the model uses, so that a restarted controller or speaker
		// builds the same model (internal/config, lastPoolInput).
		next.LastApplied = model.AppliedPool(ref.Name)
		changed = !equality.Semantic.DeepEqual(pool.Status, next)
		pool.Status = next
	} else {
		old = meta.FindStatusCondition(status.Conditions, v1beta1.ConditionReady).DeepCopy()
		next := *status.DeepCopy()
		next.ObservedGeneration = obj.GetGeneration()
		meta.SetStatusCondition(&next.Conditions, ready)
		changed = !equality.Semantic.DeepEqual(*status, next)
		*status = next
	}
	if !changed {
		return reconcile.Result{}, nil
	}
	r.Allocs.Metrics.statusWrites.WithLabelValues(ref.Kind).Inc()
	if err := r.Client.Status().Update(ctx, obj, client.FieldOwner(v1beta1.FieldManagerController)); err != nil {
		return statusWriteFailed(err)
	}
	r.problemEvent(obj, ref, old, ready)
	return reconcile.Result{}, nil
}

// problemEvent records an Event when the object's problem appeared, changed
// or went away. A new, valid object gets none.
func (r *ConfigStatusReconciler) problemEvent(obj client.Object, ref config.Ref, old *metav1.Condition, now metav1.Condition) {
	if old != nil && old.Status == now.Status && old.Reason == now.Reason && old.Message == now.Message {
		return
	}
	switch {
	case now.Reason != v1beta1.ReasonValid:
		r.Log.Info("config object has a problem", "object", ref.String(), "ready", now.Status, "reason", now.Reason, "message", now.Message)
		r.Events.Warning(obj, now.Reason, "Validate", now.Message)
	case old != nil:
		r.Log.Info("config object is valid again", "object", ref.String())
		r.Events.Normal(obj, v1beta1.ReasonValid, "Validate", "valid and in use")
	}
}

// configObject returns an empty object of the kind and, except for IPPool,
// its status.
func configObject(kind string) (client.Object, *v1beta1.ConfigStatus) {
	switch kind {
	case config.KindIPPool:
		return &v1beta1.IPPool{}, nil
	case config.KindL2Advertisement:
		o := &v1beta1.L2Advertisement{}
		return o, &o.Status
	case config.KindBGPAdvertisement:
		o := &v1beta1.BGPAdvertisement{}
		return o, &o.Status
	case config.KindBGPPeer:
		o := &v1beta1.BGPPeer{}
		return o, &o.Status
	case config.KindBFDProfile:
		o := &v1beta1.BFDProfile{}
		return o, &o.Status
	}
	return nil, nil
}

// poolStatus is cur with the counts of stats (empty for a pool not in use)
// and the Ready condition.
func poolStatus(cur v1beta1.IPPoolStatus, generation int64, ready metav1.Condition, stats []allocator.PoolStats) v1beta1.IPPoolStatus {
	st := *cur.DeepCopy()
	st.ObservedGeneration = generation
	st.Assigned, st.Available, st.IPv4, st.IPv6 = 0, 0, nil, nil
	for _, s := range stats {
		counts := &v1beta1.AddressCounts{Total: s.Total, Assigned: s.Assigned, Available: s.Available}
		if s.Family == allocator.IPv4 {
			st.IPv4 = counts
		} else {
			st.IPv6 = counts
		}
		st.Assigned = addSat(st.Assigned, s.Assigned)
		st.Available = addSat(st.Available, s.Available)
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	return st
}

// addSat adds two non-negative counts, saturating at math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
