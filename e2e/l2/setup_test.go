package l2

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/k8s"
)

// env is the shared lab with Herald running in it.
type env struct {
	*lab.Lab
	c    client.Client
	macs map[string]string // node name by eth0 MAC
}

var (
	heraldOnce sync.Once
	shared     *env
	sharedErr  error
)

// The pools every test can use; tests that need more make their own.
const (
	poolL2   = "l2" // 198.51.100.10-99, 2001:db8:100::10-99, announced everywhere
	rangeV4  = "198.51.100.10-198.51.100.99"
	rangeV6  = "2001:db8:100::10-2001:db8:100::99"
	speakerN = "speaker-"
)

func speakerSpec(extra ...string) lab.ComponentSpec {
	return lab.ComponentSpec{Binary: bin.speaker, Args: append([]string{"--kubeconfig={kubeconfig}", "--node-name={node}"}, extra...)}
}

// herald returns the lab with the controller, a speaker per node and the
// base configuration, started on first use. Speakers a previous test
// stopped are started again and every speaker sees the others.
func herald(t *testing.T) *env {
	t.Helper()
	l := labtest.Lab(t)
	heraldOnce.Do(func() { shared, sharedErr = startHerald(l) })
	if sharedErr != nil {
		t.Fatalf("starting Herald in the lab: %v", sharedErr)
	}
	e := shared
	for _, n := range e.Nodes {
		c := e.Component(speakerN + n.Name)
		if c.Running() {
			_ = c.Resume() // a test may have left it paused
			continue
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.waitMembers(ctx, len(e.Nodes)); err != nil {
		t.Fatal(err)
	}
	return e
}

func startHerald(l *lab.Lab) (*env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	scheme, err := k8s.Scheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(l.Env.Config, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	e := &env{Lab: l, c: c, macs: map[string]string{}}
	for _, n := range l.Nodes {
		mac, err := n.MAC()
		if err != nil {
			return nil, err
		}
		e.macs[mac.String()] = n.Name
	}
	if _, err := l.StartController(lab.ComponentSpec{Binary: bin.controller, Args: []string{"--kubeconfig={kubeconfig}", "--metrics-bind-address=0", "--health-probe-bind-address=0"}}); err != nil {
		return nil, err
	}
	if _, err := l.StartSpeakers(speakerSpec()); err != nil {
		return nil, err
	}
	if err := e.createAll(ctx,
		&v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: poolL2}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{rangeV4, rangeV6}}},
		&v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: poolL2}, Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{poolL2}}}},
	); err != nil {
		return nil, err
	}
	return e, e.waitMembers(ctx, len(l.Nodes))
}

