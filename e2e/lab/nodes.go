package lab

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testenv"
)

// InstallNamespace is Herald's install namespace (Lease, Secrets, Events);
// the lab creates it, labelled as config/default/namespace.yaml does.
const InstallNamespace = "herald-system"

func (l *Lab) createInstallNamespace(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   InstallNamespace,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"},
	}}
	if _, err := l.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("lab: create namespace %s: %w", InstallNamespace, err)
	}
	return nil
}

// registerNode creates the Node object the way a kubelet would: both LAN
// addresses as InternalIP, the pod CIDRs, capacity for a hundred pods and
// a Ready condition. The node lifecycle controller is off, so Ready holds
// until SetNodeReady changes it.
func (l *Lab) registerNode(ctx context.Context, n *Node) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name,
			Labels: map[string]string{
				"kubernetes.io/hostname": n.Name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
		Spec: corev1.NodeSpec{
			PodCIDR:  n.PodCIDRv4.String(),
			PodCIDRs: []string{n.PodCIDRv4.String(), n.PodCIDRv6.String()},
		},
	}
	created, err := l.Kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("lab: register node %s: %w", n.Name, err)
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	created.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.IPv4.String()},
			{Type: corev1.NodeInternalIP, Address: n.IPv6.String()},
			{Type: corev1.NodeHostName, Address: n.Name},
		},
		Conditions: []corev1.NodeCondition{readyCondition(true)},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion:          testenv.KubeVersion,
			OSImage:                 "Herald lab (network namespace " + n.NS.Name + ")",
			ContainerRuntimeVersion: "herald-lab://echo",
			OperatingSystem:         "linux",
			Architecture:            "amd64",
		},
	}
	if _, err := l.Kube.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("lab: node %s status: %w", n.Name, err)
	}
	return nil
}

func readyCondition(ready bool) corev1.NodeCondition {
	c := corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		Reason: "KubeletReady", Message: "herald lab node",
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}
	if !ready {
		c.Status, c.Reason = corev1.ConditionFalse, "KubeletNotReady"
	}
	return c
}

// SetNodeReady sets the node's Ready condition, as a kubelet that stopped
// (or resumed) reporting would.
func (l *Lab) SetNodeReady(ctx context.Context, node string, ready bool) error {
	n, err := l.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	cond := readyCondition(ready)
	replaced := false
	for i, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			n.Status.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		n.Status.Conditions = append(n.Status.Conditions, cond)
	}
	_, err = l.Kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

// kubeProxyConfig runs kube-proxy in nftables mode for node n. Conntrack
// limits are left alone (0): they are global sysctls, not the lab's to change.
func kubeProxyConfig(n *Node) string {
	return strings.Join([]string{
		"apiVersion: kubeproxy.config.k8s.io/v1alpha1",
		"kind: KubeProxyConfiguration",
		"mode: nftables",
		"hostnameOverride: " + n.Name,
		"clientConnection:",
		"  kubeconfig: " + n.Kubeconfig,
		"clusterCIDR: " + ClusterCIDRv4.String() + "," + ClusterCIDRv6.String(),
		"detectLocalMode: ClusterCIDR",
		"healthzBindAddress: 127.0.0.1:10256",
		"metricsBindAddress: 127.0.0.1:10249",
		"conntrack:",
		"  maxPerCore: 0",
		"  min: 0",
		"  tcpEstablishedTimeout: 0s",
		"  tcpCloseWaitTimeout: 0s",
		"",
	}, "\n")
}

// startKubeProxy writes the node's kube-proxy config and starts it.
func (l *Lab) startKubeProxy(n *Node) error {
	cfg := filepath.Join(l.Dir, "nodes", n.Name, "kube-proxy.yaml")
	if err := os.WriteFile(cfg, []byte(kubeProxyConfig(n)), 0o644); err != nil {
		return err
	}
	n.KubeProxy = newComponent(l.Reg, l.logDir(), "kube-proxy-"+n.Name, n.NS, ComponentSpec{
		Binary: filepath.Join(l.Env.BinDir, "kube-proxy"),
		Args:   []string{"--config=" + cfg, "--v=1"},
	})
	return n.KubeProxy.Start()
}

// waitKubeProxy waits until the node's kube-proxy reports healthy, which it
// does after its first full sync of the nftables rules.
func (l *Lab) waitKubeProxy(ctx context.Context, n *Node) error {
	client := HTTPClient(n.NS, time.Second)
	for {
		resp, err := client.Get("http://127.0.0.1:10256/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("healthz status %d", resp.StatusCode)
		}
		if p := n.KubeProxy.Proc(); p == nil || p.Exited() {
			return fmt.Errorf("lab: kube-proxy on %s exited:\n%s", n.Name, n.KubeProxy.LogTail(20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: kube-proxy on %s not healthy (%w): %w\n%s", n.Name, err, ctx.Err(), n.KubeProxy.LogTail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nodeVars are the placeholders of a speaker's ComponentSpec.Args.
func nodeVars(n *Node) map[string]string {
	return map[string]string{
		"node": n.Name, "kubeconfig": n.Kubeconfig,
		"nodeIPv4": n.IPv4.String(), "nodeIPv6": n.IPv6.String(),
		"index": strconv.Itoa(n.Index),
	}
}

// Drain sets (or removes) the annotation herald.dev/drain: "true" on node,
// as a user does before maintenance.
func (l *Lab) Drain(ctx context.Context, node string, on bool) error {
	return poll.Until(ctx, 100*time.Millisecond, func() error {
		n, err := l.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if on {
			metav1.SetMetaDataAnnotation(&n.ObjectMeta, v1beta1.AnnotationDrain, "true")
		} else {
			delete(n.Annotations, v1beta1.AnnotationDrain)
		}
		_, err = l.Kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}
