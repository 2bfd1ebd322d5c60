package lab_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/netns"
)

// BenchmarkLabUp measures a whole lab from nothing to ready (3 nodes, both
// routers, control plane, kube-proxies healthy) and its teardown.
func BenchmarkLabUp(b *testing.B) {
	if err := netns.RequireRoot(); err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		l, err := lab.Start(context.Background(), lab.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(l.StartupTime.Milliseconds()), "ms/up")
		begin := time.Now()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(begin).Milliseconds()), "ms/close")
	}
}

// BenchmarkPodToReady measures a Pod from creation to Ready in the API
// (scheduling, namespace, link, backend, status).
func BenchmarkPodToReady(b *testing.B) {
	l := labtest.Lab(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		name := fmt.Sprintf("bench-%d", i)
		begin := time.Now()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"bench": name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		}
		if _, err := l.Kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := l.WaitReadyPods(ctx, "default", "bench="+name, 1); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(begin).Milliseconds()), "ms/ready")
		_ = l.Kube.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{})
	}
}
