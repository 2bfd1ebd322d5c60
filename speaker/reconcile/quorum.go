package reconcile

import (
	"slices"
	"time"
)

// Quorum decides whether this node may take over addresses it does not
// announce yet. A node cut off from the LAN sees every other speaker fail,
// exactly as a node whose peers all crashed does; taking over their
// addresses then is what made MetalLB's returning node fight the real
// owner. So a node takes over only while it sees at least half of the
// speakers it expects: those alive now plus those that failed (without
// handing over) within Memory. Its probes' suspects do not count as seen:
// a cut-off node suspects the others before it declares the first one
// dead, so the first failure already leaves it in the minority. Addresses a
// node announces already are never dropped for lack of quorum (see
// Engine.Elect), and after Memory the failed ones stop counting, so a node
// whose peers really died takes over in the end.
//
// Quorum is pure: the caller passes the time and what memberlist says.
type Quorum struct {
	// Memory is how long a failed member still counts as expected.
	Memory time.Duration

	joined   bool                 // has seen another member once
	known    map[string]bool      // seen alive at least once
	failedAt map[string]time.Time // vanished without handing over
}

// NewQuorum returns a guard that remembers failed members for memory.
func NewQuorum(memory time.Duration) *Quorum {
	return &Quorum{Memory: memory, known: map[string]bool{}, failedAt: map[string]time.Time{}}
}

// Observe records the live members (gone ones, which handed over, already
// removed) and returns the members that came back within Memory of failing:
// a partition healed, or a stalled or restarted speaker returned. gone are
// members that handed their addresses over: they left, they did not fail.
func (q *Quorum) Observe(now time.Time, live []string, gone map[string]bool) (returned []string) {
	alive := make(map[string]bool, len(live))
	q.joined = q.joined || len(live) > 1
	for _, n := range live {
		alive[n] = true
		if at, failed := q.failedAt[n]; failed {
			if now.Sub(at) <= q.Memory {
				returned = append(returned, n)
			}
			delete(q.failedAt, n)
		}
		q.known[n] = true
	}
	for n := range q.known {
		if alive[n] {
			continue
		}
		if _, failed := q.failedAt[n]; !failed && !gone[n] {
			q.failedAt[n] = now
		}
		if gone[n] {
			delete(q.failedAt, n)
		}
	}
	for n, at := range q.failedAt {
		if now.Sub(at) > q.Memory {
			delete(q.failedAt, n)
			delete(q.known, n)
		}
	}
	slices.Sort(returned)
	return returned
}

// Forget drops a member whose Node was deleted: it is no longer expected.
func (q *Quorum) Forget(name string) {
	delete(q.known, name)
	delete(q.failedAt, name)
}

// Verdict is whether the node may take over addresses, and why not.
type Verdict struct {
	Trusted bool
	// Minority: not trusted because it sees too few speakers.
	Minority bool
	// Healthy, Expected are the counts the decision used.
	Healthy, Expected int
	// Why is empty when trusted.
	Why string
}

// View is what memberlist says, for Check.
type View struct {
	Live, Suspects []string
	// KeyMismatch is when gossip last arrived that this node's key could
	// not decrypt (zero if never).
	KeyMismatch time.Time
}

// keyMismatchWindow is how recent undecryptable gossip must be to keep a
// node that never joined anyone from trusting its lonely view (peers retry
// joins every few seconds).
const keyMismatchWindow = time.Minute

// Check decides at now.
func (q *Quorum) Check(now time.Time, v View) Verdict {
	live := make(map[string]bool, len(v.Live))
	for _, n := range v.Live {
		live[n] = true
	}
	expected := len(v.Live)
	for n, at := range q.failedAt {
		if now.Sub(at) <= q.Memory && !live[n] {
			expected++
		}
	}
	healthy := len(v.Live)
	for _, n := range v.Suspects {
		if live[n] {
			healthy--
		}
	}
	out := Verdict{Trusted: true, Healthy: healthy, Expected: expected}
	switch {
	case len(v.Live) == 0:
		out.Trusted, out.Why = false, "not a member of the speakers' cluster yet"
	case !q.joined && !v.KeyMismatch.IsZero() && now.Sub(v.KeyMismatch) < keyMismatchWindow:
		out.Trusted, out.Why = false, "other speakers use a different memberlist key (check the memberlist Secret)"
	case 2*healthy < expected:
		out.Trusted, out.Minority, out.Why = false, true, "sees only a minority of the speakers (probably cut off itself)"
	}
	return out
}
