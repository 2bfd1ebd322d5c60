package l2

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/speaker/election"
)

// labelService replaces a lab Service's labels.
func (e *env) labelService(ctx context.Context, w *lab.Workload, labels map[string]string) error {
	return lab.Update(ctx, e.API, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name}}, func(s *corev1.Service) { s.Labels = labels })
}

// nobodyAnswers checks that no node answers ARP or NDP for any of ips.
func (e *env) nobodyAnswers(ctx context.Context, ips []string) error {
	for _, ip := range ips {
		if ans, err := e.Answerers(ctx, ip); err != nil {
			return fmt.Errorf("%s: %w", ip, err)
		} else if len(ans) > 0 {
			return fmt.Errorf("%s answered by %v, want nobody", ip, ans)
		}
		if o, err := e.Owners(ctx, ip); err != nil {
			return fmt.Errorf("%s: %w", ip, err)
		} else if len(o) > 0 {
			return fmt.Errorf("%s announced by %v, want nobody", ip, o)
		}
	}
	return nil
}

// An L2Advertisement with serviceSelectors announces the Services whose
// labels match, and only those: two Services in one pool, one labelled;
// relabelling one moves nothing of the other.
func TestServiceSelectorsChooseTheServicesAnnounced(t *testing.T) {
	e := herald(t)
	ctx := labtest.Context(t, 3*time.Minute)
	labtest.L2Pool(t, e.Herald, "svcsel", []v1beta1.AddressRange{"198.51.100.200-198.51.100.209", "2001:db8:100::200-2001:db8:100::209"}, v1beta1.L2AdvertisementSpec{
		ServiceSelectors: []v1beta1.LabelSelector{{MatchLabels: map[string]v1beta1.LabelValue{"exposure": "lan"}}},
	})
	a := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "svcsel-a", Replicas: 1, Pool: "svcsel"})
	b := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "svcsel-b", Replicas: 1, Pool: "svcsel"})
	if err := e.labelService(ctx, b, map[string]string{"exposure": "lan"}); err != nil {
		t.Fatal(err)
	}
	bOwners := map[string]string{}
	for _, ip := range b.IPs {
		o, err := e.WaitOwner(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		bOwners[ip] = o
		if _, err := e.get(ctx, ip); err != nil {
			t.Fatal(err)
		}
	}
	// b's announcement is the sign the speakers have seen both Services.
	if err := e.nobodyAnswers(ctx, a.IPs); err != nil {
		t.Fatalf("the unlabelled Service: %v", err)
	}

	capt, err := e.Client.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	relabelled := time.Now()
	if err := e.labelService(ctx, a, map[string]string{"exposure": "lan", "team": "x"}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range a.IPs {
		if _, err := e.WaitOwner(ctx, ip); err != nil {
			t.Fatal(err)
		}
		if _, err := e.get(ctx, ip); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.OneAnswerEach(ctx, append(slices.Clone(a.IPs), b.IPs...)); err != nil {
		t.Fatal(err)
	}
	msgs, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	holders := e.Holders(msgs, relabelled)
	for _, ip := range b.IPs {
		if h := holders[ip]; len(h) > 0 && !slices.Equal(h, []string{bOwners[ip]}) {
			t.Errorf("%s, the other Service's, was answered for by %v after the relabel, owner %s", ip, h, bOwners[ip])
		}
	}

	// Unlabelled again: a is no longer announced, b still is.
	if err := e.labelService(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, "the unlabelled Service is no longer announced", func() error {
		return e.nobodyAnswers(ctx, a.IPs)
	})
	if err := e.Event(ctx, a.Namespace, a.Name, "StoppedAnnouncingL2", "no L2Advertisement announces its Service any more"); err != nil {
		t.Error(err)
	}
	if err := e.OneAnswerEach(ctx, b.IPs); err != nil {
		t.Error(err)
	}
}

// preferredNodeSelectors: the first preferred live node owns the address
// although another ranks first by hash; when it stops, the second place
// takes over, not the hash's first; when it returns, the address moves
// back once.
func TestPreferredNodesOwnTheAddress(t *testing.T) {
	e := herald(t)
	ctx := labtest.Context(t, 3*time.Minute)
	nodes := e.NodeNames()
	// An address whose hash ranking is [hashFirst, second, last]: prefer
	// last, then second.
	var ip netip.Addr
	var rank []string
	for i := 210; i <= 219; i++ {
		ip = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if rank = election.Rank(ip, nodes); rank[0] == nodes[0] {
			break
		}
	}
	hashFirst, second, last := rank[0], rank[1], rank[2]
	host := func(n string) v1beta1.LabelSelector {
		return v1beta1.LabelSelector{MatchLabels: map[string]v1beta1.LabelValue{"kubernetes.io/hostname": v1beta1.LabelValue(n)}}
	}
	labtest.L2Pool(t, e.Herald, "pref", []v1beta1.AddressRange{"198.51.100.210-198.51.100.219"}, v1beta1.L2AdvertisementSpec{
		PreferredNodeSelectors: []v1beta1.LabelSelector{host(last), host(second)},
	})
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "pref", Replicas: 1, Pool: "pref", Family: "IPv4",
		Annotations: map[string]string{v1beta1.AnnotationLoadBalancerIPs: ip.String()}})
	if w.IPs[0] != ip.String() {
		t.Fatalf("got %v, asked for %s", w.IPs, ip)
	}
	owner := func(want string) func() error {
		return func() error {
			o, err := e.Owners(ctx, ip.String())
			if err == nil && !slices.Equal(o, []string{want}) {
				err = fmt.Errorf("%s announced by %v, want %s", ip, o, want)
			}
			if err == nil {
				var ans []string
				if ans, err = e.Answerers(ctx, ip.String()); err == nil && !slices.Equal(ans, []string{want}) {
					err = fmt.Errorf("%s answered by %v, want %s", ip, ans, want)
				}
			}
			return err
		}
	}
	testkit.For(t, 30*time.Second, fmt.Sprintf("the first preferred node %s owns %s (hash order %v)", last, ip, rank), owner(last))
	if _, err := e.get(ctx, ip.String()); err != nil {
		t.Fatal(err)
	}

	if err := e.Speaker(last).Terminate(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, fmt.Sprintf("the second preferred node %s takes over, not %s", second, hashFirst), owner(second))
	if err := e.Speaker(second).Terminate(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// No preferred node live: the hash decides among the rest. Both
	// stopped gracefully (their Leases are gone), so the last speaker sees
	// all it expects and takes over at once.
	testkit.For(t, 30*time.Second, fmt.Sprintf("no preferred node: %s by hash", hashFirst), owner(hashFirst))

	capt, err := e.Client.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if err := e.ReviveSpeakers(); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, time.Minute, fmt.Sprintf("back to %s", last), owner(last))
	msgs, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if h := e.Holders(msgs, back)[ip.String()]; len(h) == 0 || h[len(h)-1] != last || slices.Contains(h[:len(h)-1], last) {
		t.Errorf("%s answered for by %v in turn after the preferred nodes returned; want it to end on %s, reached once", ip, h, last)
	}
}

