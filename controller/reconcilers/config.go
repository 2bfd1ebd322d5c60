package reconcilers

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/controller/allocator"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/k8s"
)

// configKey is the one request of the config controller: every change to
// any config object leads to one rebuild of the model, and bursts coalesce.
var configKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "config"}}

// ConfigReconciler builds the config model from the CRDs, the Secrets in
// herald-system and the Nodes' labels, installs its pools in the allocator,
// and hands on exactly the Services a pool change affects (those evicted and
// those still waiting for an address) plus every config object's status.
type ConfigReconciler struct {
	Client   client.Client // cache-backed
	Allocs   *Allocations
	Log      *slog.Logger
	Services *Queue[reconcile.Request]
	Status   *Queue[config.Ref]

	model atomic.Pointer[config.Model]
}

// Model is the current model, nil before the first build.
func (r *ConfigReconciler) Model() *config.Model { return r.model.Load() }

// SetupWithManager registers the controller.
func (r *ConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	toKey := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{configKey}
	})
	// Status writes (ours included) change neither generation nor labels.
	specOrLabels := builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))
	b := ctrl.NewControllerManagedBy(mgr).Named("config")
	for _, obj := range []client.Object{&v1beta1.IPPool{}, &v1beta1.L2Advertisement{}, &v1beta1.BGPAdvertisement{}, &v1beta1.BGPPeer{}, &v1beta1.BFDProfile{}} {
		b = b.Watches(obj, toKey, specOrLabels)
	}
	return b.
		Watches(&corev1.Secret{}, toKey).
		WatchesMetadata(&corev1.Node{}, toKey, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Complete(r)
}

// Reconcile rebuilds the model.
func (r *ConfigReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	// The importer makes the first build; later ones follow it.
	if err := r.Allocs.WaitImported(ctx); err != nil {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, r.Rebuild(ctx)
}

// Rebuild builds the model from the cache and applies it. The cost is the
// size of the configuration plus the Services the change affects.
func (r *ConfigReconciler) Rebuild(ctx context.Context) error {
	in, refs, err := r.input(ctx)
	if err != nil {
		return err
	}
	model := config.Build(in, r.model.Load())
	r.model.Store(model)
	if changed, retry := r.Allocs.SetPools(poolDefs(model)); changed {
		r.Log.Info("pools changed", "pools", len(model.Pools), "servicesToRecheck", len(retry))
		for _, key := range retry {
			ns, name, _ := cutKey(key)
			r.Services.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
		}
	}
	r.Status.Add(refs...)
	return nil
}

// input reads everything config.Build needs, and the refs of all objects.
func (r *ConfigReconciler) input(ctx context.Context) (config.Input, []config.Ref, error) {
	in, err := k8s.ReadConfig(ctx, r.Client)
	if err != nil {
		return in, nil, fmt.Errorf("read the configuration: %w", err)
	}
	nodes := &metav1.PartialObjectMetadataList{}
	nodes.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	if err := r.Client.List(ctx, nodes); err != nil {
		return in, nil, fmt.Errorf("list nodes: %w", err)
	}
	in.Nodes = make(map[string]map[string]string, len(nodes.Items))
	for _, n := range nodes.Items {
		in.Nodes[n.Name] = n.Labels
	}
	return in, in.Refs(), nil
}

// poolDefs maps the model's valid pools onto the allocator's, sorted by name.
func poolDefs(m *config.Model) []allocator.Pool {
	out := make([]allocator.Pool, 0, len(m.Pools))
	for _, p := range m.SortedPools() {
		d := allocator.Pool{
			Name:          p.Name,
			AutoAssign:    p.AutoAssign,
			AvoidBuggyIPs: p.AvoidBuggyIPs,
			AllocateTo: allocator.AllocateTo{
				Priority:           p.AllocateTo.Priority,
				Namespaces:         p.AllocateTo.Namespaces,
				NamespaceSelectors: p.AllocateTo.NamespaceSelectors,
				ServiceSelectors:   p.AllocateTo.ServiceSelectors,
			},
		}
		for _, r := range p.Ranges {
			d.Ranges = append(d.Ranges, allocator.Range{First: r.First, Last: r.Last})
		}
		out = append(out, d)
	}
	return out
}
