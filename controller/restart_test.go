package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testkit/objects"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// ingressWatch watches every Service and records each ingress it ever sees.
// It reports a Service whose addresses change once assigned, and any two
// live Services holding one address (no test Service has a sharing key).
type ingressWatch struct {
	mu         sync.Mutex
	first      map[types.UID][]string // first non-empty ingress per Service
	live       map[types.UID]svcIPs
	events     int
	violations []string
}

type svcIPs struct {
	key string
	ips []string
}

func watchIngress(t *testing.T, cs kubernetes.Interface) (w *ingressWatch, stop func()) {
	t.Helper()
	w = &ingressWatch{first: map[types.UID][]string{}, live: map[types.UID]svcIPs{}}
	stop = watchServices(t, cs, w.observe, func(err error) { w.violate("%v", err) })
	return w, stop
}

// watchServices lists and then watches every Service, passing each event to
// observe (the list as Added) until stop; watch failures go to fail.
func watchServices(t *testing.T, cs kubernetes.Interface, observe func(watch.EventType, *corev1.Service), fail func(error)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	list, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		observe(watch.Added, &list.Items[i])
	}
	rv := list.ResourceVersion
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			wi, err := cs.CoreV1().Services("").Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				if ctx.Err() == nil {
					fail(fmt.Errorf("watch: %w", err))
				}
				return
			}
			for ev := range wi.ResultChan() {
				if ev.Type == watch.Error {
					if ctx.Err() != nil {
						break
					}
					fail(fmt.Errorf("watch error: %w", apierrors.FromObject(ev.Object)))
					continue
				}
				svc, ok := ev.Object.(*corev1.Service)
				if !ok {
					continue
				}
				rv = svc.ResourceVersion
				if ev.Type != watch.Bookmark {
					observe(ev.Type, svc)
				}
			}
			wi.Stop()
		}
	}()
	stopped := false
	return func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
}

func (w *ingressWatch) violate(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations = append(w.violations, fmt.Sprintf(format, args...))
}

func (w *ingressWatch) observe(typ watch.EventType, svc *corev1.Service) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events++
	key := svc.Namespace + "/" + svc.Name
	if typ == watch.Deleted {
		delete(w.live, svc.UID)
		return
	}
	ips := ingressIPs(svc)
	if first, ok := w.first[svc.UID]; ok && !slices.Equal(first, ips) {
		w.violations = append(w.violations, fmt.Sprintf("%s: ingress changed from %v to %v", key, first, ips))
	} else if !ok && len(ips) > 0 {
		w.first[svc.UID] = ips
	}
	for uid, other := range w.live {
		if uid == svc.UID {
			continue
		}
		for _, ip := range ips {
			if slices.Contains(other.ips, ip) {
				w.violations = append(w.violations, fmt.Sprintf("%s and %s both hold %s", key, other.key, ip))
			}
		}
	}
	w.live[svc.UID] = svcIPs{key: key, ips: ips}
}

// TestRestarts restarts the controller ten times while Services come and go,
// watching every Service throughout: no Service's addresses may change once
// assigned, and no address may be held by two Services.
func TestRestarts(t *testing.T) {
	h := newHarness(t)
	h.create(t, objects.Pool("chaos", true, "198.51.100.0/24", "203.0.113.0/24", "2001:db8:2::/120"))
	h.createNamespace(t, "chaos")
	w, stopWatch := watchIngress(t, h.cs)
	defer stopWatch()

	// Churn: a Service every 40 ms, of varied families; every third step
	// deletes a random one.
	ctx, stopChurn := context.WithCancel(context.Background())
	churnDone := make(chan struct{})
	var created, deleted int
	go func() {
		defer close(churnDone)
		rng := rand.New(rand.NewPCG(1, 2))
		shapes := []objects.ServiceOption{
			objects.Families(corev1.IPFamilyPolicySingleStack, corev1.IPv4Protocol),
			objects.Families(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol),
			objects.Families(corev1.IPFamilyPolicyPreferDualStack),
			objects.Families(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol),
		}
		var names []string
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for step := 0; ; step++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if step%3 == 2 && len(names) > 0 {
				i := rng.IntN(len(names))
				if err := h.cs.CoreV1().Services("chaos").Delete(ctx, names[i], metav1.DeleteOptions{}); err == nil {
					deleted++
				}
				names = slices.Delete(names, i, i+1)
				continue
			}
			name := fmt.Sprintf("s-%d", step)
			svc := objects.Service("chaos", name, shapes[step%len(shapes)])
			if _, err := h.cs.CoreV1().Services("chaos").Create(ctx, svc, metav1.CreateOptions{}); err == nil {
				created++
				names = append(names, name)
			}
		}
	}()

	o := h.controllerOptions()
	o.LeaderElect = true
	for i := range 10 {
		stop := h.runController(t, o)
		// Lifetimes from 0.3 s (stopped during start-up or import) to 2.1 s.
		time.Sleep(time.Duration(300+200*i) * time.Millisecond)
		stop()
	}
	stopChurn()
	<-churnDone

	w.mu.Lock()
	assignedDuringRestarts := len(w.first)
	w.mu.Unlock()
	if assignedDuringRestarts < created/4 {
		t.Errorf("only %d of %d Services were assigned while the controller restarted", assignedDuringRestarts, created)
	}

	// A last incarnation assigns whatever is still waiting.
	h.runController(t, o)
	eventually(t, 60*time.Second, "every Service assigned", func() (bool, string) {
		list, err := h.cs.CoreV1().Services("chaos").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var waiting []string
		for _, svc := range list.Items {
			if len(svc.Status.LoadBalancer.Ingress) == 0 {
				waiting = append(waiting, svc.Name)
			}
		}
		return len(waiting) == 0, fmt.Sprintf("%d of %d waiting: %s", len(waiting), len(list.Items), strings.Join(waiting, " "))
	})
	stopWatch()
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("created %d, deleted %d Services; %d watch events; %d Services assigned during the restarts, %d in all", created, deleted, w.events, assignedDuringRestarts, len(w.first))
	if created < 100 || deleted < 30 {
		t.Errorf("too little churn to mean anything: %d created, %d deleted", created, deleted)
	}
	for _, v := range w.violations {
		t.Error(v)
	}
}
