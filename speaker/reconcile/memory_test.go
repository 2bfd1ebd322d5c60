package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// TestSpeakerCacheMemory fills a real API server with Services, an
// EndpointSlice of 10 endpoints each and 100 Nodes with an image list,
// then caches them as the speaker does (Services, slices and Nodes, managed
// fields stripped) with and without the digests (SliceDigest, NodeDigest,
// ServiceDigest),
// and compares the heap each cache keeps and its sync time. make test runs
// 1,000 Services with a loose bound; the figures in docs/benchmarks.md:
//
//	HERALD_MEASURE=1 HERALD_SCALE_SERVICES=10000 go test ./speaker/reconcile -run TestSpeakerCacheMemory -v -timeout 30m
func TestSpeakerCacheMemory(t *testing.T) {
	services := 1000
	if v, err := strconv.Atoi(os.Getenv("HERALD_SCALE_SERVICES")); err == nil && v > 0 {
		services = v
	}
	const perSlice, nodes = 10, 100
	env := testenv.Start(t, testenv.WithoutControllerManager(), testenv.WithCRDDir(testenv.NoCRDs))
	cs := kubernetes.NewForConfigOrDie(env.Config)
	ctx := context.Background()
	begin := time.Now()
	parallel(t, nodes, func(i int) error {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%03d", i), Labels: map[string]string{"kubernetes.io/hostname": fmt.Sprintf("node-%03d", i)}}}
		if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			return err
		}
		for j := range 40 { // what a node running a few dozen workloads lists
			n.Status.Images = append(n.Status.Images, corev1.ContainerImage{
				Names:     []string{fmt.Sprintf("registry.example.com/team-%02d/app-%02d@sha256:%064d", j, i%7, j), fmt.Sprintf("registry.example.com/team-%02d/app-%02d:v1.%d.0", j, i%7, j)},
				SizeBytes: 50_000_000,
			})
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)}}
		_, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	no := false
	parallel(t, services, func(i int) error {
		name := fmt.Sprintf("s%05d", i)
		svc := objects.Service("", name)
		svc.Labels = map[string]string{"app": name}
		// as kubectl apply leaves it: the object as applied, in an annotation
		applied, err := json.Marshal(svc)
		if err != nil {
			return err
		}
		svc.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: string(applied)}
		if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return err
		}
		ready, port, proto := true, int32(8080), corev1.ProtocolTCP
		sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name + "-x", Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Port: &port, Protocol: &proto}}}
		for j := range perSlice {
			node := fmt.Sprintf("node-%03d", (i*perSlice+j)%nodes)
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 64+(i/65536)%64, (i/256)%256, i%256)}, NodeName: &node,
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready, Terminating: &no},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: fmt.Sprintf("%s-%d-abcde", name, j), UID: "0c5d3b8e-5b1e-4f33-9a7e-3f8d2c1b0a9f"},
			})
		}
		_, err = cs.DiscoveryV1().EndpointSlices("default").Create(ctx, sl, metav1.CreateOptions{})
		return err
	})
	t.Logf("created %d Services, %d endpoints, %d Nodes in %v", services, services*perSlice, nodes, time.Since(begin).Round(time.Millisecond))

	measure := func(digest bool) (heap uint64, sync time.Duration) {
		scheme, err := k8s.Scheme()
		if err != nil {
			t.Fatal(err)
		}
		by := map[client.Object]cache.ByObject{}
		if digest {
			by[&discoveryv1.EndpointSlice{}] = cache.ByObject{Transform: SliceDigest}
			by[&corev1.Node{}] = cache.ByObject{Transform: NodeDigest}
			by[&corev1.Service{}] = cache.ByObject{Transform: ServiceDigest}
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		c, err := cache.New(env.Config, cache.Options{Scheme: scheme, DefaultTransform: cache.TransformStripManagedFields(), ByObject: by})
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		start := time.Now()
		for _, obj := range []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{}} {
			if _, err := c.GetInformer(cctx, obj); err != nil {
				t.Fatal(err)
			}
		}
		go func() { _ = c.Start(cctx) }()
		if !c.WaitForCacheSync(cctx) {
			t.Fatal("cache did not sync")
		}
		sync = time.Since(start)
		var list discoveryv1.EndpointSliceList
		if err := c.List(cctx, &list); err != nil || len(list.Items) != services {
			t.Fatalf("cached %d slices (%v), want %d", len(list.Items), err, services)
		}
		list = discoveryv1.EndpointSliceList{}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(c)
		return after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc), sync
	}
	fullHeap, fullSync := measure(false)
	digestHeap, digestSync := measure(true)
	mb := func(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	t.Logf("MEASURE caches of %d Services, %d endpoints, %d Nodes: heap %s with the digests, %s without (ratio %.2f); synced in %v and %v",
		services, services*perSlice, nodes, mb(digestHeap), mb(fullHeap), float64(digestHeap)/float64(fullHeap), digestSync.Round(time.Millisecond), fullSync.Round(time.Millisecond))
	if 4*digestHeap > 3*fullHeap {
		t.Errorf("the digests keep %s of the %s the plain caches keep: want at most three quarters", mb(digestHeap), mb(fullHeap))
	}
}

// parallel runs f for 0..n-1 from 16 goroutines and fails t on the first
// error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		t.Fatal(err)
	}
}
