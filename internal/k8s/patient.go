package k8s

import (
	"context"
	"errors"
	"net"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

// patientListWatch waits for the API server instead of failing while it is
// away. client-go's reflector backs off exponentially after each failed
// list (up to 30 s, doubled by jitter), so after an outage of minutes a
// cache caught up only 30-60 s after the API server came back: a Service
// created right after waited that long for its IP. Here a list or watch
// that fails because the server is unreachable or unavailable is retried
// every retryEvery until it works or the informer stops; the reflector
// sees at most one failure per outage and catches up within retryEvery.
type patientListWatch struct {
	lw         toolscache.ListerWatcherWithContext
	retryEvery time.Duration
}

// patientRetry is how often a list or watch is tried again while the API
// server is away: a cheap request, a few a second at most per informer.
const patientRetry = 500 * time.Millisecond

func newPatientListWatch(lw toolscache.ListerWatcher) *patientListWatch {
	return &patientListWatch{lw: toolscache.ToListerWatcherWithContext(lw), retryEvery: patientRetry}
}

// unavailable reports whether err says the API server cannot be reached
// or cannot serve now, rather than that the request is wrong.
func unavailable(err error) bool {
	var netErr net.Error
	return utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) ||
		errors.As(err, &netErr) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsInternalError(err)
}

// retry calls do until it returns something other than an unavailable
// error, or ctx ends.
func retry[T any](ctx context.Context, every time.Duration, do func() (T, error)) (T, error) {
	for {
		v, err := do()
		if err == nil || !unavailable(err) || ctx.Err() != nil {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(every):
		}
	}
}

// ListWithContext implements toolscache.ListerWatcherWithContext.
func (p *patientListWatch) ListWithContext(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
	return retry(ctx, p.retryEvery, func() (runtime.Object, error) { return p.lw.ListWithContext(ctx, o) })
}

// WatchWithContext implements toolscache.ListerWatcherWithContext.
func (p *patientListWatch) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	return retry(ctx, p.retryEvery, func() (watch.Interface, error) { return p.lw.WatchWithContext(ctx, o) })
}

// List implements toolscache.ListerWatcher (without a context: no waiting).
func (p *patientListWatch) List(o metav1.ListOptions) (runtime.Object, error) {
	return p.lw.ListWithContext(context.Background(), o)
}

// Watch implements toolscache.ListerWatcher (without a context: no waiting).
func (p *patientListWatch) Watch(o metav1.ListOptions) (watch.Interface, error) {
	return p.lw.WatchWithContext(context.Background(), o)
}

// newPatientInformer is cache.Options.NewInformer: client-go's own
// informer over a patient list-watch.
func newPatientInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
	return toolscache.NewSharedIndexInformer(newPatientListWatch(lw), obj, resync, indexers)
}
