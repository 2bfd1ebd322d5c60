package reconcile

import (
	"slices"
	"time"
)

// settle holds back takeovers while this node (re)joins the speakers: at
// start, when it rejoins the majority after being cut off, and after it was
// stalled. Its view then may be ahead of the others': it sees them, they do
// not see it yet, and an address it ranks first for is still announced by
// another node that does not know it must yield. Announcing then is what
// makes two nodes fight with gratuitous bursts. So a settling node keeps
// what it announces and takes only what is released to it, until every
// live member has sent it a release message (each sends one when it sees
// this node join, with the addresses it yields) or Timeout passed.
type settle struct {
	Timeout time.Duration

	active bool
	since  time.Time
	why    string
	heard  map[string]time.Time // release senders and when
}

// heardSlack: releases this much older than the start of settling count.
const heardSlack = time.Second

func newSettle(timeout time.Duration) *settle {
	return &settle{Timeout: timeout, heard: map[string]time.Time{}}
}

// begin starts settling (again) at now.
func (s *settle) begin(now time.Time, why string) {
	s.active, s.since, s.why = true, now, why
}

// heardFrom records a release from a member.
func (s *settle) heardFrom(now time.Time, from string) { s.heard[from] = now }

// check ends settling once every live member but self has sent a release
// since it began (with other nodes around, at least one must be live), or
// on timeout. It reports whether the node still settles, and why it ended
// when it just did.
func (s *settle) check(now time.Time, live []string, self string, othersExist bool) (settling bool, ended string) {
	if !s.active {
		return false, ""
	}
	others := slices.DeleteFunc(slices.Clone(live), func(n string) bool { return n == self })
	all := len(others) > 0 || !othersExist
	for _, n := range others {
		// A release may arrive just before this node's own view changed.
		if at, ok := s.heard[n]; !ok || at.Before(s.since.Add(-heardSlack)) {
			all = false
			break
		}
	}
	switch {
	case all && len(others) > 0:
		ended = "every live speaker has seen this node"
	case all:
		ended = "no other node"
	case now.Sub(s.since) >= s.Timeout:
		ended = "timed out waiting for the other speakers"
	default:
		return true, ""
	}
	s.active = false
	return false, ended
}
