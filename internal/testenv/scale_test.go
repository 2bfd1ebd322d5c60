package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testkit/objects"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// BenchmarkCreateServices measures how fast the test API server takes
// LoadBalancer Service creates from 16 parallel clients, with API Priority
// and Fairness off (the default here) and on. Set HERALD_SCALE_SERVICES to
// change the count (default 1000).
func BenchmarkCreateServices(b *testing.B) {
	for _, apf := range []bool{false, true} {
		b.Run(fmt.Sprintf("apf=%v", apf), func(b *testing.B) {
			for b.Loop() {
				env, err := StartProcess(context.Background(), b.TempDir(), WithCRDDir(NoCRDs),
					WithAPIServerArgs(fmt.Sprintf("--enable-priority-and-fairness=%v", apf)))
				if err != nil {
					b.Fatal(err)
				}
				rate := createServices(b, env, scaleCount())
				b.ReportMetric(rate, "services/s")
				env.Stop()
			}
		})
	}
}

func scaleCount() int {
	n := 1000
	if s := os.Getenv("HERALD_SCALE_SERVICES"); s != "" {
		_, _ = fmt.Sscan(s, &n)
	}
	return n
}

func createServices(b *testing.B, env *Env, n int) float64 {
	cs := kubernetes.NewForConfigOrDie(env.Config)
	ctx := context.Background()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				svc := objects.Service("", fmt.Sprintf("s%05d", i))
				if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d creates failed", failed.Load(), n)
	}
	return float64(n) / time.Since(begin).Seconds()
}
