package lab_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testenv"
)

// A Service whose ingress IP is set by hand (no Herald), plus a static route
// on the FRR router toward node1, carries HTTP from the external client
// through the router and node1's kube-proxy to a pod, over IPv4 and IPv6.
func TestServiceIngressIPReachesPodsThroughRouterAndKubeProxy(t *testing.T) {
	l := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(ctx, filepath.Join(root, lab.DemoManifest)); err != nil {
		t.Fatal(err)
	}
	pods, err := l.WaitReadyPods(ctx, "demo", "app=web", 3)
	if err != nil {
		t.Fatal(err)
	}
	// kube-proxy picks up the ingress IP with the endpoints it knows then.
	if err := l.WaitReadyEndpoints(ctx, "demo", "web", []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}, 3); err != nil {
		t.Fatal(err)
	}
	nodeOf := map[string]string{}
	for _, p := range pods {
		nodeOf[p.Name] = p.Spec.NodeName
	}

	const vip4, vip6 = "203.0.113.10", "2001:db8:200::10"
	if err := l.SetIngressIP(ctx, "demo", "web", vip4, vip6); err != nil {
		t.Fatal(err)
	}
	node1 := l.Nodes[0]
	if err := l.FRR.FRR.Configure(ctx, "ip route "+vip4+"/32 "+node1.IPv4.String(), "ipv6 route "+vip6+"/128 "+node1.IPv6.String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.FRR.FRR.Configure(context.Background(), "no ip route "+vip4+"/32 "+node1.IPv4.String(), "no ipv6 route "+vip6+"/128 "+node1.IPv6.String())
	})

	for _, vip := range []string{vip4, vip6} {
		url := lab.URL(vip, 80)
		rep, err := l.Ext.GetEventually(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if want, ok := nodeOf[rep.Pod]; !ok || rep.Node != want {
			t.Fatalf("GET %s from ext answered by pod %q on node %q; want one of the demo pods %v on its own node", url, rep.Pod, rep.Node, nodeOf)
		}
		// kube-proxy spreads new connections over the endpoints.
		seen := map[string]bool{}
		for range 30 {
			r, err := l.Ext.Get(ctx, url)
			if err != nil {
				t.Fatalf("GET %s from ext: %v", url, err)
			}
			seen[r.Pod] = true
		}
		if len(seen) < 2 {
			t.Errorf("30 requests to %s all reached %v; kube-proxy should spread them over 3 pods", url, seen)
		}
		// The connections were DNATed by node1's kube-proxy: its conntrack saw them.
		ct, err := node1.Run(ctx, "conntrack", "-L", "-p", "tcp", "--orig-dst", vip)
		if err != nil || !strings.Contains(ct, "dport=80") {
			t.Errorf("node1 conntrack has no entry for %s:80 (the route points at node1): %v\n%s", vip, err, ct)
		}
	}

	// A probe at 15 ms intervals sees no failures on a healthy path.
	probe := l.Ext.StartProbe(lab.URL(vip4, 80), lab.ProbeOptions{})
	time.Sleep(500 * time.Millisecond)
	sum := lab.Summarize(probe.Stop())
	if sum.Total < 10 || sum.Failed > 0 {
		t.Errorf("probe of a healthy Service: %d requests, %d failed (want >= 10, 0 failed); log %s", sum.Total, sum.Failed, probe.LogPath)
	}
}

