package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// CreateServices creates n Services from pool, single-stack in family,
// with no pods, called s00000, s00001, ... in namespace with 16 clients in
// parallel; opts shape them further (objects.LocalTraffic, ...).
func (l *Lab) CreateServices(ctx context.Context, namespace, pool string, family corev1.IPFamily, n int, opts ...objects.ServiceOption) error {
	shape := append([]objects.ServiceOption{objects.FromPool(pool), objects.Families(corev1.IPFamilyPolicySingleStack, family)}, opts...)
	return inParallel(n, func(i int) error {
		svc := objects.Service(namespace, serviceName(i), shape...)
		if _, err := l.Kube.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("lab: create Service %s/%s: %w", namespace, svc.Name, err)
		}
		return nil
	})
}

// serviceName is the name of CreateServices' i-th Service.
func serviceName(i int) string { return fmt.Sprintf("s%05d", i) }

// CreateEndpointSlices creates, for each of the n Services that
// CreateServices names, one IPv6 EndpointSlice of perSlice ready endpoints
// spread over the lab's nodes, as the EndpointSlice controller would for
// pods. The pod addresses are made up (fd00:e2e::/32; nothing is sent to
// them) and the slices are managed by "herald-e2e", so no controller
// removes them. The Services may be created before or after.
func (l *Lab) CreateEndpointSlices(ctx context.Context, namespace string, n, perSlice int) error {
	ready, no, port, proto := true, false, int32(80), corev1.ProtocolTCP
	return inParallel(n, func(i int) error {
		name := serviceName(i)
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-e2e", Labels: map[string]string{
				discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "herald-e2e"}},
			AddressType: discoveryv1.AddressTypeIPv6,
			Ports:       []discoveryv1.EndpointPort{{Port: &port, Protocol: &proto}},
		}
		for j := range perSlice {
			node := l.Nodes[(i*perSlice+j)%len(l.Nodes)].Name
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{netip.MustParseAddr(fmt.Sprintf("fd00:e2e:%x::%x", i, j+1)).String()}, // canonical, or refused
				NodeName:   &node,
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready, Terminating: &no},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: namespace, Name: fmt.Sprintf("%s-%d", name, j)},
			})
		}
		if _, err := l.Kube.DiscoveryV1().EndpointSlices(namespace).Create(ctx, sl, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("lab: create EndpointSlice %s/%s: %w", namespace, sl.Name, err)
		}
		return nil
	})
}

