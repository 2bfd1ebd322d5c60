package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// scalePool holds 16,384 addresses of the lab's routed IPv6 range.
var scalePool = netip.MustParsePrefix("2001:db8:200::1:0/114")

// Many Services through the real API server, controller and speakers: n
// IPv6 Services (no node ports, no pods) from one pool, advertised to FRR
// over the iBGP sessions. It times the creates, the last IP written (as a
// watch sees it), all n prefixes in FRR's BGP table (every node's session
// counting n) and in FRR's kernel with every node as next hop, and the
// withdrawal of all of them when the namespace goes; it reports each
// speaker's peak RSS (VmHWM). kube-proxy is stopped meanwhile: it would
// program n Services on each node of a 2-core machine and measure itself.
// n is 1,000 (bound: 60 s from the last IP to all routes) unless
// HERALD_MEASURE=1, which runs 10,000 (target 10 s).
func TestMeasureManyServices(t *testing.T) {
	n := 1000
	if labtest.Measuring() {
		n = 10000
	}
	e := herald(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	e.scaleSetup(ctx, t)
	idle := labtest.SpeakerMemory(t, e.Lab)

	const ns = "t-scale"
	labtest.Namespace(t, e.Lab, ns)
	iw, err := e.watchIngress(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer iw.w.Stop()
	bgpDone := e.watchBGPCount(ctx, n)

	start := time.Now()
	if err := e.CreateServices(ctx, ns, "scale", corev1.IPv6Protocol, n); err != nil {
		t.Fatal(err)
	}
	created := time.Since(start)
	var lastIP time.Time
	for i := range n {
		seen, err := iw.next(ctx)
		if err != nil {
			t.Fatalf("waiting for IPs: %v (%d of %d have one)", err, i, n)
		}
		lastIP = seen.at
	}
	fromEveryNode := func(st routers.RouteState) bool { return len(st.Gateways) == len(e.Nodes) }
	var lastRoute time.Time
	err = poll.Until(ctx, 50*time.Millisecond, func() error {
		c, last, lost := e.w.Count(scalePool, fromEveryNode)
		if lost {
			return fmt.Errorf("route watcher lost events")
		}
		if c < n {
			return fmt.Errorf("%d of %d routes in FRR's kernel via every node", c, n)
		}
		lastRoute = last
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var inBGP time.Time
	select {
	case inBGP = <-bgpDone:
	case <-ctx.Done():
		t.Fatal("FRR's BGP table never counted every prefix from every node")
	}
	peak := labtest.SpeakerMemory(t, e.Lab)
	t.Logf("%d Services: created in %v; last IP written at +%v (watch)", n, created.Round(time.Millisecond), lastIP.Sub(start).Round(time.Millisecond))
	t.Logf("all %d prefixes in FRR's BGP table from every node at +%v: %v after the last IP", n, inBGP.Sub(start).Round(time.Millisecond), inBGP.Sub(lastIP).Round(time.Millisecond))
	t.Logf("all %d routes in FRR's kernel via every node at +%v: %v after the last IP", n, lastRoute.Sub(start).Round(time.Millisecond), lastRoute.Sub(lastIP).Round(time.Millisecond))
	t.Logf("speaker memory idle: %s", idle)
	t.Logf("speaker memory with %d Services: %s", n, peak)
	if d := lastRoute.Sub(lastIP); d > time.Minute {
		t.Errorf("all routes at FRR %v after the last IP; bound 1 min", d)
	}

	// Deleting the namespace withdraws every route.
	delStart := time.Now()
	if err := e.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = poll.Until(ctx, 100*time.Millisecond, func() error {
		if c, _, _ := e.w.Count(scalePool, nil); c > 0 {
			return fmt.Errorf("%d routes left in FRR's kernel", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("namespace deleted -> all %d routes gone from FRR's kernel after %v", n, time.Since(delStart).Round(time.Millisecond))
}

// scaleSetup creates the scale pool, advertised by every node to frr6,
// and stops kube-proxy (it would program every Service in every node on
// the same 2 cores and measure itself) until the test ends.
func (e *env) scaleSetup(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := e.Create(ctx,
		objects.Pool("scale", false, v1beta1.AddressRange(scalePool.String())),
		&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "scale"}, Spec: v1beta1.BGPAdvertisementSpec{
			PoolSelection: v1beta1.PoolSelection{IPPools: []string{"scale"}}, Peers: []string{peerFRR6}}},
	); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.API.Delete(ctx, &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "scale"}})
		_ = e.API.Delete(ctx, &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "scale"}})
	})
	labtest.WithoutKubeProxy(t, e.Lab)
}

// watchBGPCount polls FRR's iBGP neighbors every 250 ms and sends the time
// when every node's session counts at least n accepted IPv6 prefixes.
func (e *env) watchBGPCount(ctx context.Context, n int) <-chan time.Time {
	done := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil {
			fn, err := e.frrNeighbors(ctx)
			all := err == nil
			for _, a := range e.NodeAddrs(true) {
				all = all && fn[a].Accepted("ipv6Unicast") >= n
			}
			if all {
				done <- time.Now()
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	}()
	return done
}
