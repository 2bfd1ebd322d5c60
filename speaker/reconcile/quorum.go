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
	// StartupGrace is how long a starting node that sees only itself, while
	// other nodes exist, waits for them before it trusts its lonely view.
	StartupGrace time.Duration

	started  time.Time
	joined   bool                 // has seen another member once
	known    map[string]bool      // seen alive at least once
	failedAt map[string]time.Time // vanished without handing over
}

// NewQuorum returns a guard for a node that starts now.
func NewQuorum(now time.Time, memory, startupGrace time.Duration) *Quorum {
	return &Quorum{Memory: memory, StartupGrace: startupGrace, started: now, known: map[string]bool{}, failedAt: map[string]time.Time{}}
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
	// Healthy, Expected are the counts the decision used.
	Healthy, Expected int
	// Why is empty when trusted.
	Why string
}

// Check decides for the live members and this node's suspects at now.
// othersExist says whether other nodes exist that may run speakers.
func (q *Quorum) Check(now time.Time, live, suspects []string, othersExist bool) Verdict {
	expected := len(live)
	for n, at := range q.failedAt {
		if now.Sub(at) <= q.Memory && !slices.Contains(live, n) {
			expected++
		}
	}
	healthy := 0
	for _, n := range live {
		if !slices.Contains(suspects, n) {
			healthy++
		}
	}
	v := Verdict{Trusted: true, Healthy: healthy, Expected: expected}
	switch {
	case len(live) == 0:
		v.Trusted, v.Why = false, "not a member of the speakers' cluster yet"
	case !q.joined && othersExist && now.Sub(q.started) < q.StartupGrace:
		v.Trusted, v.Why = false, "waiting to join the other speakers"
	case 2*healthy < expected:
		v.Trusted, v.Why = false, "sees only a minority of the speakers (probably cut off itself)"
	}
	return v
}
