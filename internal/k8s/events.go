package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/reference"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/ratelimit"
)

// EventRecorder records Events about objects. reason is CamelCase
// ("IPAllocated"), action what was done ("Allocate"); the note is taken
// literally, never as a format string, since it often quotes user input.
type EventRecorder interface {
	Normal(obj runtime.Object, reason, action, note string)
	Warning(obj runtime.Object, reason, action, note string)
}

// EventSink records Events (events.k8s.io/v1) from one queue with a few
// senders. A burst of Events (one per Service when thousands are assigned
// at once) thus waits its turn instead of competing with status writes for
// the API server, and costs a queue entry each, not a goroutine. Events are
// best effort: beyond MaxQueuedEvents waiting Events, new ones are dropped.
//
// Events that repeat are not all recorded (eventlimit.go): an Event
// identical to one recorded about the same object in the last 10 minutes
// is only counted, each object gets a burst of 5 and then one a minute,
// and Events about objects that had one recently share 300 a minute. The
// next Event recorded about an object says how many were left out; the log
// says how many in all, at most every 10 s.
type EventSink struct {
	Client     client.Client
	Scheme     *runtime.Scheme
	Controller string // reportingController, e.g. "herald.dev/controller"
	Log        *slog.Logger

	mu          sync.Mutex
	queue       []*eventsv1.Event
	wake        chan struct{}
	dropped     int
	limiter     *eventLimiter
	notRecorded ratelimit.Throttle
	clock       func() time.Time // nil: time.Now; tests set it
}

// Senders write Events in parallel; MaxQueuedEvents bounds the waiting
// ones: when many more Services than that are assigned at once, the
// Events of the last ones are dropped (their conditions say the same).
const (
	eventSenders    = 4
	MaxQueuedEvents = 20000
	eventNoteMax    = 1024 // the API's limit on a note
)

var _ EventRecorder = (*EventSink)(nil)

// Normal records an informational Event.
func (s *EventSink) Normal(obj runtime.Object, reason, action, note string) {
	s.enqueue(obj, corev1.EventTypeNormal, reason, action, note)
}

// Warning records an Event about something that needs attention.
func (s *EventSink) Warning(obj runtime.Object, reason, action, note string) {
	s.enqueue(obj, corev1.EventTypeWarning, reason, action, note)
}

func (s *EventSink) enqueue(obj runtime.Object, typ, reason, action, note string) {
	ref, err := reference.GetReference(s.Scheme, obj)
	if err != nil {
		s.Log.Error("cannot record an Event about an object", "err", err, "reason", reason)
		return
	}
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault // where Events about cluster-scoped objects go
	}
	now := time.Now()
	if s.clock != nil {
		now = s.clock()
	}
	s.mu.Lock()
	if s.limiter == nil {
		s.limiter = newEventLimiter()
	}
	object := ref.Kind + "/" + ref.Namespace + "/" + ref.Name + "/" + string(ref.UID)
	admitted, suffix := s.limiter.admit(object, object+"\x00"+typ+"\x00"+reason+"\x00"+action+"\x00"+note, now)
	if !admitted {
		n, report := s.notRecorded.Add(now)
		s.mu.Unlock()
		if report {
			s.Log.Info("Events not recorded: they repeat too often", "notRecorded", n, "since", ratelimit.ReportEvery, "last", ref.Namespace+"/"+ref.Name, "reason", reason)
		}
		return
	}
	s.mu.Unlock()
	note += suffix
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: ns},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: s.Controller,
		ReportingInstance:   s.Controller + "-" + hostname(),
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Note:                truncate(note, eventNoteMax),
		Type:                typ,
	}
	s.Log.Debug("event", "object", ref.Namespace+"/"+ref.Name, "kind", ref.Kind, "type", typ, "reason", reason, "note", ev.Note)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) >= MaxQueuedEvents {
		s.dropped++
		return
	}
	s.queue = append(s.queue, ev)
	if s.wake != nil {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Start sends queued Events until ctx ends; what is still queued then is dropped.
func (s *EventSink) Start(ctx context.Context) error {
	s.mu.Lock()
	s.wake = make(chan struct{}, eventSenders)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for range eventSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.send(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// NeedLeaderElection is false: a standby records nothing anyway, and the
// leader-election Events themselves need no Lease.
func (s *EventSink) NeedLeaderElection() bool { return false }

func (s *EventSink) send(ctx context.Context) {
	for {
		ev, dropped := s.next()
		if dropped > 0 {
			s.Log.Warn("Events dropped: too many waiting", "dropped", dropped)
		}
		if ev == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		s.create(ctx, ev)
	}
}

func (s *EventSink) next() (*eventsv1.Event, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dropped := s.dropped
	s.dropped = 0
	if len(s.queue) == 0 {
		s.queue = nil // let a burst's backing array go
		return nil, dropped
	}
	ev := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	return ev, dropped
}

// create writes one Event, retrying on errors that are not the Event's fault.
func (s *EventSink) create(ctx context.Context, ev *eventsv1.Event) {
	for attempt := range 3 {
		// Named like client-go's Events: object name and a unique time.
		ev.Name = fmt.Sprintf("%s.%x", ev.Regarding.Name, time.Now().UnixNano())
		ev.ResourceVersion = ""
		err := s.Client.Create(ctx, ev)
		switch {
		case err == nil, ctx.Err() != nil:
			return
		case apierrors.IsAlreadyExists(err):
			continue
		case apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || apierrors.IsBadRequest(err):
			s.Log.Error("Event rejected", "err", err, "reason", ev.Reason)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(attempt+1) * time.Second):
		}
	}
	s.Log.Warn("Event not recorded", "reason", ev.Reason, "object", ev.Regarding.Namespace+"/"+ev.Regarding.Name)
}

var hostnameOnce = sync.OnceValue(func() string {
	h, _ := os.Hostname()
	return h
})

func hostname() string { return hostnameOnce() }

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - 3
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
