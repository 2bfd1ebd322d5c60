package k8s

import (
	"fmt"
	"time"

	"github.com/heraldlb/herald/internal/ratelimit"
)

// Limits on Events. Something that flaps (a membership that changes every
// few seconds with thousands of Services) must not write thousands of
// Events a minute, while every object still gets its first Event at once.
const (
	// eventRepeatWindow: an Event identical to one recorded about the same
	// object within this window is not recorded again, only counted.
	eventRepeatWindow = 10 * time.Minute
	// Per object: a burst of eventObjectBurst Events, then one a minute.
	eventObjectBurst = 5
	eventObjectRate  = 1.0 / 60
	eventObjects     = 50000
	// Events about objects that already had one within the window share
	// eventRepeatRate a second (after a burst of eventRepeatBurst): 300 a
	// minute at most, whatever flaps. An object's first Event is not held
	// back by it.
	eventRepeatRate  = 5
	eventRepeatBurst = 300
)

// eventLimiter decides which Events are recorded. It is pure (the caller
// passes the time and serializes calls).
type eventLimiter struct {
	perObject *ratelimit.Keyed[string]
	repeats   ratelimit.Bucket
	// recorded: when an identical Event (object, type, reason, action, note)
	// was last recorded.
	recorded  map[string]time.Time
	objects   map[string]*objectEvents
	nextSweep time.Time
}

// objectEvents is what the limiter knows about one object.
type objectEvents struct {
	last       time.Time // an Event about it was last recorded
	suppressed int       // Events about it not recorded since
	since      time.Time // the first of those
}

func newEventLimiter() *eventLimiter {
	return &eventLimiter{
		perObject: ratelimit.NewKeyed[string](eventObjectRate, eventObjectBurst, eventObjects),
		repeats:   ratelimit.NewBucket(eventRepeatRate, eventRepeatBurst),
		recorded:  map[string]time.Time{},
		objects:   map[string]*objectEvents{},
	}
}

// admit decides whether an Event about object (its kind, namespace, name
// and UID) with key (what makes two Events identical) is recorded at now.
// If so, suffix tells what was not recorded about the object before it.
func (l *eventLimiter) admit(object, key string, now time.Time) (ok bool, suffix string) {
	l.sweep(now)
	o := l.objects[object]
	if o == nil {
		o = &objectEvents{}
		l.objects[object] = o
	}
	repeat := !o.last.IsZero() && now.Sub(o.last) < eventRepeatWindow
	last, seen := l.recorded[key]
	switch {
	case seen && now.Sub(last) < eventRepeatWindow,
		!l.perObject.Allow(object, now),
		repeat && !l.repeats.Allow(now):
		if o.suppressed == 0 {
			o.since = now
		}
		o.suppressed++
		return false, ""
	}
	if o.suppressed > 0 {
		suffix = fmt.Sprintf(" (%d more Events about this object not recorded since %s)", o.suppressed, o.since.UTC().Format(time.TimeOnly))
	}
	o.last, o.suppressed = now, 0
	l.recorded[key] = now
	return true, suffix
}

// sweep forgets, once a minute, what is older than the window (and counts
// of Events not recorded that no later Event reported): memory follows the
// objects that had Events recently.
func (l *eventLimiter) sweep(now time.Time) {
	if now.Before(l.nextSweep) {
		return
	}
	l.nextSweep = now.Add(time.Minute)
	for k, t := range l.recorded {
		if now.Sub(t) >= eventRepeatWindow {
			delete(l.recorded, k)
		}
	}
	for k, o := range l.objects {
		if now.Sub(o.last) >= eventRepeatWindow && (o.suppressed == 0 || now.Sub(o.since) >= eventRepeatWindow) {
			delete(l.objects, k)
		}
	}
}
