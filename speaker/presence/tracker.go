// Package presence tells each speaker which speakers the API server shows
// running, so that what a node expects to see in memberlist does not come
// from its own memberlist history alone (see speaker/takeover).
//
// Every speaker keeps a Lease in herald-system (Heartbeat), renewed every
// third of its duration while its memberlist member runs, and deleted when
// it stops gracefully. A speaker is present while its Lease was renewed
// within the duration. The Tracker judges that on this node's own clock
// and only as far as this node can tell: the reference time is when this
// node last saw its own renewal come back through its watch. A node that
// cannot reach the API server sees no renewal at all, its reference time
// stops, and nobody expires from its view: a cut-off node keeps expecting
// the speakers it cannot see, and so takes nothing over.
package presence

import (
	"slices"
	"time"
)

// Tracker records Lease renewals as the watch delivers them. It is pure
// (the caller passes the time) and not safe for concurrent use.
type Tracker struct {
	self     string
	duration time.Duration
	start    time.Time // first observation: nothing expires before
	ref      time.Time // when this node's own renewal was last seen
	seen     map[string]renewal
}

type renewal struct {
	renew time.Time // the Lease's renewTime (the writer's clock)
	at    time.Time // when this node saw it change (its own clock)
}

// NewTracker returns a tracker for the node self; a Lease counts for
// duration after its last renewal.
func NewTracker(self string, duration time.Duration) *Tracker {
	return &Tracker{self: self, duration: duration, seen: map[string]renewal{}}
}

// Observe records the Lease of node as seen at now. Only a changed renewTime
// counts as a renewal; the first sight of a Lease counts as one too (its
// renewTime was written by another clock, so it is not trusted: a stale
// Lease merely keeps its node expected for one duration after this
// speaker starts, which only delays takeovers).
func (t *Tracker) Observe(now time.Time, node string, renew time.Time) {
	if t.start.IsZero() {
		t.start = now
	}
	prev, ok := t.seen[node]
	if ok && prev.renew.Equal(renew) {
		return
	}
	t.seen[node] = renewal{renew: renew, at: now}
	if node == t.self && ok {
		t.ref = now
	}
}

// Forget drops the Lease of node (deleted: the speaker stopped gracefully,
// or its Node went away).
func (t *Tracker) Forget(node string) { delete(t.seen, node) }

// Present lists, sorted, the nodes whose Lease was renewed within the
// duration before the reference time: the later of the first observation
// and this node's last own renewal seen.
func (t *Tracker) Present() []string {
	ref := t.ref
	if ref.Before(t.start) {
		ref = t.start
	}
	out := make([]string, 0, len(t.seen))
	for n, r := range t.seen {
		if ref.Sub(r.at) <= t.duration {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Reference is the time the judgement is made at (zero before any Lease
// was seen); exported for status and tests.
func (t *Tracker) Reference() time.Time {
	if t.ref.Before(t.start) {
		return t.start
	}
	return t.ref
}
