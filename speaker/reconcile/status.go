package reconcile

import (
	"net/netip"
	"slices"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// reportCache keeps the Layer 2 part of the last report: rebuilding it
// costs one pass over every address, so it is redone only when the engine
// or the announcer's placement changed.
type reportCache struct {
	version uint64
	placed  map[netip.Addr][]string
	l2      v1beta1.SpeakerStatusStatus
	valid   bool
}

// Status is what this node's SpeakerStatus should say now (UpdatedAt unset).
func (s *Speaker) Status() v1beta1.SpeakerStatusStatus {
	placed := s.placedNow()
	bgpStatus := s.opts.BGP.Status()
	s.mu.Lock()
	defer s.mu.Unlock()
	rc := &s.reported
	if !rc.valid || rc.version != s.engine.Version || !equalPlaced(rc.placed, placed) {
		rc.l2 = v1beta1.SpeakerStatusStatus{}
		s.engine.L2Report(&rc.l2, placed)
		rc.version, rc.placed, rc.valid = s.engine.Version, placed, true
	}
	st := rc.l2
	st.L2Announcements = slices.Clone(st.L2Announcements)
	st.L2Skipped = slices.Clone(st.L2Skipped)
	st.MembersAlive = int32(len(s.live))
	st.MembersExpected = int32(s.decision.Quorum.Expected)
	st.Conditions = slices.Clone(s.setConditions())
	BGPReport(&st, s.bgpDesired, bgpStatus, s.bgpIssues)
	return st
}

func equalPlaced(a, b map[netip.Addr][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for ip, x := range a {
		if y, ok := b[ip]; !ok || !slices.Equal(x, y) {
			return false
		}
	}
	return true
}
