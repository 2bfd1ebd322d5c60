package reconcile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/heraldlb/herald/speaker/members"
	"github.com/heraldlb/herald/speaker/takeover"
)

// converge applies the membership, this node's data path and the messages
// received, asks the takeover guard what this node may do, elects, and
// drives the announcer. The caller holds s.mu.
func (s *Speaker) converge(now time.Time, stalled bool, msgs inboxBatch) {
	regained := s.checkDataPath(msgs.links)
	grown := s.readPublished()
	if msgs.reach != nil {
		s.reach, s.probing = *msgs.reach, false
	}
	m := s.opts.Members
	alive, suspects := m.Alive(), m.Suspects()
	d := s.guard.Observe(takeover.Input{
		Now: now, Alive: alive, Suspects: suspects, Present: s.present(), Published: s.others,
		KeyMismatch: m.LastKeyMismatch(), Stalled: stalled, Regained: regained, Grown: grown,
		Handovers: msgs.handovers, Releases: msgs.releases, Reach: s.reach, Excluded: s.excl.reason != "",
	})
	if d.Probe && !s.probing {
		s.probe(now, alive, suspects, d.ProbeFailed)
	}
	for _, n := range d.Notes {
		if n.Warning {
			s.log.Warn(n.Message, "seen", d.Quorum.Seen, "expected", d.Quorum.Expected, "unseen", d.Quorum.Unseen)
		} else {
			s.log.Info(n.Message, "seen", d.Quorum.Seen, "expected", d.Quorum.Expected)
		}
	}
	for _, h := range msgs.handovers {
		s.metrics.handoversReceived.Inc()
		s.log.Info("hand-over received", "from", h.From, "ips", h.IPs)
	}
	for _, r := range msgs.releases {
		if len(r.IPs) > 0 {
			s.log.Info("addresses released to this node", "from", r.From, "ips", r.IPs)
		}
	}
	if q, p := d.Quorum, s.decision.Quorum; q.OK != p.OK || q.Seen != p.Seen || q.Expected != p.Expected || q.Why != p.Why ||
		d.Settling != s.decision.Settling || d.TakeOver != s.decision.TakeOver || !slices.Equal(d.Waiting, s.decision.Waiting) {
		s.notifyStatus()
	}
	s.decision = d
	s.reportSelf(now, d)

	s.live = d.Live
	s.engine.SetLive(d.Live)
	s.engine.SetUnconfirmed(d.Unconfirmed)
	if d.TakeOver && !s.takeovers {
		s.engine.MarkWaitingDirty() // losing the right to take over changes nothing announced
	}
	s.takeovers = d.TakeOver
	s.metrics.setQuorum(d.TakeOver)

	s.engine.MarkDirty(d.Given)
	changes, changed := s.engine.Elect(now, d.TakeOver, d.Given)
	if changed {
		s.opts.L2.Set(s.engine.Desired())
	}
	// Published after the announcer has stopped what this node gave up:
	// the others may act on it at once (an excluded node, say), so it must
	// not answer any more by then.
	s.publish(takeover.Published{Quorum: d.Quorum.OK, Settling: d.Settling, Blocked: s.blockedSelf, Excluded: d.Excluded})
	yield := map[string][]netip.Addr{}
	var stopped []netip.Addr
	for _, c := range changes {
		if c.Start {
			s.log.Info("taking over address", "ip", c.IP, "services", keys(c.Services))
			continue
		}
		stopped = append(stopped, c.IP)
		s.log.Info("stopped announcing address", "ip", c.IP, "why", c.Why)
		stoppedEvents(s.opts.Events, s.opts.Node, c)
		if c.To != "" && c.To != s.opts.Node {
			yield[c.To] = append(yield[c.To], c.IP)
		}
	}
	s.guard.Stopped(stopped)
	for _, st := range s.opts.Inbox.takeL2() {
		s.onL2Change(st.IP, st.Interfaces)
	}
	// Released addresses this node announced already (kept while cut off or
	// stalled): clients may follow the node that released them, so announce
	// them again. Fresh takeovers burst on their own.
	again := slices.DeleteFunc(slices.Clone(d.Reannounce), func(ip netip.Addr) bool {
		return !s.engine.Announces(ip) || slices.ContainsFunc(changes, func(c Change) bool { return c.IP == ip })
	})
	if len(again) > 0 {
		s.opts.L2.Reannounce(again)
	}
	// Tell every new owner what this node yields to it, and every member
	// that just (re)appeared, even with nothing to yield, that it was seen.
	for _, n := range d.Greet {
		if _, ok := yield[n]; !ok {
			yield[n] = nil
		}
	}
	for to, ips := range yield {
		s.sendRelease(to, ips)
	}
}

// present are the speakers the API server shows running whose Node exists.
func (s *Speaker) present() []string {
	return slices.DeleteFunc(s.tracker.Present(), func(n string) bool { _, ok := s.nodes[n]; return !ok })
}