func (e *env) createAll(ctx context.Context, objs ...client.Object) error {
	for _, o := range objs {
		if err := e.c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// poll checks cond every interval until it returns nil or ctx ends.
func poll(ctx context.Context, interval time.Duration, cond func() error) error {
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// statuses reads every node's SpeakerStatus.
func (e *env) statuses(ctx context.Context) (map[string]v1beta1.SpeakerStatusStatus, error) {
	var list v1beta1.SpeakerStatusList
	if err := e.c.List(ctx, &list); err != nil {
		return nil, err
	}
	out := map[string]v1beta1.SpeakerStatusStatus{}
	for _, s := range list.Items {
		out[s.Name] = s.Status
	}
	return out, nil
}

// waitMembers waits until every node's SpeakerStatus counts n live members.
func (e *env) waitMembers(ctx context.Context, n int) error {
	return poll(ctx, 100*time.Millisecond, func() error {
		st, err := e.statuses(ctx)
		if err != nil {
			return err
		}
		for _, node := range e.Nodes {
			if got := st[node.Name].MembersAlive; got != int32(n) {
				return fmt.Errorf("%s sees %d members, want %d", node.Name, got, n)
			}
		}
		return nil
	})
}

// owners lists the nodes whose SpeakerStatus says they announce ip.
func (e *env) owners(ctx context.Context, ip string) ([]string, error) {
	st, err := e.statuses(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for node, s := range st {
		for _, a := range s.L2Announcements {
			if a.IP == ip {
				out = append(out, node)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// waitOwner waits until exactly one node announces ip (and not one of
// except) and returns it.
func (e *env) waitOwner(ctx context.Context, ip string, except ...string) (string, error) {
	var owner string
	err := poll(ctx, 50*time.Millisecond, func() error {
		o, err := e.owners(ctx, ip)
		if err != nil {
			return err
		}
		if len(o) != 1 || slices.Contains(except, o[0]) {
			return fmt.Errorf("%s announced by %v", ip, o)
		}
		owner = o[0]
		return nil
	})
	return owner, err
}

// answerers returns the nodes whose MACs answer the client's ARP requests
// (IPv4) or Neighbor Solicitations (IPv6) for ip, all of them.
func (e *env) answerers(ctx context.Context, ip string) ([]string, error) {
	var out string
	var err error
	if strings.Contains(ip, ":") {
		out, err = e.Client.Run(ctx, "ndisc6", "-m", "-n", "-r", "2", "-w", "700", ip, "eth0")
	} else {
		out, err = e.Client.Run(ctx, "arping", "-c", "2", "-w", "2", "-i", "eth0", ip)
	}
	set := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		var macText string
		if _, rest, ok := strings.Cut(line, " bytes from "); ok {
			macText, _, _ = strings.Cut(rest, " ")
		} else if _, rest, ok := strings.Cut(line, "Target link-layer address:"); ok {
			macText = strings.TrimSpace(rest)
		}
		if mac, perr := net.ParseMAC(macText); perr == nil {
			name := e.macs[mac.String()]
			if name == "" {
				name = mac.String()
			}
			set[name] = true
		}
	}
	if len(set) == 0 && err != nil {
		return nil, nil // no answer at all
	}
	return slices.Sorted(func(yield func(string) bool) {
		for k := range set {
			if !yield(k) {
				return
			}
		}
	}), nil
}

// workload is a namespace with echo pods and a LoadBalancer Service.
type workload struct {
	ns, name string
	ips      []string
}

// workloadSpec describes one.
type workloadSpec struct {
	name  string
	local bool
	// nodes pins one pod to each; empty: a Deployment of replicas.
	nodes    []string
	replicas int32
	pool     string
	// family: "IPv4", "IPv6" or "" for dual-stack.
	family string
}

// deploy creates the namespace, pods and Service and waits for the IPs and
// ready endpoints.
func (e *env) deploy(t *testing.T, s workloadSpec) workload {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := workload{ns: "t-" + s.name, name: s.name}
	labels := map[string]string{"app": s.name}
	// The same test run again (-count) finds its namespace still going away.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}
	if err := poll(ctx, 200*time.Millisecond, func() error {
		if err := e.c.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace %s still there (%v)", w.ns, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{ns}
	podSpec := corev1.PodSpec{Containers: []corev1.Container{{Name: "echo", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53",
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}
	for _, n := range s.nodes {
		ps := podSpec.DeepCopy()
		ps.NodeName = n
		objs = append(objs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: s.name + "-" + n, Labels: labels}, Spec: *ps})
	}
	if len(s.nodes) == 0 {
		objs = append(objs, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: s.name},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(s.replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec},
			},
		})
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: s.name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Selector: labels,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if s.pool != "" {
		svc.Annotations = map[string]string{v1beta1.AnnotationIPPool: s.pool}
	}
	if s.local {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	switch s.family {
	case "":
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	default:
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPFamily(s.family)}
	}
	objs = append(objs, svc)
	if err := e.createAll(ctx, objs...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}})
	})
	n := int(s.replicas)
	if len(s.nodes) > 0 {
		n = len(s.nodes)
	}
	if _, err := e.WaitReadyPods(ctx, w.ns, "app="+s.name, n); err != nil {
		t.Fatal(err)
	}
	want := 2
	if s.family != "" {
		want = 1
	}
	err := poll(ctx, 50*time.Millisecond, func() error {
		var cur corev1.Service
		if err := e.c.Get(ctx, client.ObjectKeyFromObject(svc), &cur); err != nil {
			return err
		}
		w.ips = w.ips[:0]
		for _, in := range cur.Status.LoadBalancer.Ingress {
			w.ips = append(w.ips, in.IP)
		}
		if len(w.ips) < want {
			return fmt.Errorf("ingress %v", w.ips)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Service %s/%s got no IPs: %v", w.ns, w.name, err)
	}
	return w
}

// get sends one request to ip from the LAN client, retrying for a while.
func (e *env) get(ctx context.Context, ip string) (node, pod string, err error) {
	err = poll(ctx, 100*time.Millisecond, func() error {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		rep, err := e.Client.Get(rctx, lab.URL(ip, 80))
		if err != nil {
			return err
		}
		node, pod = rep.Node, rep.Pod
		return nil
	})
	return node, pod, err
}

func addrOf(s string) netip.Addr { return netip.MustParseAddr(s) }

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
