package reconcilers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// cutKey splits "namespace/name".
func cutKey(key string) (ns, name string, ok bool) { return strings.Cut(key, "/") }

// namespaceLabels reads a namespace's labels from the metadata cache or,
// when the cache does not know the namespace yet (one created just before
// its Service), from the API server. An error means the labels are unknown:
// the caller must retry rather than decide without them, since a pool
// restricted by namespace selectors would refuse the Service for nothing.
func namespaceLabels(ctx context.Context, cache, api client.Reader, ns string) (map[string]string, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	err := cache.Get(ctx, client.ObjectKey{Name: ns}, m)
	if apierrors.IsNotFound(err) && api != nil {
		err = api.Get(ctx, client.ObjectKey{Name: ns}, m)
	}
	if err != nil {
		return nil, fmt.Errorf("labels of namespace %s: %w", ns, err)
	}
	return m.Labels, nil
}

// statusWriteFailed turns a failed status write into a reconcile result. A
// conflict means the cache is behind: the newer version's event brings the
// object back anyway, and the delayed retry is a safety net. A deleted
// object needs nothing more.
func statusWriteFailed(err error) (reconcile.Result, error) {
	switch {
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, nil
	case apierrors.IsConflict(err):
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	return reconcile.Result{}, fmt.Errorf("write status: %w", err)
}