// checkDataPath works out which addresses this node cannot announce now
// (no interface would qualify). It runs when links or routes changed or the
// addresses did. It reports whether the node can now announce addresses it
// could not (it must then settle as a returning node). The caller holds s.mu.
func (s *Speaker) checkDataPath(linksChanged bool) (regained bool) {
	if s.blockedSet && !linksChanged && s.engine.IPVersion() == s.blockedAt {
		return false
	}
	s.blockedSet, s.blockedAt = true, s.engine.IPVersion()
	reqs := s.engine.Placements()
	ok := s.opts.L2.Placeable(reqs)
	ips := make([]netip.Addr, len(reqs))
	blocked := make([]bool, len(reqs))
	var examples []netip.Addr
	for i, r := range reqs {
		ips[i], blocked[i] = r.IP, !ok[i]
		if blocked[i] && len(examples) < 5 {
			examples = append(examples, r.IP)
		}
	}
	b := takeover.BlockedOf(ips, blocked, takeover.MaxBlockedRanges)
	if b.Equal(s.blockedSelf) {
		return false
	}
	regained = !b.Covers(s.blockedSelf)
	switch {
	case b.Empty():
		s.log.Info("this node can announce every Layer 2 address it is selected for again")
	default:
		s.log.Warn("this node cannot announce some Layer 2 addresses (no usable interface): the next nodes announce them", "examples", examples, "all", b.All)
	}
	s.blockedSelf = b
	return regained
}

// publish tells the other speakers, through memberlist metadata, whether
// this node sees a majority and what it cannot announce, when that
// changed. The caller holds s.mu.
func (s *Speaker) publish(p takeover.Published) {
	if s.publishedSet && p.Equal(s.published) {
		return
	}
	data, err := p.MarshalBinary()
	if err == nil {
		err = s.opts.Members.SetMeta(data)
	}
	if err != nil {
		s.retryLater("publish this node's state to the other speakers", err)
		return
	}
	s.published, s.publishedSet = p, true
}

// readPublished reads what the other members published (into s.others)
// and hands the addresses each cannot announce to the engine, with this
// node's own. It returns the members that can now announce addresses they
// could not (they may rank first again). The caller holds s.mu.
func (s *Speaker) readPublished() (grown []string) {
	metas := s.opts.Members.Metas()
	next := make(map[string]takeover.Published, len(metas))
	for n, raw := range metas {
		if n == s.opts.Node {
			continue
		}
		p, known := s.others[n]
		if !known || !bytes.Equal(raw, s.metaRaw[n]) {
			parsed, err := takeover.ParsePublished(raw)
			if err != nil {
				s.retryLater("read "+n+"'s published state", fmt.Errorf("%w (treated as not ready, blocking nothing)", err))
			}
			if known && !parsed.Blocked.Covers(p.Blocked) {
				grown = append(grown, n)
			}
			p = parsed
			s.metaRaw[n] = raw
		}
		next[n] = p
	}
	for n := range s.metaRaw {
		if _, ok := metas[n]; !ok {
			delete(s.metaRaw, n)
		}
	}
	s.others = next
	blocked := make(map[string]takeover.Blocked, len(next)+1)
	for n, p := range next {
		blocked[n] = p.Blocked
	}
	blocked[s.opts.Node] = s.blockedSelf
	s.engine.SetBlocked(blocked)
	slices.Sort(grown)
	return grown
}

// maxProbed caps how many live members a probe asks: a random sample that
// large tells a majority from a minority well enough in a big cluster,
// and every member is asked in clusters of up to that many.
const maxProbed = 32

// probe pings the live members (a sample of them) and the members that
// failed since the last probe, in the background, and hands the result to
// the loop through the inbox. The caller holds s.mu.
func (s *Speaker) probe(now time.Time, alive, suspects, failed []string) {
	others := slices.DeleteFunc(slices.Clone(alive), func(n string) bool {
		return n == s.opts.Node || slices.Contains(suspects, n)
	})
	asked := slices.Clone(others)
	if len(asked) > maxProbed {
		rand.Shuffle(len(asked), func(i, j int) { asked[i], asked[j] = asked[j], asked[i] })
		asked = asked[:maxProbed]
	}
	s.probing = true
	go func() {
		answered := s.opts.Members.Ping(append(slices.Clone(asked), failed...))
		r := takeover.Reach{At: now, Live: len(others), Asked: len(asked)}
		for _, n := range answered {
			if slices.Contains(failed, n) {
				r.Revived = append(r.Revived, n)
			} else {
				r.Answered++
			}
		}
		s.log.Debug("probed the speakers before taking over", "asked", len(asked), "answered", r.Answered, "of", len(others), "failed", failed, "revived", r.Revived)
		s.opts.Inbox.reached(r)
	}()
}

// sendRelease sends a release message without blocking the loop.
func (s *Speaker) sendRelease(to string, ips []netip.Addr) {
	msg := members.Message{Kind: members.KindRelease, From: s.opts.Node, IPs: ips}.Marshal()
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
