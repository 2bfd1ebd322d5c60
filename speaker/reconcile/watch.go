package reconcile

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/speaker/presence"
)

// nodeInfo is what the speaker uses of a Node.
type nodeInfo struct {
	labels map[string]string
	ips    []netip.Addr // InternalIPs, in the Node's order
	// drain: the annotation herald.dev/drain is "true";
	// networkUnavailable: the condition NetworkUnavailable is True.
	drain, networkUnavailable bool
}

// watcher turns informer events into pending work for the reconcile loop:
// keys of Services to read again, Services whose ready endpoints moved,
// Node changes and "the configuration changed". Handlers only record; the
// loop does the work, batched.
type watcher struct {
	class      string
	secretName string

	mu         sync.Mutex
	services   map[string]bool         // Service keys to read again
	endpoints  map[string]bool         // Service keys whose ready nodes changed
	slices     map[string][]namedReady // Service key -> its slices' ready endpoints
	nodes      map[string]nodeInfo
	nodesDirty bool
	config     bool
	key        []byte // the memberlist key, nil while absent
	keySeen    bool   // the Secret was seen (or seen deleted) since the last take
	leases     []leaseSeen
	signal     chan struct{}
}

// leaseSeen is a speaker Lease as the watch delivered it, and when.
type leaseSeen struct {
	at      time.Time
	node    string
	renew   time.Time
	deleted bool
}

func newWatcher(class, secretName string) *watcher {
	return &watcher{
		class: class, secretName: secretName,
		services: map[string]bool{}, endpoints: map[string]bool{},
		slices: map[string][]namedReady{}, nodes: map[string]nodeInfo{},
		signal: make(chan struct{}, 1),
	}
}

func (w *watcher) wake() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// configKinds are the objects config.Build reads.
func configKinds() []client.Object {
	return []client.Object{&v1beta1.IPPool{}, &v1beta1.L2Advertisement{}, &v1beta1.BGPAdvertisement{}, &v1beta1.BGPPeer{}, &v1beta1.BFDProfile{}}
}

// register adds the event handlers to the cache's informers and returns a
// function that reports whether they have all seen their initial lists.
func (w *watcher) register(ctx context.Context, c cache.Cache) (func() bool, error) {
	var regs []toolscache.ResourceEventHandlerRegistration
	add := func(obj client.Object, h toolscache.ResourceEventHandler) error {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("informer for %T: %w", obj, err)
		}
		r, err := inf.AddEventHandler(h)
		if err != nil {
			return fmt.Errorf("event handler for %T: %w", obj, err)
		}
		regs = append(regs, r)
		return nil
	}
	handlers := []struct {
		obj client.Object
		h   toolscache.ResourceEventHandler
	}{
		{&corev1.Service{}, funcs(w.onService)},
		{&discoveryv1.EndpointSlice{}, funcs(w.onSlice)},
		{&corev1.Node{}, funcs(w.onNode)},
		{&corev1.Secret{}, funcs(w.onSecret)},
		{&coordinationv1.Lease{}, funcs(w.onLease)},
	}
	for _, obj := range configKinds() {
		handlers = append(handlers, struct {
			obj client.Object
			h   toolscache.ResourceEventHandler
		}{obj, funcs(w.onConfig)})
	}
	for _, h := range handlers {
		if err := add(h.obj, h.h); err != nil {
			return nil, err
		}
	}
	return func() bool {
		for _, r := range regs {
			if !r.HasSynced() {
				return false
			}
		}
		return true
	}, nil
}

// funcs adapts one handler taking (old, new) objects, either nil, to the
// informer's three callbacks; deletions may arrive as tombstones.
func funcs(f func(old, cur any)) toolscache.ResourceEventHandlerFuncs {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { f(nil, obj) },
		UpdateFunc: func(old, cur any) { f(old, cur) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			f(obj, nil)
		},
	}
}

