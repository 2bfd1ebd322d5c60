package reconcilers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/k8s"
)

// poolStatusDelay bounds how often a pool's status is rewritten while its
// Services churn: one write per pool per interval, not one per allocation.
const poolStatusDelay = time.Second

const whyEvicted = "no pool the Service may use contains it any more"

// ServiceReconciler assigns IPs to the Services Herald serves and writes
// their status. Each reconcile touches one Service: allocation is serialized
// inside Allocations, the status write runs in parallel with other workers.
type ServiceReconciler struct {
	Client client.Client // cache-backed
	// APIReader reads the API server directly: namespaces the cache has
	// not seen yet.
	APIReader client.Reader
	Allocs    *Allocations
	// Class is the loadBalancerClass served, "" for Services without one.
	Class  string
	Events k8s.EventRecorder
	Log    *slog.Logger
	// Queue feeds this controller: Services to retry after a pool change or
	// a release.
	Queue *Queue[reconcile.Request]
	// PoolStatus receives the pools whose counts changed.
	PoolStatus *Queue[config.Ref]
}

// SetupWithManager registers the controller with workers parallel reconciles.
func (r *ServiceReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("service").
		For(&corev1.Service{}).
		// A namespace's labels decide which pools its Services may use.
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.servicesIn),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(event.CreateEvent) bool { return false },
				DeleteFunc:  func(event.DeleteEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
				UpdateFunc:  predicate.LabelChangedPredicate{}.Update,
			})).
		WatchesRawSource(r.Queue.Source()).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

func (r *ServiceReconciler) servicesIn(ctx context.Context, ns client.Object) []reconcile.Request {
	var list corev1.ServiceList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns.GetName())); err != nil {
		r.Log.Error("listing Services of a namespace whose labels changed", "namespace", ns.GetName(), "err", err)
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		if k8s.IsLoadBalancer(&list.Items[i]) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return out
}

// Reconcile brings one Service's allocation and status up to date.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	// No allocation before every existing assignment is known.
	if err := r.Allocs.WaitImported(ctx); err != nil {
		return reconcile.Result{}, nil
	}
	key := req.Namespace + "/" + req.Name
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, req.NamespacedName, svc); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("get Service %s: %w", key, err)
		}
		ch := r.Allocs.Release(key)
		r.after(ch)
		if len(ch.Released) > 0 {
			// The Event still reaches the namespace's event list.
			gone := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}}
			r.record(gone, []serviceEvent{releasedEvent(ch.Released, "the Service was deleted")})
		}
		return reconcile.Result{}, nil
	}

	if ok, why := serves(svc, r.Class); !ok {
		if k8s.IsLoadBalancer(svc) {
			// "Why has my Service no IP?" when another class was asked for.
			r.Log.Debug("Service not served", "service", key, "reason", why)
		}
		ch := r.Allocs.Release(key)
		r.after(ch)
		if svc.DeletionTimestamp != nil {
			if len(ch.Released) > 0 {
				r.record(svc, []serviceEvent{releasedEvent(ch.Released, why)})
			}
			return reconcile.Result{}, nil
		}
		next := statusForgotten(svc.Status, ch.Released)
		events := eventsFor(svc.Status, next, "", why)
		if len(ch.Released) > 0 && !slices.ContainsFunc(events, func(e serviceEvent) bool { return e.reason == EventIPReleased }) {
			// The API server already cleared the ingress (it does on a type change).
			events = append(events, releasedEvent(ch.Released, why))
		}
		return r.write(ctx, svc, next, events)
	}

	nsLabels, err := namespaceLabels(ctx, r.Client, r.APIReader, svc.Namespace)
	if err != nil {
		// Retried with backoff; deciding without the labels could refuse
		// the Service for nothing.
		return reconcile.Result{}, err
	}
	request, reqErr := requestFor(svc, nsLabels)
	ch := r.Allocs.Allocate(request, reqErr)
	r.after(ch)
	if ch.Err != nil {
		r.Log.Debug("allocation refused", "service", key, "reason", ch.Err)
		next := statusFailed(svc.Status, svc.Generation, ch.Err)
		return r.write(ctx, svc, next, eventsFor(svc.Status, next, "", ""))
	}
	why := ""
	if ch.Evicted {
		why = whyEvicted
	}
	next := statusAssigned(svc.Status, svc.Generation, ch.Assignment)
	return r.write(ctx, svc, next, eventsFor(svc.Status, next, ch.Assignment.Pool, why))
}

// after passes a change on: refused Services worth a retry, and pools whose
// counts changed.
func (r *ServiceReconciler) after(ch Change) {
	for _, key := range ch.Retry {
		ns, name, _ := cutKey(key)
		r.Queue.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	}
	for _, p := range ch.Pools {
		r.PoolStatus.AddAfter(config.Ref{Kind: config.KindIPPool, Name: p}, poolStatusDelay)
	}
}

// write stores the status if it differs from the current one, then records
// the events. Nothing is written for a Service whose status is already
// right, which is every Service after a restart.
func (r *ServiceReconciler) write(ctx context.Context, svc *corev1.Service, next corev1.ServiceStatus, events []serviceEvent) (reconcile.Result, error) {
	if equality.Semantic.DeepEqual(svc.Status, next) {
		r.record(svc, events)
		return reconcile.Result{}, nil
	}
	svc.Status = next
	r.Allocs.Metrics.statusWrites.WithLabelValues("Service").Inc()
	if err := r.Client.Status().Update(ctx, svc, client.FieldOwner(v1beta1.FieldManagerController)); err != nil {
		return statusWriteFailed(err)
	}
	r.record(svc, events)
	return reconcile.Result{}, nil
}

func (r *ServiceReconciler) record(svc *corev1.Service, events []serviceEvent) {
	for _, e := range events {
		if e.warning {
			r.Events.Warning(svc, e.reason, e.action, e.note)
		} else {
			r.Events.Normal(svc, e.reason, e.action, e.note)
		}
	}
}