// withdrawWithoutEndpoints: a Service with externalTrafficPolicy Cluster
// whose only pod turns unready is answered by nobody, with the reason in
// every node's status and an Event; it is answered again once the pod is
// ready.
func TestWithdrawWithoutEndpointsStopsLayer2Answers(t *testing.T) {
	e := herald(t)
	ctx := labtest.Context(t, 3*time.Minute)
	labtest.L2Pool(t, e.Herald, "wwe", []v1beta1.AddressRange{"198.51.100.220-198.51.100.229", "2001:db8:100::220-2001:db8:100::229"}, v1beta1.L2AdvertisementSpec{WithdrawWithoutEndpoints: true})
	pinned := e.Nodes[0].Name
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "wwe", Nodes: []string{pinned}, Pool: "wwe"})
	for _, ip := range w.IPs {
		if _, err := e.WaitOwner(ctx, ip); err != nil {
			t.Fatal(err)
		}
		if _, err := e.get(ctx, ip); err != nil {
			t.Fatal(err)
		}
	}
	pod := w.Name + "-" + pinned
	t.Cleanup(func() { _ = e.SetPodReady(context.Background(), w.Namespace, pod, true) })
	if err := e.SetPodReady(ctx, w.Namespace, pod, false); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, "nobody answers without a ready endpoint", func() error {
		if err := e.nobodyAnswers(ctx, w.IPs); err != nil {
			return err
		}
		st, err := e.SpeakerStatuses(ctx)
		if err != nil {
			return err
		}
		for _, n := range e.Nodes {
			for _, ip := range w.IPs {
				if !slices.ContainsFunc(st[n.Name].L2Skipped, func(k v1beta1.L2Skip) bool { return k.IP == ip && k.Reason == v1beta1.L2SkipNoEndpoint }) {
					return fmt.Errorf("%s does not skip %s as NoEndpoint: %+v", n.Name, ip, st[n.Name].L2Skipped)
				}
			}
		}
		return nil
	})
	if err := e.Event(ctx, w.Namespace, w.Name, "WithdrawnWithoutEndpoints", "withdrawn by L2Advertisement/wwe"); err != nil {
		t.Error(err)
	}
	if err := e.SetPodReady(ctx, w.Namespace, pod, true); err != nil {
		t.Fatal(err)
	}
	for _, ip := range w.IPs {
		if _, err := e.WaitOwner(ctx, ip); err != nil {
			t.Fatal(err)
		}
		if _, err := e.get(ctx, ip); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.OneAnswerEach(ctx, w.IPs); err != nil {
		t.Error(err)
	}
	if err := e.Event(ctx, w.Namespace, w.Name, "EndpointReady", "announced again"); err != nil {
		t.Error(err)
	}
}
