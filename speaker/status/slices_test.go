package status

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/speaker/svcstatus"
)

// source is a speaker's view as a test sets it.
type source struct {
	mu   sync.Mutex
	view svcstatus.View
}

func (s *source) get() svcstatus.View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view
}

// set replaces the Services (by a copy of m) and bumps the version.
func (s *source) set(m map[string]v1beta1.ServiceAnnouncement) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view.Services = maps.Clone(m)
	s.view.Version++
}

func l2Service(i int) v1beta1.ServiceAnnouncement {
	return v1beta1.ServiceAnnouncement{Service: fmt.Sprintf("demo/s%05d", i), Addresses: []v1beta1.AnnouncedAddress{
		{IP: fmt.Sprintf("198.51.%d.%d", 100+i/250, i%250), Protocol: v1beta1.ProtocolLayer2, Interfaces: []string{"eth0"}},
	}}
}

func services(from, to int) map[string]v1beta1.ServiceAnnouncement {
	m := map[string]v1beta1.ServiceAnnouncement{}
	for i := from; i < to; i++ {
		s := l2Service(i)
		m[s.Service] = s
	}
	return m
}

// env is a real API server with a client for Herald's kinds.
type env struct {
	t *testing.T
	c client.Client
}

func startEnv(t *testing.T) *env {
	te := testenv.Start(t, testenv.WithoutControllerManager())
	scheme, err := k8s.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(te.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, c: c}
}

