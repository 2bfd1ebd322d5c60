package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
)

const podBridge = "cni0"

// ErrPodCIDRFull means a node has no free pod address left.
var ErrPodCIDRFull = errors.New("lab: node pod CIDR is full")

// podGateway returns the node's address on its pod bridge in each family.
func (n *Node) podGateway() (netip.Addr, netip.Addr) {
	return hostAddr(n.PodCIDRv4, 1), hostAddr(n.PodCIDRv6, 1)
}

// addPodBridge gives node n the bridge its pods plug into.
func addPodBridge(ctx context.Context, n *Node) error {
	gw4, gw6 := n.podGateway()
	return ipBatch(ctx, n.NS, append([]string{
		"link add " + podBridge + " type bridge",
		"link set " + podBridge + " up",
	}, addrLines(podBridge, withLen(gw4, n.PodCIDRv4), withLen(gw6, n.PodCIDRv6))...)...)
}

// Pod is a pod the lab runs: a namespace behind its node with a veth on
// the node's pod bridge, and the echo backend inside.
type Pod struct {
	Key        string // namespace/name
	Node       *Node
	NS         *netns.NS
	IPv4, IPv6 netip.Addr
	// Proc is the backend; killing it makes the pod unready, as a crashed container would.
	Proc *netns.Proc

	uid     string
	veth    string // the node side, on cni0
	index   int    // host number in the node's pod CIDRs
	started time.Time
}

// podPorts lists the TCP and UDP container ports; with none declared the
// backend serves HTTP on 8080.
func podPorts(pod *corev1.Pod) (tcp, udp []string) {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			port := strconv.Itoa(int(p.ContainerPort))
			switch p.Protocol {
			case corev1.ProtocolUDP:
				udp = append(udp, port)
			case corev1.ProtocolSCTP:
			default:
				tcp = append(tcp, port)
			}
		}
	}
	if len(tcp) == 0 && len(udp) == 0 {
		tcp = []string{"8080"}
	}
	return tcp, udp
}

// setupPod creates the pod's namespace and link on its node, addresses it
// from the node's pod CIDRs and starts the echo backend, returning once the
// backend listens.
func (k *kubelet) setupPod(ctx context.Context, pod *corev1.Pod, n *Node, index, seq int) (_ *Pod, err error) {
	l := k.lab
	lp := &Pod{
		Key: pod.Namespace + "/" + pod.Name, uid: string(pod.UID), Node: n, index: index,
		veth: "vp" + strconv.Itoa(seq),
		IPv4: hostAddr(n.PodCIDRv4, index), IPv6: hostAddr(n.PodCIDRv6, index),
	}
	if lp.NS, err = l.addNS(ctx, "p"+strconv.Itoa(seq), false); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			k.teardownPod(lp)
		}
	}()
	if err := l.Reg.Veth(ctx, lp.NS, "eth0", n.NS, lp.veth); err != nil {
		return nil, err
	}
	if err := ipBatch(ctx, n.NS, "link set "+lp.veth+" master "+podBridge); err != nil {
		return nil, err
	}
	gw4, gw6 := n.podGateway()
	if err := ipBatch(ctx, lp.NS, append(addrLines("eth0", withLen(lp.IPv4, n.PodCIDRv4), withLen(lp.IPv6, n.PodCIDRv6)),
		"route add default via "+gw4.String(), "route add default via "+gw6.String())...); err != nil {
		return nil, err
	}
	dir := filepath.Join(l.Dir, "pods", pod.Namespace+"_"+pod.Name+"_"+strconv.Itoa(seq))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ready := filepath.Join(dir, "ready")
	tcp, udp := podPorts(pod)
	args := append(append([]string(nil), k.echo...),
		"--pod="+pod.Name, "--namespace="+pod.Namespace, "--node="+n.Name,
		"--tcp="+strings.Join(tcp, ","), "--udp="+strings.Join(udp, ","), "--ready-file="+ready)
	if lp.Proc, err = l.Reg.Start(lp.NS, "pod "+lp.Key, filepath.Join(dir, "backend.log"), nil, args...); err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if lp.Proc.Exited() {
			//nolint:errorlint // nil after exit status 0, which %w would print as %!w(<nil>)
			return nil, fmt.Errorf("lab: backend of pod %s exited: %v\n%s", lp.Key, lp.Proc.Wait(), testenv.TailFile(filepath.Join(dir, "backend.log"), 10))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lab: backend of pod %s not listening: %w", lp.Key, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	lp.started = time.Now()
	return lp, nil
}

// teardownPod ends the backend and deletes the pod's namespace (its veth goes with it).
func (k *kubelet) teardownPod(lp *Pod) {
	if lp.Proc != nil {
		_ = lp.Proc.Stop(2 * time.Second)
	}
	if lp.NS != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := k.lab.Reg.Remove(ctx, lp.NS); err != nil {
			k.lab.log.Warn("lab: delete pod namespace", "pod", lp.Key, "err", err)
		}
	}
}
