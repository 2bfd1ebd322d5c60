package k8s

import (
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// Events records Events (events.k8s.io/v1) about objects. The note is taken
// literally, never as a format string, since it often quotes user input.
type Events struct {
	Recorder events.EventRecorder
}

// Normal records an informational Event. reason is CamelCase ("IPAllocated"),
// action what Herald did ("Allocate").
func (e Events) Normal(obj runtime.Object, reason, action, note string) {
	e.record(obj, corev1.EventTypeNormal, reason, action, note)
}

// Warning records an Event about something that needs the user's attention.
func (e Events) Warning(obj runtime.Object, reason, action, note string) {
	e.record(obj, corev1.EventTypeWarning, reason, action, note)
}

func (e Events) record(obj runtime.Object, typ, reason, action, note string) {
	if e.Recorder == nil {
		return
	}
	// The API limits notes to 1 kB.
	if len(note) > 1000 {
		n := 996
		for n > 0 && !utf8.RuneStart(note[n]) {
			n--
		}
		note = note[:n] + "..."
	}
	e.Recorder.Eventf(obj, nil, typ, reason, action, "%s", note)
}
