package l2

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// pool makes a pool that only Services naming it use, with one
// L2Advertisement, removed after the test.
func (e *env) pool(t *testing.T, name string, ranges []v1beta1.AddressRange, adv v1beta1.L2AdvertisementSpec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adv.PoolSelection = v1beta1.PoolSelection{IPPools: []string{name}}
	p := &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPPoolSpec{Addresses: ranges, AutoAssign: new(bool)}}
	a := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: adv}
	if err := e.createAll(ctx, p, a); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.c.Delete(ctx, a)
		_ = e.c.Delete(ctx, p)
	})
}

// An L2Advertisement's node selectors pick the nodes that may announce.
func TestNodeSelectorsAreObeyed(t *testing.T) {
	e := herald(t)
	only := e.Nodes[2].Name
	e.pool(t, "sel", []v1beta1.AddressRange{"198.51.100.100-198.51.100.109", "2001:db8:100::100-2001:db8:100::109"}, v1beta1.L2AdvertisementSpec{
		NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"kubernetes.io/hostname": only}}},
	})
	w := e.deploy(t, workloadSpec{name: "sel", replicas: 2, pool: "sel"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ip := range w.ips {
		owner, err := e.waitOwner(ctx, ip)
		if err != nil || owner != only {
			t.Fatalf("%s owned by %s (%v), want %s, the only node selected", ip, owner, err, only)
		}
		if ans, err := e.answerers(ctx, ip); err != nil || !slices.Equal(ans, []string{only}) {
			t.Fatalf("%s answered by %v (%v), want %s", ip, ans, err, only)
		}
		if _, _, err := e.get(ctx, ip); err != nil {
			t.Fatalf("GET %s: %v", ip, err)
		}
	}
	st, err := e.statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes[:2] {
		for _, k := range st[n.Name].L2Skipped {
			if slices.Contains(w.ips, k.IP) && (k.Reason != v1beta1.L2SkipNodeNotSelected || k.Owner != only) {
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
	e.pool(t, "ifc", []v1beta1.AddressRange{"198.51.100.110-198.51.100.119"}, v1beta1.L2AdvertisementSpec{Interfaces: []string{"cni0"}})
	var nodes []string
	for _, n := range e.Nodes {
		nodes = append(nodes, n.Name)
	}
	w := e.deploy(t, workloadSpec{name: "ifc", nodes: nodes, pool: "ifc", family: "IPv4"})
	ip := w.ips[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	owner, err := e.waitOwner(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st[owner].L2Announcements {
		if a.IP == ip && !slices.Equal(a.Interfaces, []string{"cni0"}) {
			t.Fatalf("%s announces %s on %v, want [cni0]", owner, ip, a.Interfaces)
		}
	}
	if ans, _ := e.answerers(ctx, ip); len(ans) != 0 {
		t.Fatalf("the LAN client got answers for %s from %v; it is announced on cni0 only", ip, ans)
	}
	pod := e.Pod(w.ns, w.name+"-"+owner)
	if pod == nil {
		t.Fatalf("no lab pod %s/%s-%s", w.ns, w.name, owner)
	}
	out, err := pod.NS.Run(ctx, "arping", "-c", "1", "-w", "2", "-i", "eth0", ip)
	if err != nil || !strings.Contains(out, " bytes from ") {
		t.Fatalf("arping %s from a pod behind %s: %v\n%s", ip, owner, err, out)
	}

	// Switch the advertisement to eth0: the LAN client is answered.
	var adv v1beta1.L2Advertisement
	if err := e.c.Get(ctx, clientKey("ifc"), &adv); err != nil {
		t.Fatal(err)
	}
	adv.Spec.Interfaces = []string{"eth0"}
	if err := e.c.Update(ctx, &adv); err != nil {
		t.Fatal(err)
	}
	err = poll(ctx, 100*time.Millisecond, func() error {
		ans, err := e.answerers(ctx, ip)
		if err == nil && !slices.Equal(ans, []string{owner}) {
			err = errorf("%s answered by %v, want %s", ip, ans, owner)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.get(ctx, ip); err != nil {
		t.Fatal(err)
	}
}
