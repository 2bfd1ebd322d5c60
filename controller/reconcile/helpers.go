package reconcile

import (
	"context"
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

// namespaceLabels reads a namespace's labels from the metadata cache; nil if unknown.
func namespaceLabels(ctx context.Context, c client.Reader, ns string) map[string]string {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, m); err != nil {
		return nil
	}
	return m.Labels
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
	return reconcile.Result{}, err
}
