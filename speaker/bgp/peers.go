package bgp

import (
	"slices"
	"sort"
)

// peerPlan is how the set of sessions changes from one Desired to the next.
type peerPlan struct {
	// add are new peers, remove the names of peers that are gone.
	add    []Peer
	remove []string
	// recreate are peers whose session settings changed: only that one
	// session is reset.
	recreate []Peer
	// retarget are peers whose only change is a next-hop override: their
	// cross-family paths are re-announced, the session stays.
	retarget []Peer
	// invalid maps the names of rejected peers to why; a rejected peer that
	// was running keeps its last good settings.
	invalid map[string]error
}

// planPeers compares the running peers with the desired ones. It is pure.
func planPeers(running map[string]Peer, desired []Peer) peerPlan {
	plan := peerPlan{invalid: map[string]error{}}
	want := map[string]bool{}
	for _, p := range desired {
		if want[p.Name] {
			continue // Validate reports the duplicate; the first one wins
		}
		want[p.Name] = true
		if err := p.validate(); err != nil {
			plan.invalid[p.Name] = err
			continue
		}
		old, ok := running[p.Name]
		switch {
		case !ok:
			plan.add = append(plan.add, p)
		case !sameSession(old, p):
			plan.recreate = append(plan.recreate, p)
		case old.NextHopIPv4 != p.NextHopIPv4 || old.NextHopIPv6 != p.NextHopIPv6:
			plan.retarget = append(plan.retarget, p)
		}
	}
	for name := range running {
		if !want[name] {
			plan.remove = append(plan.remove, name)
		}
	}
	sort.Strings(plan.remove)
	return plan
}

// sameSession reports whether two settings of a peer need the same
// session; the next-hop overrides do not touch the session.
func sameSession(a, b Peer) bool {
	a.NextHopIPv4, a.NextHopIPv6 = b.NextHopIPv4, b.NextHopIPv6
	bfdA, bfdB := a.BFD, b.BFD
	a.BFD, b.BFD = nil, nil
	if (bfdA == nil) != (bfdB == nil) || bfdA != nil && *bfdA != *bfdB {
		return false
	}
	return a == b
}

// sortedNames returns the map's keys in order, for deterministic work.
func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
