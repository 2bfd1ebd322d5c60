package lab

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldlb/herald/internal/poll"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod returns the running lab pod namespace/name, or nil (always nil on
// real kubelet nodes, where pods are containers).
func (l *Lab) Pod(namespace, name string) *Pod {
	if l.kubelet == nil {
		return nil
	}
	return l.kubelet.pod(namespace + "/" + name)
}

// SetPodReady makes a running pod's Ready condition false (or true again),
// as a failing (or recovering) readiness probe would, and returns once the
// Pod's status says so.
func (l *Lab) SetPodReady(ctx context.Context, namespace, name string, ready bool) error {
	key := namespace + "/" + name
	if l.Pod(namespace, name) == nil {
		return fmt.Errorf("lab: pod %s is not running on a lab node", key)
	}
	l.kubelet.setUnready(key, !ready)
	err := poll.Until(ctx, 20*time.Millisecond, func() error {
		p, err := l.Kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && podReady(p) != ready {
			err = fmt.Errorf("Ready=%v", !ready)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("lab: waiting for pod %s Ready=%v: %w", key, ready, err)
	}
	return nil
}

// WaitReadyPods waits until n pods matching selector in namespace are Ready
// and returns them.
func (l *Lab) WaitReadyPods(ctx context.Context, namespace, selector string, n int) ([]corev1.Pod, error) {
	var ready []corev1.Pod
	err := poll.Until(ctx, 50*time.Millisecond, func() error {
		list, err := l.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		ready = ready[:0]
		for _, p := range list.Items {
			if podReady(&p) && p.DeletionTimestamp == nil {
				ready = append(ready, p)
			}
		}
		if len(ready) < n {
			return fmt.Errorf("%d ready", len(ready))
		}
		return nil
	})
	if err != nil {
		return ready, fmt.Errorf("lab: waiting for %d ready pods %q in %s: %w", n, selector, namespace, err)
	}
	return ready, nil
}

// SetIngressIP writes status.loadBalancer.ingress of a Service by hand (with
// ipMode VIP), as Herald's controller would: kube-proxy then DNATs the IPs.
func (l *Lab) SetIngressIP(ctx context.Context, namespace, name string, ips ...string) error {
	svc, err := l.Kube.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	vip := corev1.LoadBalancerIPModeVIP
	svc.Status.LoadBalancer.Ingress = nil
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip, IPMode: &vip})
	}
	_, err = l.Kube.CoreV1().Services(namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{})
	return err
}

// WaitIngressIPs waits until the Service has at least one ingress IP and returns them.
func (l *Lab) WaitIngressIPs(ctx context.Context, namespace, name string) ([]string, error) {
	var ips []string
	err := poll.Until(ctx, 50*time.Millisecond, func() error {
		svc, err := l.Kube.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ips = ips[:0]
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				ips = append(ips, in.IP)
			}
		}
		if len(ips) == 0 {
			return errors.New("no ingress IP")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: waiting for an ingress IP on Service %s/%s: %w", namespace, name, err)
	}
	return ips, nil
}

// WaitReadyEndpoints waits until the Service's EndpointSlices list n ready
// endpoints of each family.
func (l *Lab) WaitReadyEndpoints(ctx context.Context, namespace, service string, families []corev1.IPFamily, n int) error {
	ready := map[corev1.IPFamily]int{}
	err := poll.Until(ctx, 50*time.Millisecond, func() error {
		list, err := l.Kube.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
		if err != nil {
			return err
		}
		clear(ready)
		for _, s := range list.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					ready[corev1.IPFamily(s.AddressType)]++
				}
			}
		}
		for _, f := range families {
			if ready[f] < n {
				return fmt.Errorf("ready endpoints %v", ready)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lab: waiting for %d ready endpoints of each of %v in Service %s/%s: %w", n, families, namespace, service, err)
	}
	return nil
}