// inParallel calls f for 0..n-1 from 16 goroutines and returns the first
// error (each goroutine stops at its own first one).
func inParallel(n int, f func(i int) error) error {
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Announced is one address of a Service as one node's AnnouncementSlice
// says it announces it.
type Announced struct {
	Node, Service string
	v1beta1.AnnouncedAddress
}

// SliceCounts counts the writes of AnnouncementSlices a watch delivered.
type SliceCounts struct{ Added, Modified, Deleted int }

// Total is every write.
func (c SliceCounts) Total() int { return c.Added + c.Modified + c.Deleted }

// Sub is the writes counted in c and not yet in o, an earlier count.
func (c SliceCounts) Sub(o SliceCounts) SliceCounts {
	return SliceCounts{c.Added - o.Added, c.Modified - o.Modified, c.Deleted - o.Deleted}
}

func (c SliceCounts) String() string {
	return fmt.Sprintf("%d writes (%d created, %d updated, %d deleted)", c.Total(), c.Added, c.Modified, c.Deleted)
}

// SliceWatch follows every AnnouncementSlice through one watch, as a user
// of `kubectl get announcementslices -w` would: what they say now, and how
// many writes there were. It reads the watch on its own goroutine.
type SliceWatch struct {
	w       watch.Interface
	mu      sync.Mutex
	slices  map[string]*v1beta1.AnnouncementSlice
	counts  SliceCounts
	events  []SliceEvent
	last    time.Time // when the latest event arrived
	err     error
	changed chan struct{}
}

// WatchSlices lists the AnnouncementSlices and follows them until ctx ends
// or Stop.
func (h *Herald) WatchSlices(ctx context.Context) (*SliceWatch, error) {
	scheme, err := k8s.Scheme()
	if err != nil {
		return nil, err
	}
	c, err := client.NewWithWatch(h.Env.Config, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("lab: watch client: %w", err)
	}
	var list v1beta1.AnnouncementSliceList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("lab: list AnnouncementSlices: %w", err)
	}
	w, err := c.Watch(ctx, &v1beta1.AnnouncementSliceList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	if err != nil {
		return nil, fmt.Errorf("lab: watch AnnouncementSlices: %w", err)
	}
	sw := &SliceWatch{w: w, slices: map[string]*v1beta1.AnnouncementSlice{}, changed: make(chan struct{}, 1)}
	for i := range list.Items {
		sw.slices[list.Items[i].Name] = &list.Items[i]
	}
	go sw.run()
	return sw, nil
}

func (sw *SliceWatch) run() {
	for ev := range sw.w.ResultChan() {
		now := time.Now()
		sw.mu.Lock()
		s, ok := ev.Object.(*v1beta1.AnnouncementSlice)
		if ok {
			sw.events = append(sw.events, SliceEvent{At: now, Type: ev.Type, Name: s.Name})
		}
		switch {
		case ev.Type == watch.Error:
			sw.err = fmt.Errorf("lab: AnnouncementSlice watch: %v", ev.Object)
		case !ok:
		case ev.Type == watch.Added:
			sw.counts.Added++
			sw.slices[s.Name] = s
		case ev.Type == watch.Modified:
			sw.counts.Modified++
			sw.slices[s.Name] = s
		case ev.Type == watch.Deleted:
			sw.counts.Deleted++
			delete(sw.slices, s.Name)
		}
		sw.last = now
		sw.mu.Unlock()
		select {
		case sw.changed <- struct{}{}:
		default:
		}
	}
	sw.mu.Lock()
	if sw.err == nil {
		sw.err = fmt.Errorf("lab: the AnnouncementSlice watch ended")
	}
	sw.mu.Unlock()
}

// SliceEvent is a write of an AnnouncementSlice as the watch delivered it.
type SliceEvent struct {
	At   time.Time
	Type watch.EventType
	Name string
}

// Timeline lists the writes delivered after t0 as "+1.234s MODIFIED node2.3".
func (sw *SliceWatch) Timeline(t0 time.Time) []string {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	var out []string
	for _, e := range sw.events {
		if e.At.After(t0) {
			out = append(out, fmt.Sprintf("+%v %s %s", e.At.Sub(t0).Round(time.Millisecond), e.Type, e.Name))
		}
	}
	return out
}

// Stop ends the watch.
func (sw *SliceWatch) Stop() { sw.w.Stop() }

// Counts is how many writes the watch delivered so far.
func (sw *SliceWatch) Counts() SliceCounts {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.counts
}

// Addresses lists what the slices say now, with namespace ns only ("":
// every namespace), sorted by Service, address and node.
func (sw *SliceWatch) Addresses(ns string) []Announced {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.addresses(ns)
}

func (sw *SliceWatch) addresses(ns string) []Announced {
	var out []Announced
	for _, s := range sw.slices {
		for _, svc := range s.Services {
			if ns != "" && !strings.HasPrefix(svc.Service, ns+"/") {
				continue
			}
			for _, a := range svc.Addresses {
				out = append(out, Announced{Node: s.Node, Service: svc.Service, AnnouncedAddress: a})
			}
		}
	}
	slices.SortFunc(out, func(a, b Announced) int {
		return strings.Compare(a.Service+" "+a.IP+" "+string(a.Protocol)+" "+a.Node, b.Service+" "+b.IP+" "+string(b.Protocol)+" "+b.Node)
	})
	return out
}

// SliceNames lists, sorted, the names of node's slices.
func (sw *SliceWatch) SliceNames(node string) []string {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	var out []string
	for name, s := range sw.slices {
		if s.Node == node {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Wait waits until cond, given what the slices of namespace ns say, returns
// nil, and returns when the event that made it so arrived. It fails when
// ctx ends, with cond's last error.
func (sw *SliceWatch) Wait(ctx context.Context, ns string, cond func([]Announced) error) (time.Time, error) {
	for {
		sw.mu.Lock()
		err, at, as := sw.err, sw.last, sw.addresses(ns)
		sw.mu.Unlock()
		if err == nil {
			err = cond(as)
		}
		if err == nil {
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-sw.changed:
		case <-time.After(time.Second): // a watch error is seen too
		}
	}
}
