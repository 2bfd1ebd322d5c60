package install_test

import (
	"encoding/json"
	"io"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/lab/echo"
	"github.com/heraldlb/herald/e2e/labtest"
)

// TestRealNodesRunPods: pods on the real nodes are containers from the
// lab's echo image, with addresses from the node's pod CIDR, answering
// from other nodes.
func TestRealNodesRunPods(t *testing.T) {
	l := labtest.Lab(t)
	ctx := labtest.Context(t, 3*time.Minute)
	w := &lab.Workload{Namespace: "t-smoke", Name: "smoke"}
	if _, err := l.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.Namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Delete(labtest.Context(t, time.Minute), w) })
	for _, n := range l.NodeNames() {
		if _, err := l.Kube.CoreV1().Pods(w.Namespace).Create(ctx, lab.EchoPod(w, n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pods, err := l.WaitReadyPods(ctx, w.Namespace, "app=smoke", len(l.Nodes))
	if err != nil {
		t.Fatal(err)
	}
	client := lab.HTTPClient(l.Nodes[0].NS, 2*time.Second)
	for _, p := range pods {
		n := l.Node(p.Spec.NodeName)
		if !n.PodCIDRv4.Contains(mustAddr(t, p.Status.PodIP)) {
			t.Errorf("pod %s on %s has IP %s, outside %s", p.Name, n.Name, p.Status.PodIP, n.PodCIDRv4)
		}
		resp, err := client.Get("http://" + net.JoinHostPort(p.Status.PodIP, "8080") + "/")
		if err != nil {
			t.Fatalf("pod %s: %v", p.Name, err)
		}
		var rep echo.Reply
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err := json.Unmarshal(b, &rep); err != nil || rep.Pod != p.Name || rep.Node != n.Name {
			t.Errorf("pod %s answered %s (%v)", p.Name, b, err)
		}
	}
}