func (w *watcher) relevant(obj any) bool {
	svc, ok := obj.(*corev1.Service)
	return ok && k8s.IsLoadBalancer(svc) && k8s.HasClass(svc, w.class)
}

func (w *watcher) onService(old, cur any) {
	if !w.relevant(old) && !w.relevant(cur) {
		return
	}
	obj := either(cur, old)
	svc := obj.(*corev1.Service)
	w.mu.Lock()
	w.services[k8s.ServiceKey(svc)] = true
	w.mu.Unlock()
	w.wake()
}

// sliceReady is what a slice says about ready endpoints: the nodes with
// one (sorted, each once), and whether it has any (with a node name or
// not). Slices, not maps: the watcher keeps one per EndpointSlice of every
// Service in the cluster.
type sliceReady struct {
	nodes []string
	any   bool
}

func (a sliceReady) equal(b sliceReady) bool { return a.any == b.any && slices.Equal(a.nodes, b.nodes) }

// namedReady is one slice's sliceReady under the slice's name.
type namedReady struct {
	slice string
	ready sliceReady
}

// endpointReady: an endpoint whose readiness is unknown counts as ready,
// as the API says.
func endpointReady(ep discoveryv1.Endpoint) bool {
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

// readyIn is what the slice says about ready endpoints.
func readyIn(s *discoveryv1.EndpointSlice) sliceReady {
	var out sliceReady
	for _, ep := range s.Endpoints {
		if !endpointReady(ep) {
			continue
		}
		out.any = true
		if ep.NodeName != nil {
			out.nodes = append(out.nodes, *ep.NodeName)
		}
	}
	slices.Sort(out.nodes)
	out.nodes = slices.Clip(slices.Compact(out.nodes))
	return out
}

func (w *watcher) onSlice(old, cur any) {
	obj := either(cur, old)
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	svcName := s.Labels[discoveryv1.LabelServiceName]
	if svcName == "" {
		return
	}
	key := s.Namespace + "/" + svcName
	var ready sliceReady
	if cur != nil {
		ready = readyIn(s)
	}
	w.mu.Lock()
	bySlice := w.slices[key]
	i := slices.IndexFunc(bySlice, func(n namedReady) bool { return n.slice == s.Name })
	var prev sliceReady
	if i >= 0 {
		prev = bySlice[i].ready
	}
	changed := !prev.equal(ready) || (i >= 0 && cur == nil)
	switch {
	case cur == nil && i >= 0:
		bySlice = slices.Delete(bySlice, i, i+1)
		if len(bySlice) == 0 {
			delete(w.slices, key)
		} else {
			w.slices[key] = bySlice
		}
	case cur != nil && i >= 0:
		bySlice[i].ready = ready
	case cur != nil:
		w.slices[key] = append(bySlice, namedReady{slice: s.Name, ready: ready})
	}
	if changed {
		w.endpoints[key] = true
	}
	w.mu.Unlock()
	if changed {
		w.wake()
	}
}

// readyEndpoints is the union of a Service's slices' ready nodes (sorted,
// each once), and whether any of its slices has a ready endpoint.
func (w *watcher) readyEndpoints(key string) (nodes []string, anyReady bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	bySlice := w.slices[key]
	if len(bySlice) == 1 { // the common case: shared, it is never changed in place
		return bySlice[0].ready.nodes, bySlice[0].ready.any
	}
	for _, r := range bySlice {
		nodes = append(nodes, r.ready.nodes...)
		anyReady = anyReady || r.ready.any
	}
	slices.Sort(nodes)
	return slices.Clip(slices.Compact(nodes)), anyReady
}

func (w *watcher) onNode(old, cur any) {
	obj := either(cur, old)
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	w.mu.Lock()
	prev, had := w.nodes[n.Name]
	var changed bool
	if cur == nil {
		delete(w.nodes, n.Name)
		changed = had
	} else {
		info := nodeInfo{labels: maps.Clone(n.Labels), ips: internalIPs(n),
			drain: n.Annotations[v1beta1.AnnotationDrain] == "true", networkUnavailable: networkUnavailable(n)}
		changed = !had || !reflect.DeepEqual(prev, info)
		w.nodes[n.Name] = info
	}
	if changed {
		w.nodesDirty = true
	}
	w.mu.Unlock()
	if changed {
		w.wake()
	}
}

func networkUnavailable(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func internalIPs(n *corev1.Node) []netip.Addr {
	var out []netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

func (w *watcher) onConfig(old, cur any) {
	if o, c := asObject(old), asObject(cur); o != nil && c != nil &&
		o.GetGeneration() == c.GetGeneration() && maps.Equal(o.GetLabels(), c.GetLabels()) {
		return // a status write
	}
	w.mu.Lock()
	w.config = true
	w.mu.Unlock()
	w.wake()
}

// either is cur, or old for a deletion.
func either(cur, old any) any {
	if cur != nil {
		return cur
	}
	return old
}

func asObject(obj any) client.Object {
	o, _ := obj.(client.Object)
	return o
}

func (w *watcher) onSecret(old, cur any) {
	obj := either(cur, old)
	s, ok := obj.(*corev1.Secret)
	if !ok || s.Namespace != v1beta1.Namespace {
		return
	}
	if o, isOld := old.(*corev1.Secret); isOld && cur != nil && reflect.DeepEqual(o.Data, s.Data) && reflect.DeepEqual(o.StringData, s.StringData) {
		return
	}
	w.mu.Lock()
	w.config = true
	if s.Name == w.secretName {
		w.key, w.keySeen = nil, true
		if cur != nil {
			w.key = append([]byte{}, s.Data[k8s.MemberlistSecretKey]...) // empty, not nil, when the data key is missing
		}
	}
	w.mu.Unlock()
	w.wake()
}

// onLease records a speaker's Lease renewal (or its deletion) with the time
// it arrived: presence is judged on this node's clock.
func (w *watcher) onLease(old, cur any) {
	l, ok := either(cur, old).(*coordinationv1.Lease)
	if !ok || l.Namespace != v1beta1.Namespace || presence.Holder(l) == "" || l.Labels["app.kubernetes.io/component"] != presence.Labels["app.kubernetes.io/component"] {
		return
	}
	w.mu.Lock()
	w.leases = append(w.leases, leaseSeen{at: time.Now(), node: presence.Holder(l), renew: presence.RenewTime(l), deleted: cur == nil})
	w.mu.Unlock()
	w.wake()
}

// memberlistKey returns the memberlist key as last seen (nil when the
// Secret is absent), and whether the Secret changed since the last call.
func (w *watcher) memberlistKey() ([]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := w.keySeen
	w.keySeen = false
	return slices.Clone(w.key), seen
}

// pending is a batch of work for the loop.
type pending struct {
	services  []string
	endpoints []string
	nodes     map[string]nodeInfo // set when nodes changed
	config    bool
	leases    []leaseSeen
}

// take returns and clears the pending work.
func (w *watcher) take() pending {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := pending{config: w.config, leases: w.leases}
	w.leases = nil
	for k := range w.services {
		p.services = append(p.services, k)
	}
	for k := range w.endpoints {
		if !w.services[k] {
			p.endpoints = append(p.endpoints, k)
		}
	}
	if w.nodesDirty {
		p.nodes = maps.Clone(w.nodes)
	}
	clear(w.services)
	clear(w.endpoints)
	w.nodesDirty, w.config = false, false
	return p
}

// requeue puts back the part of a batch that could not be done, so it is
// tried again at the next step instead of waiting for the next change.
func (w *watcher) requeue(services []string, config bool) {
	if len(services) == 0 && !config {
		return
	}
	w.mu.Lock()
	for _, k := range services {
		w.services[k] = true
	}
	w.config = w.config || config
	w.mu.Unlock()
}
