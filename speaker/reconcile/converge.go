package reconcile

import (
	"net/netip"
	"slices"
	"time"

	"github.com/heraldlb/herald/speaker/members"
)

// releaseHold is how long an address released to this node may be taken
// over even while it settles (its own view may lag the sender's).
const releaseHold = 2 * time.Second

// converge applies the membership and the messages received, elects, and
// drives the announcer. The caller holds s.mu.
func (s *Speaker) converge(now time.Time, stalled bool, handovers []members.Handover, releases []release) {
	// Addresses handed or released to this node may be taken at once.
	for ip, until := range s.released {
		if now.After(until) {
			delete(s.released, ip)
		}
	}
	handed := map[netip.Addr]bool{}
	for _, h := range handovers {
		s.gone[h.From] = false
		for _, ip := range h.IPs {
			handed[ip.Unmap()] = true
		}
		s.metrics.handoversReceived.Inc()
		s.log.Info("hand-over received", "from", h.From, "ips", h.IPs)
	}
	var again []netip.Addr // released to us while we announce them: burst again
	for _, r := range releases {
		s.settle.heardFrom(now, r.From)
		for _, ip := range r.IPs {
			ip = ip.Unmap()
			s.released[ip] = now.Add(releaseHold)
			again = append(again, ip)
		}
		if len(r.IPs) > 0 {
			s.log.Info("addresses released to this node", "from", r.From, "ips", r.IPs)
		}
	}
	for ip := range s.released {
		handed[ip] = true
	}

	// Membership: memberlist's view minus the nodes that handed over.
	before := s.live
	s.live = s.liveMembers()
	s.engine.SetLive(s.live)
	s.quorum.Observe(now, s.live, s.gone)
	v := s.quorum.Check(now, View{Live: s.live, Suspects: s.opts.Members.Suspects(), KeyMismatch: s.opts.Members.LastKeyMismatch()})
	if v.Trusted != s.trusted || v.Why != s.untrustedWhy {
		if v.Trusted {
			s.log.Info("this node sees a majority of the speakers", "healthyMembers", v.Healthy, "expectedMembers", v.Expected)
			if s.minority {
				s.settle.begin(now, "rejoined the majority")
			}
		} else {
			s.log.Warn("takeovers held back: "+v.Why, "healthyMembers", v.Healthy, "expectedMembers", v.Expected, "live", s.live)
		}
		s.trusted, s.untrustedWhy = v.Trusted, v.Why
	}
	s.minority = v.Minority
	if stalled {
		s.settle.begin(now, "was stalled")
	}
	settling, ended := s.settle.check(now, s.live, s.opts.Node, len(s.nodes) > 1)
	if ended != "" {
		s.log.Info("settled: taking over addresses it owns", "why", ended)
	}
	trusted := v.Trusted && !settling
	if trusted != s.takeovers {
		s.takeovers = trusted
		s.engine.MarkAllDirty()
	}
	s.metrics.setQuorum(trusted)

	changes, changed := s.engine.Elect(now, trusted, handed)
	if changed {
		s.opts.L2.Set(s.engine.Desired())
	}
	yield := map[string][]netip.Addr{}
	for _, c := range changes {
		if c.Start {
			s.log.Info("taking over address", "ip", c.IP, "services", keys(c.Services))
			continue
		}
		s.log.Info("stopped announcing address", "ip", c.IP, "why", c.Why)
		stoppedEvents(s.opts.Events, s.opts.Node, c)
		if c.To != "" && c.To != s.opts.Node {
			yield[c.To] = append(yield[c.To], c.IP)
		}
	}
	for _, st := range s.opts.Inbox.takeL2() {
		s.onL2Change(st.IP, st.Interfaces)
	}
	// Released addresses this node announced already (kept while cut off or
	// stalled): clients may follow the node that released them, so announce
	// them again. Fresh takeovers burst on their own.
	again = slices.DeleteFunc(again, func(ip netip.Addr) bool {
		return !s.engine.Announces(ip) || slices.ContainsFunc(changes, func(c Change) bool { return c.IP == ip })
	})
	if len(again) > 0 {
		s.opts.L2.Reannounce(again)
	}
	// Tell every member that just (re)appeared, and every new owner, what
	// this node yields to it.
	for _, n := range s.live {
		if n != s.opts.Node && !slices.Contains(before, n) {
			if _, ok := yield[n]; !ok {
				yield[n] = nil
			}
		}
	}
	for to, ips := range yield {
		s.sendRelease(to, ips)
	}
}

// sendRelease sends a release message without blocking the loop.
func (s *Speaker) sendRelease(to string, ips []netip.Addr) {
	msg := release{From: s.opts.Node, IPs: ips}.marshal()
	go func() {
		s.sends <- struct{}{}
		defer func() { <-s.sends }()
		if err := s.opts.Members.Send(to, msg); err != nil {
			s.log.Debug("release not delivered", "to", to, "err", err)
			return
		}
		if len(ips) > 0 {
			s.log.Info("released addresses", "to", to, "ips", ips)
		}
	}()
}
