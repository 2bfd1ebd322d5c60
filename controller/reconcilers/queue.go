package reconcilers

import (
	"context"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Queue lets one reconciler hand work to another controller: the config
// reconciler re-checks exactly the Services a pool change affects, and
// Service reconciles refresh their pool's status. Items added before the
// target controller starts are kept and delivered when it does.
type Queue[T comparable] struct {
	mu    sync.Mutex
	q     workqueue.TypedRateLimitingInterface[T]
	early []T
}

// Source connects the queue to the controller it feeds.
func (q *Queue[T]) Source() source.TypedSource[T] {
	return source.TypedFunc[T](func(_ context.Context, wq workqueue.TypedRateLimitingInterface[T]) error {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.q = wq
		for _, item := range q.early {
			wq.Add(item)
		}
		q.early = nil
		return nil
	})
}

// Add queues items now.
func (q *Queue[T]) Add(items ...T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.q == nil {
		q.early = append(q.early, items...)
		return
	}
	for _, item := range items {
		q.q.Add(item)
	}
}

// AddAfter queues item after d; adding it again before then does not delay
// it further, so a burst of changes costs one reconcile per interval.
func (q *Queue[T]) AddAfter(item T, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.q == nil {
		q.early = append(q.early, item)
		return
	}
	q.q.AddAfter(item, d)
}