// The lab plays kubelet: a Pod gets a namespace with a backend, readiness
// follows SetPodReady into the EndpointSlice, and deleting the Pod removes
// its namespace and process.
func TestPodsRunAsNamespacesAndFollowReadiness(t *testing.T) {
	l := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lifecycle"}}
	if _, err := l.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: "lifecycle", Labels: map[string]string{"app": "solo"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "example/app",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 9053, Protocol: corev1.ProtocolUDP}},
		}}},
	}
	if _, err := l.Kube.CoreV1().Pods("lifecycle").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: "lifecycle"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "solo"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if _, err := l.Kube.CoreV1().Services("lifecycle").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready, err := l.WaitReadyPods(ctx, "lifecycle", "app=solo", 1)
	if err != nil {
		t.Fatal(err)
	}
	p := ready[0]
	lp := l.Pod("lifecycle", "solo")
	if lp == nil {
		t.Fatal("lab runs no pod lifecycle/solo although its status is Ready")
	}
	if got := []string{p.Status.PodIPs[0].IP, p.Status.PodIPs[1].IP}; got[0] != lp.IPv4.String() || got[1] != lp.IPv6.String() {
		t.Fatalf("pod status IPs %v, lab addressed the pod %s and %s", got, lp.IPv4, lp.IPv6)
	}
	node := l.Node(p.Spec.NodeName)
	if node == nil || lp.Node != node {
		t.Fatalf("pod scheduled to %q, lab runs it behind %v", p.Spec.NodeName, lp.Node)
	}
	// The backend answers from inside the pod namespace, reached from another node.
	other := l.Nodes[0]
	if other == node {
		other = l.Nodes[1]
	}
	for _, ip := range []string{lp.IPv4.String(), lp.IPv6.String()} {
		rep, err := other.Get(ctx, lab.URL(ip, 8080))
		if err != nil || rep.Pod != "solo" || rep.Node != node.Name {
			t.Fatalf("GET pod %s:8080 from %s = %+v, %v; want pod solo on %s", ip, other.Name, rep, err, node.Name)
		}
	}
	out, err := other.Run(ctx, "sh", "-c", "echo dgram | socat -t2 - UDP:"+lp.IPv4.String()+":9053")
	if err != nil || !strings.Contains(out, `"proto":"udp"`) || !strings.Contains(out, `"pod":"solo"`) {
		t.Fatalf("UDP echo from pod solo: %v\n%s", err, out)
	}

	if err := waitEndpoint(ctx, l, "lifecycle", "solo", lp.IPv4.String(), true); err != nil {
		t.Fatal(err)
	}
	if err := l.SetPodReady(ctx, "lifecycle", "solo", false); err != nil {
		t.Fatal(err)
	}
	if err := waitEndpoint(ctx, l, "lifecycle", "solo", lp.IPv4.String(), false); err != nil {
		t.Fatal(err)
	}
	if err := l.SetPodReady(ctx, "lifecycle", "solo", true); err != nil {
		t.Fatal(err)
	}
	if err := waitEndpoint(ctx, l, "lifecycle", "solo", lp.IPv4.String(), true); err != nil {
		t.Fatal(err)
	}

	if err := l.Kube.CoreV1().Pods("lifecycle").Delete(ctx, "solo", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = waitFor(ctx, func() bool {
		_, err := l.Kube.CoreV1().Pods("lifecycle").Get(ctx, "solo", metav1.GetOptions{})
		return err != nil && lp.Proc.Exited() && l.Pod("lifecycle", "solo") == nil
	})
	if err != nil {
		t.Fatalf("deleted pod: object, process or lab entry still there (process exited: %v)", lp.Proc.Exited())
	}
	list, _ := l.LAN.Run(ctx, "ip", "netns", "list")
	if strings.Contains(list, lp.NS.Name) {
		t.Fatalf("namespace %s of the deleted pod still exists", lp.NS.Name)
	}
}

func waitEndpoint(ctx context.Context, l *lab.Lab, namespace, service, ip string, ready bool) error {
	var seen []string
	err := waitFor(ctx, func() bool {
		list, err := l.Kube.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + service})
		if err != nil {
			return false
		}
		seen = seen[:0]
		for _, s := range list.Items {
			for _, ep := range s.Endpoints {
				r := ep.Conditions.Ready != nil && *ep.Conditions.Ready
				for _, a := range ep.Addresses {
					seen = append(seen, a+map[bool]string{true: "(ready)", false: "(not ready)"}[r])
					if a == ip && r == ready {
						return true
					}
				}
			}
		}
		return false
	})
	if err != nil {
		return &endpointError{service, ip, ready, slices.Clone(seen)}
	}
	return nil
}

type endpointError struct {
	service, ip string
	ready       bool
	seen        []string
}

func (e *endpointError) Error() string {
	return "EndpointSlices of " + e.service + " never showed " + e.ip + map[bool]string{true: " ready", false: " not ready"}[e.ready] + "; saw " + strings.Join(e.seen, ", ")
}

// waitFor polls cond every 50 ms until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	return poll.Until(ctx, 50*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errors.New("condition not met")
	})
}
