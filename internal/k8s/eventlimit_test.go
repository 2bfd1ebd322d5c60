package k8s

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestEventLimiter(t *testing.T) {
	t.Run("an identical Event is counted, not recorded, until the window has passed", func(t *testing.T) {
		l := newEventLimiter()
		if ok, suffix := l.admit("svc/a", "ready", epoch); !ok || suffix != "" {
			t.Fatalf("first Event: %v %q", ok, suffix)
		}
		for i := 1; i <= 3; i++ {
			if ok, _ := l.admit("svc/a", "ready", epoch.Add(time.Duration(i)*time.Minute)); ok {
				t.Fatalf("repeat %d recorded", i)
			}
		}
		ok, suffix := l.admit("svc/a", "ready", epoch.Add(eventRepeatWindow+time.Second))
		if !ok || !strings.Contains(suffix, "3 more Events about this object not recorded since 00:01:00") {
			t.Fatalf("after the window: %v %q", ok, suffix)
		}
	})
	t.Run("an object gets a burst of different Events, then one a minute", func(t *testing.T) {
		l := newEventLimiter()
		n := 0
		for i := range 60 { // one a second for a minute, all different
			if ok, _ := l.admit("svc/a", fmt.Sprint(i), epoch.Add(time.Duration(i)*time.Second)); ok {
				n++
			}
		}
		if n < eventObjectBurst || n > eventObjectBurst+1 {
			t.Fatalf("recorded %d of 60 in a minute", n)
		}
	})
	t.Run("every object's first Event is recorded at once", func(t *testing.T) {
		l := newEventLimiter()
		for i := range 10000 {
			if ok, _ := l.admit(fmt.Sprintf("svc/%d", i), fmt.Sprintf("svc/%d assigned", i), epoch); !ok {
				t.Fatalf("first Event of object %d held back", i)
			}
		}
	})
}

// A membership that flaps every 5 s for 10 minutes with 2,000 Services,
// each losing and regaining its owner at every flap (the notes alternate,
// and name changing nodes): without limits 2,000 Events every 5 s, 24,000
// a minute. With them, after the first minute at most the shared rate.
func TestFlappingMembershipWritesFewEvents(t *testing.T) {
	l := newEventLimiter()
	const services = 2000
	perMinute := map[int]int{}
	for flap := 0; flap < 120; flap++ {
		now := epoch.Add(time.Duration(flap) * 5 * time.Second)
		for s := range services {
			note := fmt.Sprintf("announcing from node%d", flap%3)
			if flap%2 == 1 {
				note = fmt.Sprintf("node%d stopped announcing: node%d took over", flap%3, (flap+1)%3)
			}
			if ok, _ := l.admit(fmt.Sprintf("Service/ns/svc-%d/uid", s), fmt.Sprintf("svc-%d %s", s, note), now); ok {
				perMinute[flap/12]++
			}
		}
	}
	t.Logf("Events recorded per minute: %v", perMinute)
	// Minute 0: every Service's first Event, then the shared burst and rate.
	if got, limit := perMinute[0], services+eventRepeatBurst+60*eventRepeatRate; got > limit {
		t.Errorf("first minute: %d Events, more than %d", got, limit)
	}
	// Later minutes: the shared rate, give or take the tokens of one flap
	// interval that fall on either side of a minute's edge.
	for m := 1; m < 10; m++ {
		if got, limit := perMinute[m], 65*eventRepeatRate; got > limit {
			t.Errorf("minute %d: %d Events, more than %d", m, got, limit)
		}
	}
}
