package l2

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/poll"
)

// TestBadEditSurvivesRestarts: the older of two pools is edited into the
// younger one's addresses, then the controller and the speaker that
// announces the younger pool's IPv4 address restart. The edited pool is at
// fault before and after the restarts (it keeps its last valid addresses,
// recorded in its status), so no Service's address changes, every address
// still answers from one node, and the bad edit stays reported. Remembered
// only in memory, the verdict would flip on restart: the older pool would
// win, the controller would move the younger pool's Services and the
// restarted speaker would not answer for their addresses.
func TestBadEditSurvivesRestarts(t *testing.T) {
	e := herald(t)
	labtest.L2Pool(t, e.Herald, "dur-old", []v1beta1.AddressRange{"198.51.100.150-198.51.100.154", "2001:db8:100::150-2001:db8:100::154"}, v1beta1.L2AdvertisementSpec{})
	labtest.L2Pool(t, e.Herald, "dur-young", []v1beta1.AddressRange{"198.51.100.155-198.51.100.159", "2001:db8:100::155-2001:db8:100::159"}, v1beta1.L2AdvertisementSpec{})
	old := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "dur-old", Replicas: 2, Pool: "dur-old"})
	young := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "dur-young", Replicas: 2, Pool: "dur-young"})
	ips := append(slices.Clone(old.IPs), young.IPs...)
	ctx := labtest.Context(t, 4*time.Minute)
	for _, ip := range ips {
		if _, err := e.get(ctx, ip); err != nil {
			t.Fatalf("%s does not answer before the edit: %v", ip, err)
		}
	}
	w := e.watchIngress(t, old.Namespace, young.Namespace)

	var oldPool v1beta1.IPPool
	if err := e.API.Get(ctx, client.ObjectKey{Name: "dur-old"}, &oldPool); err != nil {
		t.Fatal(err)
	}
	lastValid := slices.Clone(oldPool.Spec.Addresses)
	oldPool.Spec.Addresses = []v1beta1.AddressRange{"198.51.100.155-198.51.100.157", "2001:db8:100::155-2001:db8:100::157"}
	if err := e.API.Update(ctx, &oldPool); err != nil {
		t.Fatal(err)
	}
	e.waitKeptLastValid(ctx, t, "dur-old", lastValid)

	youngV4 := young.IPs[0]
	owner, err := e.WaitOwner(ctx, youngV4)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restarting the controller and %s's speaker (owner of %s)", owner, youngV4)
	if err := e.Component("controller").Restart(); err != nil {
		t.Fatal(err)
	}
	if err := e.Speaker(owner).Restart(); err != nil {
		t.Fatal(err)
	}

	// Signs that both restarts were processed: the restarted controller
	// leads and assigns a new Service from the younger pool; the restarted
	// speaker is a member again and owns its address again (the address
	// returns to the node that ranks first for it).
	third := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "dur-new", Replicas: 1, Pool: "dur-young"})
	for _, ip := range third.IPs {
		if !strings.HasPrefix(ip, "198.51.100.15") && !strings.HasPrefix(ip, "2001:db8:100::15") {
			t.Errorf("new Service got %s, outside the younger pool", ip)
		}
	}
	if err := e.WaitMembers(ctx, len(e.Nodes)); err != nil {
		t.Fatal(err)
	}
	if now, err := e.WaitOwner(ctx, youngV4); err != nil || now != owner {
		t.Fatalf("%s owned by %s after the restart (%v), want %s again", youngV4, now, err, owner)
	}
	e.waitKeptLastValid(ctx, t, "dur-old", lastValid)

	for _, ip := range ips {
		if _, err := e.get(ctx, ip); err != nil {
			t.Errorf("%s does not answer after the restarts: %v", ip, err)
		}
		if ans, err := e.Answerers(ctx, ip); err != nil || len(ans) != 1 {
			t.Errorf("%s answered by %v (%v) after the restarts, want one node", ip, ans, err)
		}
	}
	for _, v := range w.stop() {
		t.Error(v)
	}
}

// waitKeptLastValid waits until the pool's status says its current spec is
// refused (Ready false at its generation) and its last valid addresses are
// the ones in use.
func (e *env) waitKeptLastValid(ctx context.Context, t *testing.T, name string, addrs []v1beta1.AddressRange) {
	t.Helper()
	err := poll.Until(ctx, 100*time.Millisecond, func() error {
		var p v1beta1.IPPool
		if err := e.API.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
			return err
		}
		var ready *metav1.Condition
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == v1beta1.ConditionReady {
				ready = &p.Status.Conditions[i]
			}
		}
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != v1beta1.ReasonConflict || ready.ObservedGeneration != p.Generation ||
			p.Status.LastApplied == nil || !slices.Equal(p.Status.LastApplied.Addresses, addrs) {
			return fmt.Errorf("pool %s: Ready %+v, lastApplied %+v", name, ready, p.Status.LastApplied)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// serviceWatch records every Service of some namespaces whose ingress
// changes once it has one.
type serviceWatch struct {
	cancel     context.CancelFunc
	done       chan struct{}
	mu         sync.Mutex
	violations []string
}

func (e *env) watchIngress(t *testing.T, namespaces ...string) *serviceWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sw := &serviceWatch{cancel: cancel, done: make(chan struct{})}
	wi, err := e.Kube.CoreV1().Services("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer close(sw.done)
		defer wi.Stop()
		first := map[types.UID][]string{}
		for ev := range wi.ResultChan() {
			svc, ok := ev.Object.(*corev1.Service)
			if !ok || ev.Type == watch.Deleted || !slices.Contains(namespaces, svc.Namespace) {
				continue
			}
			var ips []string
			for _, ip := range k8s.IngressIPs(svc.Status.LoadBalancer) {
				ips = append(ips, ip.String())
			}
			if was, seen := first[svc.UID]; !seen {
				first[svc.UID] = ips
			} else if !slices.Equal(was, ips) {
				sw.mu.Lock()
				sw.violations = append(sw.violations, fmt.Sprintf("%s/%s: ingress changed from %v to %v", svc.Namespace, svc.Name, was, ips))
				sw.mu.Unlock()
			}
		}
		if ctx.Err() == nil {
			sw.mu.Lock()
			sw.violations = append(sw.violations, "the Service watch ended early")
			sw.mu.Unlock()
		}
	}()
	t.Cleanup(func() { sw.stop() })
	return sw
}

// stop ends the watch and returns what it saw go wrong.
func (sw *serviceWatch) stop() []string {
	sw.cancel()
	<-sw.done
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return slices.Clone(sw.violations)
}
