package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/testenv"
)

func TestTruncate(t *testing.T) {
	if got := truncate("short", 10); got != "short" {
		t.Errorf("short note changed: %q", got)
	}
	long := strings.Repeat("é", 600) // 1200 bytes
	got := truncate(long, eventNoteMax)
	if len(got) > eventNoteMax || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Errorf("truncated to %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

// A membership that flaps every 5 s for 12.5 minutes, seen by one speaker
// with 300 Services (each losing and regaining its address at every flap),
// writes to a real API server a few hundred Events in all, not 3,600 a
// minute: the first one of every Service and kind, then, once the repeat
// window has passed, repeats within the shared rate, which say how many
// were left out. The clock is the test's; the API server and the sink's
// senders are real.
func TestEventSinkFlappingAgainstAPIServer(t *testing.T) {
	env := testenv.Start(t, testenv.WithoutControllerManager())
	scheme, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "flap"}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := epoch
	sink := &EventSink{Client: c, Scheme: scheme, Controller: "herald-speaker", Log: slog.New(slog.DiscardHandler),
		clock: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	done := make(chan error, 1)
	go func() { done <- sink.Start(ctx) }()

	const services, flaps = 300, 150
	for flap := range flaps {
		mu.Lock()
		now = epoch.Add(time.Duration(flap) * 5 * time.Second)
		mu.Unlock()
		for i := range services {
			svc := &corev1.Service{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
				ObjectMeta: metav1.ObjectMeta{Namespace: "flap", Name: fmt.Sprintf("svc-%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))},
			}
			if flap%2 == 0 {
				sink.Normal(svc, "AnnouncingL2", "Announce", "announcing 198.51.100.1 from node1 on eth0")
			} else {
				sink.Normal(svc, "StoppedAnnouncingL2", "Withdraw", "node1 stopped announcing 198.51.100.1: node2 took over")
			}
		}
	}
	// Everything admitted is written once the queue is empty and the
	// count in the API server stops growing.
	var list eventsv1.EventList
	var last int
	deadline := time.Now().Add(time.Minute)
	for {
		if err := c.List(ctx, &list, client.InNamespace("flap")); err != nil {
			t.Fatal(err)
		}
		sink.mu.Lock()
		queued := len(sink.queue)
		sink.mu.Unlock()
		if queued == 0 && len(list.Items) == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Events still being written after a minute: %d queued, %d written", queued, len(list.Items))
		}
		last = len(list.Items)
		time.Sleep(500 * time.Millisecond)
	}
	withSuffix := 0
	for _, e := range list.Items {
		if strings.Contains(e.Note, "more Events about this object not recorded") {
			withSuffix++
		}
	}
	t.Logf("%d Events written for %d offered (%d say how many were left out)", len(list.Items), services*flaps, withSuffix)
	// Each Service's first, then at most the shared burst and rate.
	if limit := services + eventRepeatBurst + flaps*5*eventRepeatRate; len(list.Items) > limit || len(list.Items) < services {
		t.Errorf("%d Events written, want between %d and %d", len(list.Items), services, limit)
	}
	if withSuffix == 0 {
		t.Error("no Event says that others were left out")
	}
	cancel()
	_ = <-done
}
