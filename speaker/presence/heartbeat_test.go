package presence

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit"
)

// The Lease is created owned by the Node, renewed, not renewed while the
// speaker is unhealthy, and deleted by Release; against a real API server.
func TestHeartbeatAgainstAPIServer(t *testing.T) {
	env := testenv.Start(t, testenv.WithoutControllerManager())
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}
	for _, obj := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v1beta1.Namespace}}, node} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	var unhealthy error
	healthy := make(chan error, 1)
	healthy <- nil
	hb, err := NewHeartbeat(HeartbeatOptions{Client: c, Node: "node1", NodeUID: node.UID, Duration: 3 * time.Second, Healthy: func() error {
		select {
		case unhealthy = <-healthy:
		default:
		}
		return unhealthy
	}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- hb.Run(runCtx) }()
	defer func() { stop(); _ = <-done }()

	get := func() (*coordinationv1.Lease, error) {
		var l coordinationv1.Lease
		err := c.Get(ctx, client.ObjectKey{Namespace: v1beta1.Namespace, Name: "speaker-node1"}, &l)
		return &l, err
	}
	var first time.Time
	testkit.For(t, 10*time.Second, "the Lease is created", func() error {
		l, err := get()
		if err != nil {
			return err
		}
		if Holder(l) != "node1" || *l.Spec.LeaseDurationSeconds != 3 || len(l.OwnerReferences) != 1 || l.OwnerReferences[0].UID != node.UID || l.Labels["app.kubernetes.io/component"] != "speaker" {
			return fmt.Errorf("lease %+v", l)
		}
		first = RenewTime(l)
		return nil
	})
	testkit.For(t, 10*time.Second, "the Lease is renewed", func() error {
		l, err := get()
		if err != nil {
			return err
		}
		if !RenewTime(l).After(first) {
			return errors.New("not renewed yet")
		}
		return nil
	})
	healthy <- errors.New("memberlist not running")
	// The renewal after the gate closed is the last one: wait for one
	// renewal period to pass without a change.
	l, _ := get()
	last := RenewTime(l)
	testkit.For(t, 10*time.Second, "renewals stop while unhealthy", func() error {
		l, err := get()
		if err != nil {
			return err
		}
		if !RenewTime(l).Equal(last) {
			last = RenewTime(l)
			return errors.New("still renewed")
		}
		if time.Since(last) < 2*time.Second {
			return errors.New("not long enough")
		}
		return nil
	})
	if err := hb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := get(); !apierrors.IsNotFound(err) {
		t.Fatalf("after Release: %v, want not found", err)
	}
}
