package reconcile

import (
	"maps"
	"net/netip"
	"slices"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/speaker/svcstatus"
)

// sliceCache keeps the Services of the last Announcements view: building
// them costs a pass over every Service, so it is redone only when the
// engine, the announcer's placement or the peers that get routes changed.
type sliceCache struct {
	engineVersion uint64
	placed        map[netip.Addr][]string
	sending       map[string]bool
	services      map[string]v1beta1.ServiceAnnouncement
	version       uint64
	valid         bool
}

// Announcements is what this node announces per Service, for its
// AnnouncementSlices (speaker/status writes them), and the membership the
// writer needs to delete the slices of speakers that are gone. Layer 2:
// the addresses it answers for on at least one interface. BGP: the
// Services' routes to peers whose session is established and that get
// routes.
func (s *Speaker) Announcements() svcstatus.View {
	placed := s.placedNow()
	bgpStatus := s.opts.BGP.Status()
	alive := s.opts.Members.Alive()
	s.mu.Lock()
	sending := map[string]bool{}
	for _, st := range bgpStatus {
		if st.Established() && st.Advertised > 0 && s.bgpInUse[st.Name] {
			sending[st.Name] = true
		}
	}
	view := svcstatus.View{
		Alive: alive, Candidates: slices.Clone(s.live),
		// A stopping speaker leaves the others' slices alone.
		Quorum: s.decision.Quorum.OK && !s.stopping.Load(),
	}
	c := &s.announced
	if c.valid && c.engineVersion == s.engine.Version && equalPlaced(c.placed, placed) && maps.Equal(c.sending, sending) {
		view.Version, view.Services = c.version, c.services
		s.mu.Unlock()
		return view
	}
	in, version := s.engine.announcementInput(placed, sending), s.engine.Version
	s.mu.Unlock()
	// Building costs milliseconds with thousands of Services: not while
	// holding the loop's lock.
	services := svcstatus.Build(in)
	s.mu.Lock()
	defer s.mu.Unlock()
	c.services, c.engineVersion, c.placed, c.sending, c.valid = services, version, placed, sending, true
	c.version++
	view.Version, view.Services = c.version, services
	return view
}

// placedNow says where the announcer answers for each address.
func (s *Speaker) placedNow() map[netip.Addr][]string {
	placed := map[netip.Addr][]string{}
	for _, st := range s.opts.L2.Status() {
		placed[st.IP] = st.Interfaces
	}
	return placed
}

// announcementInput is what this node announces, for svcstatus.Build.
func (e *Engine) announcementInput(placed map[netip.Addr][]string, sending map[string]bool) svcstatus.Input {
	in := svcstatus.Input{Sending: sending, L2: make([]svcstatus.L2, 0, len(e.announced))}
	for ip, a := range e.announced {
		in.L2 = append(in.L2, svcstatus.L2{IP: ip, Services: keys(a.services), Interfaces: placed[ip]})
	}
	for key, st := range e.services {
		if len(st.routes) == 0 {
			continue
		}
		routes := make([]svcstatus.Route, len(st.routes))
		for i, r := range st.routes {
			routes[i] = svcstatus.Route{Peer: r.Peer, Prefix: r.Prefix}
		}
		in.BGP = append(in.BGP, svcstatus.BGP{Service: key, IPs: st.svc.IPs, Routes: routes})
	}
	return in
}
