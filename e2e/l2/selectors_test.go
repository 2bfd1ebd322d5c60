package l2

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/poll"
)

// An L2Advertisement's node selectors pick the nodes that may announce.
func TestNodeSelectorsAreObeyed(t *testing.T) {
	e := herald(t)
	only := e.Nodes[2].Name
	labtest.L2Pool(t, e.Herald, "sel", []v1beta1.AddressRange{"198.51.100.100-198.51.100.109", "2001:db8:100::100-2001:db8:100::109"}, v1beta1.L2AdvertisementSpec{
		NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"kubernetes.io/hostname": only}}},
	})
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "sel", Replicas: 2, Pool: "sel"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ip := range w.IPs {
		owner, err := e.WaitOwner(ctx, ip)
		if err != nil || owner != only {
			t.Fatalf("%s owned by %s (%v), want %s, the only node selected", ip, owner, err, only)
		}
		if ans, err := e.Answerers(ctx, ip); err != nil || !slices.Equal(ans, []string{only}) {
			t.Fatalf("%s answered by %v (%v), want %s", ip, ans, err, only)
		}
		if _, err := e.get(ctx, ip); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.SpeakerStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes[:2] {
		for _, k := range st[n.Name].L2Skipped {
			if slices.Contains(w.IPs, k.IP) && (k.Reason != v1beta1.L2SkipNodeNotSelected || k.Owner != only) {
				t.Errorf("%s skips %s as %s (owner %q), want NodeNotSelected, owner %s", n.Name, k.IP, k.Reason, k.Owner, only)
			}
		}
	}
}

// An L2Advertisement's interfaces are where the owner answers: on cni0 the
// LAN client gets no answer but a pod behind the owner does; on eth0 the
// client does.
func TestInterfaceSelectorsAreObeyed(t *testing.T) {
	e := herald(t)
	labtest.L2Pool(t, e.Herald, "ifc", []v1beta1.AddressRange{"198.51.100.110-198.51.100.119"}, v1beta1.L2AdvertisementSpec{Interfaces: []string{"cni0"}})
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "ifc", Nodes: e.NodeNames(), Pool: "ifc", Family: "IPv4"})
	ip := w.IPs[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	owner, err := e.WaitOwner(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.SpeakerStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st[owner].L2Announcements {
		if a.IP == ip && !slices.Equal(a.Interfaces, []string{"cni0"}) {
			t.Fatalf("%s announces %s on %v, want [cni0]", owner, ip, a.Interfaces)
		}
	}
	if ans, _ := e.Answerers(ctx, ip); len(ans) != 0 {
		t.Fatalf("the LAN client got answers for %s from %v; it is announced on cni0 only", ip, ans)
	}
	pod := e.Pod(w.Namespace, w.Name+"-"+owner)
	if pod == nil {
		t.Fatalf("no lab pod %s/%s-%s", w.Namespace, w.Name, owner)
	}
	out, err := pod.NS.Run(ctx, "arping", "-c", "1", "-w", "2", "-i", "eth0", ip)
	if err != nil || !strings.Contains(out, " bytes from ") {
		t.Fatalf("arping %s from a pod behind %s: %v\n%s", ip, owner, err, out)
	}

	// Switch the advertisement to eth0: the LAN client is answered.
	adv := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "ifc"}}
	if err := lab.Update(ctx, e.API, adv, func(a *v1beta1.L2Advertisement) { a.Spec.Interfaces = []string{"eth0"} }); err != nil {
		t.Fatal(err)
	}
	err = poll.Until(ctx, 100*time.Millisecond, func() error {
		ans, err := e.Answerers(ctx, ip)
		if err == nil && !slices.Equal(ans, []string{owner}) {
			err = fmt.Errorf("%s answered by %v, want %s", ip, ans, owner)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.get(ctx, ip); err != nil {
		t.Fatal(err)
	}
}