func (e *env) node(name string) *corev1.Node {
	e.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.c.Create(context.Background(), n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) writer(n *corev1.Node, src *source, resync time.Duration) *Writer {
	e.t.Helper()
	w, err := New(Options{Client: e.c, Node: n.Name, NodeUID: n.UID, ResyncInterval: resync,
		Source: func() v1beta1.SpeakerStatusStatus { return v1beta1.SpeakerStatusStatus{} }, Announcements: src.get})
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

func (e *env) sync(w *Writer) {
	e.t.Helper()
	if err := w.Sync(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// slices lists the AnnouncementSlices matching the label selector sel, by name.
func (e *env) slices(sel string) map[string]v1beta1.AnnouncementSlice {
	e.t.Helper()
	var list v1beta1.AnnouncementSliceList
	opts := []client.ListOption{}
	if sel != "" {
		s, err := metav1.ParseToLabelSelector(sel)
		if err != nil {
			e.t.Fatal(err)
		}
		ls, err := metav1.LabelSelectorAsSelector(s)
		if err != nil {
			e.t.Fatal(err)
		}
		opts = append(opts, client.MatchingLabelsSelector{Selector: ls})
	}
	if err := e.c.List(context.Background(), &list, opts...); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]v1beta1.AnnouncementSlice{}
	for _, s := range list.Items {
		out[s.Name] = s
	}
	return out
}

// writes counts the writer's slice writes and deletes of its own slices.
func writes(w *Writer) int {
	a, b, _ := w.SliceWrites()
	return a + b
}

// A node's Services go into slices of at most 250, each slice labelled
// per Service; only changed slices are written; a restarted writer adopts
// the slices and writes nothing; a slice deleted behind its back comes
// back at the next resync; a node that announces nothing has no slice.
func TestSlicesAgainstAPIServer(t *testing.T) {
	e := startEnv(t)
	n1 := e.node("node1")
	src := &source{view: svcstatus.View{Alive: []string{"node1"}, Candidates: []string{"node1"}, Quorum: true}}
	have := services(0, 600)
	src.set(have)
	w := e.writer(n1, src, time.Hour)
	e.sync(w)

	got := e.slices("")
	if len(got) != 3 || writes(w) != 3 {
		t.Fatalf("%d slices in %d writes, want 3 (250, 250, 100) in 3", len(got), writes(w))
	}
	total := 0
	for _, name := range []string{"node1", "node1.1", "node1.2"} {
		s, ok := got[name]
		if !ok || s.Node != "node1" || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != n1.UID || int(s.ServiceCount) != len(s.Services) || s.Layer2Count != s.ServiceCount {
			t.Fatalf("slice %s: %+v", name, s.ObjectMeta)
		}
		total += len(s.Services)
	}
	if total != 600 {
		t.Fatalf("%d Services listed, want 600", total)
	}
	// The documented selector finds the one slice listing a Service.
	one := e.slices("demo.svc.herald.dev/s00042")
	if len(one) != 1 || one["node1"].Labels["demo.svc.herald.dev/s00042"] != "Layer2" {
		t.Fatalf("selector for demo/s00042: %v", slices.Collect(maps.Keys(one)))
	}
	if !slices.ContainsFunc(one["node1"].Services, func(s v1beta1.ServiceAnnouncement) bool {
		return s.Service == "demo/s00042" && s.Addresses[0].IP == "198.51.100.42" && s.Addresses[0].Interfaces[0] == "eth0"
	}) {
		t.Fatalf("slice node1 lacks demo/s00042's address")
	}

	e.sync(w)
	if writes(w) != 3 {
		t.Fatalf("nothing changed, but %d writes", writes(w)-3)
	}
	// One Service changes: one slice is written.
	s := have["demo/s00300"]
	s.Addresses = append(s.Addresses, v1beta1.AnnouncedAddress{IP: "2001:db8::300", Protocol: v1beta1.ProtocolLayer2, Interfaces: []string{"eth0"}})
	have[s.Service] = s
	src.set(have)
	e.sync(w)
	if writes(w) != 4 {
		t.Fatalf("one Service changed: %d writes, want 1", writes(w)-3)
	}
	// 150 new Services fill the last slice: one write.
	maps.Copy(have, services(600, 750))
	src.set(have)
	e.sync(w)
	if writes(w) != 5 || len(e.slices("")) != 3 {
		t.Fatalf("150 new Services: %d writes (want 1), %d slices (want 3)", writes(w)-4, len(e.slices("")))
	}

	// A restarted speaker finds its slices and writes nothing.
	w2 := e.writer(n1, src, time.Hour)
	e.sync(w2)
	if writes(w2) != 0 {
		t.Fatalf("after a restart: %d writes, want none", writes(w2))
	}
	// A slice deleted behind its back is written again at the next resync.
	w3 := e.writer(n1, src, time.Millisecond)
	e.sync(w3)
	if err := e.c.Delete(context.Background(), &v1beta1.AnnouncementSlice{ObjectMeta: metav1.ObjectMeta{Name: "node1.1"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // the resync interval
	e.sync(w3)
	if _, ok := e.slices("")["node1.1"]; !ok || writes(w3) != 1 {
		t.Fatalf("slice node1.1 deleted by someone: not written again (%d writes)", writes(w3))
	}

	// Two slices deleted behind its back (a janitor took this node for
	// gone): a change in one writes it again and makes the writer look
	// for the other at once, although its resync is an hour away.
	for _, name := range []string{"node1", "node1.2"} {
		if err := e.c.Delete(context.Background(), &v1beta1.AnnouncementSlice{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	s = have["demo/s00001"]
	s.Addresses[0].Interfaces = []string{"eth1"}
	have[s.Service] = s
	src.set(have)
	e.sync(w)
	e.sync(w)
	if got := e.slices(""); len(got) != 3 || got["node1"].Services[1].Addresses[0].Interfaces[0] != "eth1" {
		t.Fatalf("after two slices were deleted: %d slices, want 3 with the change", len(got))
	}

	// Nothing announced (a graceful stop): every slice goes.
	src.set(nil)
	e.sync(w3)
	if n := len(e.slices("")); n != 0 {
		t.Fatalf("%d slices left after announcing nothing", n)
	}
}

// The slices of a speaker memberlist no longer shows are deleted by the
// janitor (the first candidate by name, with quorum) once per change of
// what memberlist shows, and only by it.
func TestSlicesOfGoneSpeakersAreDeleted(t *testing.T) {
	e := startEnv(t)
	n1, n2, n3 := e.node("node1"), e.node("node2"), e.node("node3")
	all := []string{"node1", "node2", "node3"}
	view := func(alive []string, quorum bool) svcstatus.View {
		return svcstatus.View{Alive: alive, Candidates: alive, Quorum: quorum}
	}
	src1, src2, src3 := &source{view: view(all, true)}, &source{view: view(all, true)}, &source{view: view(all, true)}
	src1.set(services(0, 10))
	src2.set(services(10, 300)) // two slices
	src3.set(services(300, 310))
	w1, w2, w3 := e.writer(n1, src1, time.Hour), e.writer(n2, src2, time.Hour), e.writer(n3, src3, time.Hour)
	for _, w := range []*Writer{w1, w2, w3} {
		e.sync(w)
	}
	if n := len(e.slices("")); n != 4 {
		t.Fatalf("%d slices, want 4", n)
	}

	// node2 dies. node3 is no janitor (node1 comes first); node1 has no
	// quorum at first (maybe it is the one cut off): nothing is deleted.
	src3.view.Alive, src3.view.Candidates = []string{"node1", "node3"}, []string{"node1", "node3"}
	e.sync(w3)
	src1.view = view([]string{"node1", "node3"}, false)
	src1.set(services(0, 10))
	e.sync(w1)
	if n := len(e.slices(v1beta1.LabelNode + "=node2")); n != 2 {
		t.Fatalf("node2's slices deleted by a node that is not the janitor: %d left", n)
	}
	// With quorum node1 deletes them, and lists them once only.
	src1.view.Quorum = true
	e.sync(w1)
	if n := len(e.slices(v1beta1.LabelNode + "=node2")); n != 0 {
		t.Fatalf("%d of node2's slices left", n)
	}
	if _, _, swept := w1.SliceWrites(); swept != 2 {
		t.Fatalf("node1 deleted %d slices of gone speakers, want 2", swept)
	}
	// node2 comes back (its own writer writes again); node1 deletes no more.
	src1.view.Alive, src1.view.Candidates = all, all
	w2b := e.writer(n2, src2, time.Hour)
	e.sync(w2b)
	e.sync(w1)
	if n := len(e.slices(v1beta1.LabelNode + "=node2")); n != 2 {
		t.Fatalf("node2 back: %d slices, want 2", n)
	}
	if n := len(e.slices("")); n != 4 {
		t.Fatalf("%d slices, want 4", n)
	}
}

// Each kind is written at most once per MinInterval, apart: a SpeakerStatus
// write does not hold back the slices (a takeover changes both, a moment
// apart), and a second slice change within the interval waits for it.
func TestSlicesAndStatusAreLimitedApart(t *testing.T) {
	e := startEnv(t)
	n1 := e.node("node1")
	const interval = 3 * time.Second
	var mu sync.Mutex
	members := int32(3)
	src := &source{view: svcstatus.View{Alive: []string{"node1"}, Candidates: []string{"node1"}, Quorum: true}}
	changed := make(chan struct{}, 1)
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	w, err := New(Options{Client: e.c, Node: n1.Name, NodeUID: n1.UID, MinInterval: interval, PollInterval: time.Hour, Changed: changed,
		Source: func() v1beta1.SpeakerStatusStatus {
			mu.Lock()
			defer mu.Unlock()
			return v1beta1.SpeakerStatusStatus{MembersAlive: members}
		},
		Announcements: src.get})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); _ = <-done }()

	statusSays := func(want int32) func() error {
		return func() error {
			var ss v1beta1.SpeakerStatus
			if err := e.c.Get(ctx, client.ObjectKey{Name: "node1"}, &ss); err != nil {
				return err
			}
			if ss.Status.MembersAlive != want {
				return fmt.Errorf("membersAlive %d, want %d", ss.Status.MembersAlive, want)
			}
			return nil
		}
	}
	slicesList := func(want int) func() error {
		return func() error {
			n := 0
			for _, s := range e.slices("") {
				n += len(s.Services)
			}
			if n != want {
				return fmt.Errorf("%d Services in the slices, want %d", n, want)
			}
			return nil
		}
	}
	signal()
	testkit.For(t, 10*time.Second, "the first SpeakerStatus", statusSays(3))
	mu.Lock()
	members = 2
	mu.Unlock()
	signal()
	testkit.For(t, 10*time.Second, "the second SpeakerStatus", statusSays(2))
	statusAt := time.Now()
	src.set(services(0, 5))
	signal()
	testkit.For(t, 10*time.Second, "the slice", slicesList(5))
	if d := time.Since(statusAt); d >= interval {
		t.Errorf("the slice was written %v after the SpeakerStatus: held back by it", d)
	}
	sliceAt := time.Now()
	src.set(services(0, 6))
	signal()
	testkit.For(t, 10*time.Second, "the slice again", slicesList(6))
	if d := time.Since(sliceAt); d < interval-500*time.Millisecond {
		t.Errorf("the slice was written again after %v, within the interval of %v", d, interval)
	}
}
