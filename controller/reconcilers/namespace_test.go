package reconcilers

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlreconcile "sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/controller/allocator"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// laggingCache is the API server seen through a cache that has not
// received a namespace's creation yet, as happens when the namespace is
// created just before its Service and the namespace watch runs behind.
type laggingCache struct{ client.Client }

func (c laggingCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok && m.Kind == "Namespace" {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, key.Name)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

type noEvents struct{}

func (noEvents) Normal(runtime.Object, string, string, string)  {}
func (noEvents) Warning(runtime.Object, string, string, string) {}

// A namespace the cache does not know yet is read from the API server, so
// a Service whose only pool is restricted by namespace labels gets its
// address; when even that read fails the Service is retried, never
// refused for lack of labels.
func TestNamespaceUnknownToTheCache(t *testing.T) {
	env := testenv.Start(t, testenv.WithoutControllerManager())
	scheme, err := k8s.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	api, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Labels: map[string]string{"tenant": "yes"}}},
		objects.Service("fresh", "web"),
	} {
		if err := api.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	tenants, err := labels.Parse("tenant=yes")
	if err != nil {
		t.Fatal(err)
	}
	newReconciler := func(apiReader client.Reader) *ServiceReconciler {
		allocs := NewAllocations(nil)
		allocs.SetPools([]allocator.Pool{{
			Name: "teams", AutoAssign: true,
			Ranges:     []allocator.Range{{First: netip.MustParseAddr("203.0.113.0"), Last: netip.MustParseAddr("203.0.113.63")}},
			AllocateTo: allocator.AllocateTo{NamespaceSelectors: []labels.Selector{tenants}},
		}})
		allocs.MarkImported()
		return &ServiceReconciler{
			Client: laggingCache{api}, APIReader: apiReader, Allocs: allocs, Events: noEvents{},
			Log: slog.New(slog.DiscardHandler), Queue: &Queue[ctrlreconcile.Request]{}, PoolStatus: &Queue[config.Ref]{},
		}
	}
	req := ctrlreconcile.Request{NamespacedName: client.ObjectKey{Namespace: "fresh", Name: "web"}}
	svc := &corev1.Service{}

	// Nothing can read the labels: an error (retried), no refusal written.
	if _, err := newReconciler(laggingCache{api}).Reconcile(ctx, req); err == nil {
		t.Fatal("Reconcile decided without the namespace's labels")
	}
	if err := api.Get(ctx, req.NamespacedName, svc); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(svc.Status.Conditions, v1beta1.ConditionServiceIPAllocated); c != nil {
		t.Fatalf("a Service whose namespace labels are unknown got a condition: %+v", c)
	}

	// The API server knows the namespace: the Service gets its address.
	if _, err := newReconciler(api).Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := api.Get(ctx, req.NamespacedName, svc); err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(svc.Status.Conditions, v1beta1.ConditionServiceIPAllocated)
	if c == nil || c.Status != metav1.ConditionTrue || len(svc.Status.LoadBalancer.Ingress) != 1 || svc.Status.LoadBalancer.Ingress[0].IP != "203.0.113.0" {
		t.Fatalf("Service status %+v, want 203.0.113.0 from pool teams", svc.Status)
	}
}
