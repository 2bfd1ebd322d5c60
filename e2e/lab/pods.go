package lab

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod returns the running lab pod namespace/name, or nil.
func (l *Lab) Pod(namespace, name string) *Pod {
	return l.kubelet.pod(namespace + "/" + name)
}

// SetPodReady makes a running pod's Ready condition false (or true again),
// as a failing (or recovering) readiness probe would, and returns once the
// Pod's status says so.
func (l *Lab) SetPodReady(ctx context.Context, namespace, name string, ready bool) error {
	key := namespace + "/" + name
	if l.kubelet.pod(key) == nil {
		return fmt.Errorf("lab: pod %s is not running on a lab node", key)
	}
	l.kubelet.setUnready(key, !ready)
	return poll(ctx, 20*time.Millisecond, func() (bool, error) {
		p, err := l.Kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return podReady(p) == ready, nil
	}, func() string { return fmt.Sprintf("pod %s Ready=%v", key, ready) })
}

// WaitReadyPods waits until n pods matching selector in namespace are Ready
// and returns them.
func (l *Lab) WaitReadyPods(ctx context.Context, namespace, selector string, n int) ([]corev1.Pod, error) {
	var ready []corev1.Pod
	err := poll(ctx, 50*time.Millisecond, func() (bool, error) {
		list, err := l.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		ready = ready[:0]
		for _, p := range list.Items {
			if podReady(&p) && p.DeletionTimestamp == nil {
				ready = append(ready, p)
			}
		}
		return len(ready) >= n, nil
	}, func() string {
		return fmt.Sprintf("%d ready pods %q in %s (have %d)", n, selector, namespace, len(ready))
	})
	return ready, err
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
	err := poll(ctx, 50*time.Millisecond, func() (bool, error) {
		svc, err := l.Kube.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ips = ips[:0]
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				ips = append(ips, in.IP)
			}
		}
		return len(ips) > 0, nil
	}, func() string { return fmt.Sprintf("an ingress IP on Service %s/%s", namespace, name) })
	return ips, err
}

// poll checks cond every interval until it holds or ctx ends; the timeout
// error says what was awaited (describe runs then, so it can show the last state).
func poll(ctx context.Context, interval time.Duration, cond func() (bool, error), describe func() string) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			msg := "lab: waiting for " + describe()
			if last != nil {
				return fmt.Errorf("%s: %w (last error: %v)", msg, ctx.Err(), last)
			}
			return fmt.Errorf("%s: %w", msg, ctx.Err())
		case <-time.After(interval):
		}
	}
}
