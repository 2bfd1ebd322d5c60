package k8s

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit"
)

func TestUnavailable(t *testing.T) {
	gr := schema.GroupResource{Resource: "services"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{apierrors.NewServiceUnavailable("starting"), true},
		{apierrors.NewTooManyRequests("slow down", 1), true},
		{apierrors.NewNotFound(gr, "x"), false},
		{apierrors.NewForbidden(gr, "x", errors.New("no")), false},
		{errors.New("a bad request"), false},
	} {
		if got := unavailable(tc.err); got != tc.want {
			t.Errorf("unavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// After the API server was dead for long enough that client-go's
// reflector would back off for 30 s and more, the manager's cache sees a
// new object within seconds of the server's return.
func TestCacheCatchesUpRightAfterAnOutage(t *testing.T) {
	env := testenv.Start(t, testenv.WithoutControllerManager())
	mgr, err := NewManager(env.Config, ManagerOptions{MetricsBindAddress: "0", HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() { cancel(); _ = <-done }()
	c := mgr.GetClient()
	var list corev1.ConfigMapList
	testkit.For(t, 30*time.Second, "the cache lists ConfigMaps", func() error { return c.List(ctx, &list) })

	if err := env.APIServer().Kill(); err != nil {
		t.Fatal(err)
	}
	outage := 40 * time.Second
	if testing.Short() {
		outage = 10 * time.Second
	}
	testkit.Holds(t, outage, "the cache still answers from memory", func() error { return c.List(ctx, &list) })
	if err := env.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	direct, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := direct.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "after-the-outage"}}); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 10*time.Second, "the cache sees an object created after the return", func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "after-the-outage"}, &corev1.ConfigMap{})
	})
	t.Logf("the cache saw the new object %v after the API server was ready again (dead for %v)", (time.Since(back)).Round(time.Millisecond), outage)
}
