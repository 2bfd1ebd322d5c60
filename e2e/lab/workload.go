package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/poll"
)

// WorkloadSpec describes echo pods behind one LoadBalancer Service (port
// 80 to the pods' 8080), in a namespace of its own.
type WorkloadSpec struct {
	// Name of the Service and of the namespace "t-<Name>".
	Name string
	// Nodes pins one pod to each node named; empty: a Deployment of Replicas.
	Nodes    []string
	Replicas int32
	// Local sets externalTrafficPolicy: Local.
	Local bool
	// Family is "IPv4", "IPv6" or "" for dual-stack.
	Family string
	// Pool names the IPPool (annotation herald.dev/ip-pool); empty: any
	// pool that assigns automatically.
	Pool string
	// Annotations of the Service (requested IPs, sharing, ...).
	Annotations map[string]string
}

// Workload is a deployed WorkloadSpec.
type Workload struct {
	Namespace, Name string
	// IPs are the Service's ingress IPs, as the controller wrote them.
	IPs []string
}

// echoContainer runs the echo backend: on real kubelet nodes from the
// lab's EchoImage, named by the downward API; the lab's own pod runner
// starts the backend with the same names from the Pod object instead.
var echoContainer = corev1.Container{
	Name: "echo", Image: EchoImage, ImagePullPolicy: corev1.PullNever,
	Args: []string{"--pod=$(POD_NAME)", "--namespace=$(POD_NAMESPACE)", "--node=$(NODE_NAME)", "--tcp=8080"},
	Env: []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
	},
	Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
	ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}, PeriodSeconds: 1},
}

// EchoPod is a pod of the workload pinned to node (the lab runs it as an
// echo backend), named "<name>-<node>".
func EchoPod(w *Workload, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name + "-" + node, Labels: map[string]string{"app": w.Name}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{echoContainer}},
	}
}

// Deploy creates the workload and waits until its pods are ready and its
// Service has an IP of each requested family. Delete removes it. A
// namespace of the same name still going away (the same test run again
// with -count) is waited for first.
func (l *Lab) Deploy(ctx context.Context, s WorkloadSpec) (*Workload, error) {
	w := &Workload{Namespace: "t-" + s.Name, Name: s.Name}
	if err := l.Delete(ctx, w); err != nil {
		return nil, err
	}
	labels := map[string]string{"app": s.Name}
	core := l.Kube.CoreV1()
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.Namespace}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("lab: namespace %s: %w", w.Namespace, err)
	}
	for _, n := range s.Nodes {
		if _, err := core.Pods(w.Namespace).Create(ctx, EchoPod(w, n), metav1.CreateOptions{}); err != nil {
			return w, fmt.Errorf("lab: pod on %s: %w", n, err)
		}
	}
	if len(s.Nodes) == 0 {
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: s.Name},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(s.Replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{echoContainer}}},
			},
		}
		if _, err := l.Kube.AppsV1().Deployments(w.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return w, fmt.Errorf("lab: deployment %s: %w", s.Name, err)
		}
	}
	svc := service(w, s)
	if _, err := core.Services(w.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return w, fmt.Errorf("lab: service %s: %w", s.Name, err)
	}
	n := int(s.Replicas)
	if len(s.Nodes) > 0 {
		n = len(s.Nodes)
	}
	if _, err := l.WaitReadyPods(ctx, w.Namespace, "app="+s.Name, n); err != nil {
		return w, err
	}
	// kube-proxy forwards only to what the EndpointSlices list, and they
	// follow the pods' readiness a little later, per family.
	if err := l.WaitReadyEndpoints(ctx, w.Namespace, w.Name, svc.Spec.IPFamilies, n); err != nil {
		return w, err
	}
	err := poll.Until(ctx, 50*time.Millisecond, func() error {
		cur, err := core.Services(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		w.IPs = w.IPs[:0]
		for _, in := range cur.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				w.IPs = append(w.IPs, in.IP)
			}
		}
		if len(w.IPs) < len(svc.Spec.IPFamilies) {
			return fmt.Errorf("ingress IPs %v", w.IPs)
		}
		return nil
	})
	if err != nil {
		return w, fmt.Errorf("lab: waiting for %d ingress IPs on Service %s/%s: %w", len(svc.Spec.IPFamilies), w.Namespace, w.Name, err)
	}
	return w, nil
}

// service is the workload's LoadBalancer Service: port 80 to the pods'
// named port, in the spec's pool and families.
func service(w *Workload, s WorkloadSpec) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: s.Name, Annotations: maps.Clone(s.Annotations)},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": s.Name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if s.Pool != "" {
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		svc.Annotations[v1beta1.AnnotationIPPool] = s.Pool
	}
	if s.Local {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	if s.Family == "" {
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	} else {
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPFamily(s.Family)}
	}
	return svc
}

// Delete removes the workload's namespace and waits until it is gone, so
// its Service, endpoints and pods are gone too.
func (l *Lab) Delete(ctx context.Context, w *Workload) error {
	ns := l.Kube.CoreV1().Namespaces()
	if err := ns.Delete(ctx, w.Namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("lab: delete namespace %s: %w", w.Namespace, err)
	}
	err := poll.Until(ctx, 100*time.Millisecond, func() error {
		_, err := ns.Get(ctx, w.Namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err == nil {
			err = errors.New("still there")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("lab: waiting for namespace %s to go: %w", w.Namespace, err)
	}
	return nil
}
