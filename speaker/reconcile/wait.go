package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
)

// waitInterval is how often the start-up waits look again.
const waitInterval = time.Second

// notStarted: the cache is still starting, nothing worth a log line.
func notStarted(err error) bool {
	var e *cache.ErrCacheNotStarted
	return errors.As(err, &e)
}

// WaitForMemberlistKey returns the gossip key from the Secret name in
// herald-system (key "key", 16, 24 or 32 bytes), waiting while it is absent or
// invalid: the controller creates it. It logs once why it waits, and again
// every minute.
func WaitForMemberlistKey(ctx context.Context, r client.Reader, name string, log *slog.Logger) ([]byte, error) {
	var lastLog time.Time
	for {
		var sec corev1.Secret
		err := r.Get(ctx, client.ObjectKey{Namespace: v1beta1.Namespace, Name: name}, &sec)
		var why string
		switch {
		case notStarted(err):
			why = ""
		case apierrors.IsNotFound(err):
			why = "the Secret does not exist yet (herald-controller creates it)"
		case err != nil:
			why = err.Error()
		case k8s.CheckMemberlistKey(sec.Data[k8s.MemberlistSecretKey]) != nil:
			why = fmt.Sprintf("its %q key: %v", k8s.MemberlistSecretKey, k8s.CheckMemberlistKey(sec.Data[k8s.MemberlistSecretKey]))
		default:
			return sec.Data[k8s.MemberlistSecretKey], nil
		}
		if why != "" && time.Since(lastLog) > time.Minute {
			log.Warn("waiting for the memberlist key", "secret", v1beta1.Namespace+"/"+name, "why", why)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for Secret %s/%s: %w", v1beta1.Namespace, name, ctx.Err())
		case <-time.After(waitInterval):
		}
	}
}

// WaitForNode returns this node's Node object, waiting while it does not
// exist (a speaker that starts before its kubelet registered the node).
func WaitForNode(ctx context.Context, r client.Reader, name string, log *slog.Logger) (*corev1.Node, error) {
	var lastLog time.Time
	for {
		var n corev1.Node
		err := r.Get(ctx, client.ObjectKey{Name: name}, &n)
		if err == nil {
			return &n, nil
		}
		if !notStarted(err) && time.Since(lastLog) > time.Minute {
			log.Warn("waiting for this speaker's Node object", "node", name, "err", err)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for Node %s: %w", name, ctx.Err())
		case <-time.After(waitInterval):
		}
	}
}
