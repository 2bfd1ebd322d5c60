package install_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/deploy"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit"
)

// TestChart installs Herald with its Helm chart (the images from make
// images, nothing else set), uses it as a user would, updates the speakers
// to a new image under traffic and uninstalls it.
func TestChart(t *testing.T) {
	l := labtest.Lab(t)
	ch, err := deploy.LoadChart("")
	if err != nil {
		t.Fatal(err)
	}
	helm, err := deploy.NewClient(l.Env.Kubeconfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := helm.Install(labtest.Context(t, 4*time.Minute), ch, nil, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("helm install returned after %v", time.Since(begin).Round(time.Millisecond))
	waitRollout(t, l, time.Minute)
	applySamples(t, l)
	web := labtest.Deploy(t, l, lab.WorkloadSpec{Name: "web", Nodes: l.NodeNames(), Pool: "lan"})
	routed := labtest.Deploy(t, l, lab.WorkloadSpec{Name: "routed", Nodes: l.NodeNames(), Pool: "routed"})
	v4, v6 := web.IPs[0], web.IPs[1]
	logMeasure(t, "chart-install-to-first-answer", firstAnswer(t, l.Client, v4, time.Minute).Sub(begin))

	t.Run("speakers run with exactly the shipped security context", func(t *testing.T) {
		speakersRunAsShipped(t, l)
	})
	t.Run("metrics answer only an authorized reader, over HTTPS", func(t *testing.T) {
		metricsLockedDown(t, l)
	})
	t.Run("Layer 2: IPv4 over ARP and IPv6 over NDP", func(t *testing.T) {
		announcedOverARPAndNDP(t, l, v4, v6)
	})
	t.Run("BGP: FRR routes the IP to every node", func(t *testing.T) {
		routedThroughFRR(t, l, routed.IPs[0])
	})
	t.Run("the controller's standby takes over when the leader pod goes", func(t *testing.T) {
		leaderTakeover(t, l)
	})
	t.Run("a rolling update of the speakers loses no request", func(t *testing.T) {
		rollingUpdate(t, l, helm, ch, v4, v6, routed.IPs[0])
	})
	t.Run("uninstall leaves no object and no announcement", func(t *testing.T) {
		if err := helm.Uninstall(2 * time.Minute); err != nil {
			t.Fatal(err)
		}
		// What the release did not make, as the README says: the namespace
		// (with the controller's memberlist Secret and the Leases) and the CRDs.
		if _, err := l.Kubectl(labtest.Context(t, time.Minute), "delete", "namespace", ns, "--wait=false"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Kubectl(labtest.Context(t, time.Minute), "delete", "-f", filepath.Join(chartDir(t), "crds"), "--wait=false"); err != nil {
			t.Fatal(err)
		}
		nothingLeft(t, l, v4, v6, routed.IPs[0])
	})
}

// TestKustomize installs Herald with kubectl apply -k config/default,
// checks that an IP is announced and answered (BGP with TCP MD5, set by
// speakers holding only the shipped capabilities), that the metrics are
// locked down, and removes it with kubectl delete -k.
func TestKustomize(t *testing.T) {
	l := labtest.Lab(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kustomization := filepath.Join(root, "config", "default")
	begin := time.Now()
	if out, err := l.Kubectl(labtest.Context(t, 2*time.Minute), "apply", "-k", kustomization); err != nil {
		t.Fatalf("kubectl apply -k config/default: %v\n%s", err, out)
	}
	waitRollout(t, l, 3*time.Minute)
	testkit.For(t, time.Minute, "the samples apply (CRDs established)", func() error {
		root, _ := testenv.RepoRoot()
		return l.Apply(labtest.Context(t, time.Minute), filepath.Join(root, "config/samples/ippools.yaml"), filepath.Join(root, "config/samples/l2advertisement.yaml"), filepath.Join(root, "config/samples/bgp.yaml"))
	})
	w := labtest.Deploy(t, l, lab.WorkloadSpec{Name: "kweb", Nodes: l.NodeNames(), Pool: "lan"})
	routed := labtest.Deploy(t, l, lab.WorkloadSpec{Name: "krouted", Nodes: l.NodeNames(), Pool: "routed", Family: "IPv4"})
	logMeasure(t, "kustomize-install-to-first-answer", firstAnswer(t, l.Client, w.IPs[0], time.Minute).Sub(begin))
	announcedOverARPAndNDP(t, l, w.IPs[0], w.IPs[1])
	withTCPMD5(t, l)
	routedThroughFRR(t, l, routed.IPs[0])
	passiveOnPort179(t, l)
	speakersRunAsShipped(t, l)
	metricsLockedDown(t, l)

	if out, err := l.Kubectl(labtest.Context(t, 3*time.Minute), "delete", "-k", kustomization, "--wait=false"); err != nil {
		t.Fatalf("kubectl delete -k config/default: %v\n%s", err, out)
	}
	nothingLeft(t, l, w.IPs[0], w.IPs[1], routed.IPs[0])
}

func chartDir(t *testing.T) string {
	t.Helper()
	dir, err := deploy.ChartDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// speakersRunAsShipped compares each speaker pod with the shipped
// DaemonSet and reads what the kernel gave its process: exactly the
// capabilities the DaemonSet names, nothing it may gain, uid 0, seccomp.
func speakersRunAsShipped(t *testing.T, l *lab.Lab) {
	ctx := labtest.Context(t, time.Minute)
	shipped := shippedDaemonSet(t).Spec.Template.Spec.Containers[0].SecurityContext
	if shipped.Privileged == nil || *shipped.Privileged {
		t.Fatalf("the shipped speaker is privileged: %+v", shipped)
	}
	pods, err := l.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != len(l.Nodes) {
		t.Fatalf("%d speaker pods, want one per node", len(pods.Items))
	}
	want := capMask(shipped.Capabilities.Add)
	for _, p := range pods.Items {
		if got := p.Spec.Containers[0].SecurityContext; !equality.Semantic.DeepEqual(got, shipped) {
			t.Errorf("pod %s runs with securityContext %+v, the DaemonSet ships %+v", p.Name, got, shipped)
		}
		if !p.Spec.HostNetwork {
			t.Errorf("pod %s is not on the host network", p.Name)
		}
		r := l.RealNode(p.Spec.NodeName)
		pids := r.Processes("/herald-speaker")
		if len(pids) != 1 {
			t.Fatalf("node %s runs %d herald-speaker processes, want 1", r.Node.Name, len(pids))
		}
		caps, err := capsOf(pids[0])
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: speaker pid %d: CapEff %#x CapBnd %#x NoNewPrivs %d Seccomp %d uid %d", p.Spec.NodeName, pids[0], caps["CapEff"], caps["CapBnd"], caps["NoNewPrivs"], caps["Seccomp"], caps["Uid"])
		for _, set := range []string{"CapEff", "CapPrm", "CapBnd"} {
			if caps[set] != want {
				t.Errorf("%s: the speaker's %s is %#x, want exactly %v (%#x)", p.Spec.NodeName, set, caps[set], shipped.Capabilities.Add, want)
			}
		}
		if caps["CapInh"] != 0 || caps["CapAmb"] != 0 {
			t.Errorf("%s: inheritable %#x, ambient %#x capabilities, want none", p.Spec.NodeName, caps["CapInh"], caps["CapAmb"])
		}
		if caps["NoNewPrivs"] != 1 {
			t.Errorf("%s: no_new_privs is off, but allowPrivilegeEscalation is false", p.Spec.NodeName)
		}
		if caps["Seccomp"] != 2 {
			t.Errorf("%s: seccomp mode %d, want 2 (filter, RuntimeDefault)", p.Spec.NodeName, caps["Seccomp"])
		}
		if caps["Uid"] != 0 {
			t.Errorf("%s: uid %d, the DaemonSet says 0", p.Spec.NodeName, caps["Uid"])
		}
	}
}

// announcedOverARPAndNDP: the client's ARP request for v4 and Neighbor
// Solicitation for v6 are answered with a node's MAC, and requests to both
// reach the pods.
func announcedOverARPAndNDP(t *testing.T, l *lab.Lab, v4, v6 string) {
	ctx := labtest.Context(t, time.Minute)
	for _, ip := range []string{v4, v6} {
		testkit.For(t, 30*time.Second, "an ARP/NDP answer for "+ip+" from a node", func() error {
			var mac []byte
			var err error
			if addrOf(t, ip).Is4() {
				mac, err = l.Client.Arping(ctx, ip)
			} else {
				mac, err = l.Client.Ndisc6(ctx, ip)
			}
			if err != nil {
				return err
			}
			if node := nodeByMAC(t, l, mac); node == "" {
				return fmt.Errorf("answered by %s, no node's MAC", mac)
			}
			return nil
		})
		firstAnswer(t, l.Client, ip, 30*time.Second)
	}
}

// routedThroughFRR: FRR has a route for ip with a next hop per node, and
// the external client reaches the pods through it.
func routedThroughFRR(t *testing.T, l *lab.Lab, ip string) {
	ctx := labtest.Context(t, time.Minute)
	a := addrOf(t, ip)
	testkit.For(t, time.Minute, "FRR routes "+ip+" to every node", func() error {
		routes, err := l.FRR.FRR.RIBRoutes(ctx, netip.PrefixFrom(a, a.BitLen()))
		if err != nil {
			return err
		}
		hops := map[string]bool{}
		for _, r := range routes {
			for _, h := range r.NextHops {
				if h.FIB {
					hops[h.IP] = true
				}
			}
		}
		if len(hops) != len(l.Nodes) {
			return fmt.Errorf("next hops %v", hops)
		}
		return nil
	})
	firstAnswer(t, l.Ext, ip, 30*time.Second)
}

// leaderTakeover deletes the leading controller pod, as kubectl delete pod
// does, and waits for another replica to hold the Lease and assign an IP.
// The standby and the replacement pod the Deployment starts race for the
// released Lease; either may win, the deleted pod never.
func leaderTakeover(t *testing.T, l *lab.Lab) {
	ctx := labtest.Context(t, 3*time.Minute)
	holder := func() (string, error) {
		lease, err := l.Kube.CoordinationV1().Leases(ns).Get(ctx, "herald-controller", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return "", errors.New("no holder")
		}
		pod, _, _ := strings.Cut(*lease.Spec.HolderIdentity, "_")
		return pod, nil
	}
	pods, err := l.WaitReadyPods(ctx, ns, "app.kubernetes.io/component=controller", 2)
	if err != nil {
		t.Fatal(err)
	}
	var leader, standby string
	testkit.For(t, time.Minute, "one controller replica leads", func() error {
		h, err := holder()
		if err != nil {
			return err
		}
		for _, p := range pods {
			if p.Name == h {
				leader = h
			} else {
				standby = p.Name
			}
		}
		if leader == "" || standby == "" {
			return fmt.Errorf("the Lease names %s, the replicas are %s and %s", h, pods[0].Name, pods[1].Name)
		}
		return nil
	})
	t.Logf("leader %s, standby %s", leader, standby)
	begin := time.Now()
	if err := l.Kube.CoreV1().Pods(ns).Delete(ctx, leader, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var newLeader string
	took := testkit.For(t, time.Minute, "another replica holds the Lease", func() error {
		h, err := holder()
		if err != nil {
			return err
		}
		if h == leader {
			return fmt.Errorf("held by %s", h)
		}
		p, err := l.Kube.CoreV1().Pods(ns).Get(ctx, h, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("held by %s: %w", h, err)
		}
		if p.DeletionTimestamp != nil {
			return fmt.Errorf("held by %s, which is going", h)
		}
		newLeader = h
		return nil
	})
	role := "the replacement pod"
	if newLeader == standby {
		role = "the standby"
	}
	t.Logf("%s (%s) leads %v after the delete", newLeader, role, took.Round(time.Millisecond))
	logMeasure(t, "leader-takeover", took)
	w := labtest.Deploy(t, l, lab.WorkloadSpec{Name: "after-takeover", Nodes: l.NodeNames()[:1], Pool: "lan", Family: "IPv4"})
	logMeasure(t, "leader-delete-to-new-service-ip", time.Since(begin))
	firstAnswer(t, l.Client, w.IPs[0], 30*time.Second)
}

// rollingUpdate moves the speakers to a new image with helm upgrade while
// clients send a request every 20 ms to a Layer 2 IP of each family and a
// routed IP, and checks that every request was answered.
func rollingUpdate(t *testing.T, l *lab.Lab, helm *deploy.Client, ch *chart.Chart, v4, v6, routed string) {
	ctx := labtest.Context(t, 5*time.Minute)
	opts := lab.ProbeOptions{Interval: 20 * time.Millisecond, Timeout: 2 * time.Second}
	probes := map[string]*lab.Probe{
		"layer 2 IPv4 " + v4: l.Client.StartProbe(lab.URL(v4, 80), opts),
		"layer 2 IPv6 " + v6: l.Client.StartProbe(lab.URL(v6, 80), opts),
		"BGP " + routed:      l.Ext.StartProbe(lab.URL(routed, 80), opts),
	}
	stopped := false
	stop := func() map[string][]lab.Sample {
		out := map[string][]lab.Sample{}
		for name, p := range probes {
			out[name] = p.Stop()
		}
		stopped = true
		return out
	}
	defer func() {
		if !stopped {
			stop()
		}
	}()
	time.Sleep(time.Second) // a baseline before the update starts
	vals, err := deploy.Values("speaker.image.tag=" + rollTag)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := helm.Upgrade(ctx, ch, vals, 0); err != nil {
		t.Fatal(err)
	}
	waitRollout(t, l, 4*time.Minute)
	logMeasure(t, "speaker-rolling-update", time.Since(begin))
	time.Sleep(2 * time.Second) // requests after the last pod turned ready
	samples := stop()
	pods, err := l.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if img := p.Spec.Containers[0].Image; img != rollImage || p.DeletionTimestamp != nil {
			t.Errorf("speaker pod %s runs %s after the update, want %s", p.Name, img, rollImage)
		}
	}
	for name, s := range samples {
		sum := lab.Summarize(s)
		t.Logf("%s: %d requests, %d failed, answers per node %v, longest outage %v", name, sum.Total, sum.Failed, sum.ByNode, sum.LongestOutage)
		if sum.Total < 100 {
			t.Errorf("%s: only %d requests during the update", name, sum.Total)
		}
		rehashed := 0
		for _, x := range s {
			switch {
			case x.OK():
			case strings.Contains(x.Err, "connection reset by peer"):
				// The connection was made, then its packets went to another
				// node: over BGP FRR's ECMP hash moved the flow when a next
				// hop left or came back (a speaker restarting withdraws its
				// routes; the lab's FRR has no graceful restart and no
				// resilient hashing); over Layer 2 the address was handed
				// over (SIGTERM) or moved back (pod ready) while the
				// connection was open. That node has no conntrack entry for
				// it and resets it: counted and reported, not a lost
				// address (a refused or timed-out request still fails).
				rehashed++
			default:
				t.Errorf("%s: request sent at %s failed: %s", name, x.Sent.Format("15:04:05.000"), x.Err)
			}
		}
		if rehashed > 0 {
			t.Logf("MEASURE %s: %d of %d connections reset by a move (ECMP rehash or Layer 2 hand-over)", name, rehashed, sum.Total)
		}
		if rehashed > sum.Total/100 {
			t.Errorf("%s: %d of %d connections reset, more than 1%%", name, rehashed, sum.Total)
		}
	}
}

// nothingLeft waits until no Herald object and no Herald process remains,
// then checks that nobody answers ARP/NDP for the Layer 2 IPs and FRR has
// no route for the routed one.
func nothingLeft(t *testing.T, l *lab.Lab, v4, v6, routed string) {
	ctx := labtest.Context(t, 3*time.Minute)
	gone(t, 2*time.Minute, "namespace "+ns, func(ctx context.Context) error {
		_, err := l.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return err
	})
	testkit.For(t, time.Minute, "no Herald object in the cluster", func() error {
		var left []string
		for _, kind := range []string{"customresourcedefinitions", "clusterroles", "clusterrolebindings", "pods", "deployments", "daemonsets", "serviceaccounts", "secrets", "leases", "services"} {
			out, err := l.Kubectl(ctx, "get", kind, "--all-namespaces", "-o", "name", "-l", "app.kubernetes.io/name=herald")
			if err != nil {
				return err
			}
			left = append(left, strings.Fields(out)...)
		}
		out, err := l.Kubectl(ctx, "get", "customresourcedefinitions,clusterroles,clusterrolebindings", "-o", "name")
		if err != nil {
			return err
		}
		for _, name := range strings.Fields(out) {
			if strings.Contains(name, "herald") {
				left = append(left, name)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		return nil
	})
	testkit.For(t, time.Minute, "no Herald process on any node", func() error {
		for _, r := range realNodes(l) {
			for _, prog := range []string{"/herald-speaker", "/herald-controller"} {
				if pids := r.Processes(prog); len(pids) > 0 {
					return fmt.Errorf("%s still runs %s (pids %v)", r.Node.Name, prog, pids)
				}
			}
		}
		return nil
	})
	// Every speaker is gone, so any answer now would be a leftover.
	if mac, err := l.Client.Arping(ctx, v4); err == nil {
		t.Errorf("%s answers ARP for %s after uninstall", mac, v4)
	}
	if mac, err := l.Client.Ndisc6(ctx, v6); err == nil {
		t.Errorf("%s answers NDP for %s after uninstall", mac, v6)
	}
	a := addrOf(t, routed)
	testkit.For(t, 30*time.Second, "FRR has no route for "+routed, func() error {
		routes, err := l.FRR.FRR.RIBRoutes(ctx, netip.PrefixFrom(a, a.BitLen()))
		if errors.Is(err, routers.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Protocol == "bgp" {
				return fmt.Errorf("route %+v", r)
			}
		}
		return nil
	})
}

func realNodes(l *lab.Lab) []*lab.RealNode {
	var out []*lab.RealNode
	for _, n := range l.Nodes {
		out = append(out, l.RealNode(n.Name))
	}
	return out
}
