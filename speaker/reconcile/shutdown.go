package reconcile

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/heraldlb/herald/speaker/members"
)

// shutdown stops the node gracefully within Options.ShutdownTimeout, in
// the order that keeps clients served: it stops answering for its Layer 2 addresses and at once tells
// each address's successor (the next node in the ranking) to take it over,
// which it does without waiting for failure detection; it tells the other
// members it is leaving (an empty hand-over) and leaves memberlist.
// Meanwhile the BGP router stops and withdraws the routes: the routers'
// other next hops need no hand-over, so the withdrawal does not wait for
// it (the hand-over takes 100-150 ms).
func (s *Speaker) shutdown(runs *components) {
	begin := time.Now()
	deadline := begin.Add(s.opts.ShutdownTimeout)
	// left is the time until the deadline minus what the later steps need.
	left := func(reserve time.Duration) time.Duration {
		return max(time.Until(deadline)-reserve, 100*time.Millisecond)
	}
	bgpStopped := make(chan bool, 1)
	go func() { bgpStopped <- runs.bgp.stop(left(time.Second)) }()
	s.mu.Lock()
	successors := s.engine.Successors()
	nextOf := map[netip.Addr]string{}
	for node, ips := range successors {
		for _, ip := range ips {
			nextOf[ip] = node
		}
	}
	stops := s.engine.StopAll("")
	s.opts.L2.Set(nil)
	live := slices.Clone(s.live)
	s.mu.Unlock()

	s.handOver(live, successors, min(s.opts.HandoverTimeout, left(time.Second)))
	for _, c := range stops {
		c.Why = "this speaker is stopping"
		if next := nextOf[c.IP]; next != "" {
			c.Why += "; handed over to " + next
		}
		stoppedEvents(s.opts.Events, s.opts.Node, c)
	}
	if err := s.opts.Members.Leave(min(s.opts.HandoverTimeout, left(time.Second))); err != nil {
		s.log.Warn("leaving the speakers' cluster", "err", err)
	}
	handedOver := time.Since(begin)
	// The others stop expecting this speaker at once (a two-node cluster
	// can then take over new addresses without waiting for the Lease).
	runs.presence.stop(left(time.Second))
	if s.opts.Presence != nil {
		ctx, cancel := context.WithTimeout(context.Background(), min(s.opts.HandoverTimeout, left(time.Second)))
		if err := s.opts.Presence.Release(ctx); err != nil {
			s.log.Warn("speaker Lease not deleted", "err", err)
		}
		cancel()
	}
	if !<-bgpStopped {
		// The kernel closes the sessions when the process exits: the
		// routers drop this node's routes then, without a Cease.
		s.log.Warn("the BGP router did not stop within the shutdown timeout; exiting anyway", "timeout", s.opts.ShutdownTimeout.String())
	}
	runs.l2.stop(left(0))
	runs.members.stop(left(0))
	s.mu.Lock()
	s.live = nil
	s.mu.Unlock()
	s.notifyStatus()
	s.log.Info("stopped", "handedOverIn", handedOver.Round(time.Millisecond).String(), "addresses", len(stops), "after", time.Since(begin).Round(time.Millisecond).String())
}

// handOver sends every other live member a hand-over message, in
// parallel: the successors with their addresses, the others empty, so that
// no one counts this node as failed.
func (s *Speaker) handOver(live []string, successors map[string][]netip.Addr, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, node := range live {
		if node == s.opts.Node {
			continue
		}
		msg := members.Message{Kind: members.KindHandover, From: s.opts.Node, IPs: successors[node]}.Marshal()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.opts.Members.Send(node, msg); err != nil {
				s.log.Warn("hand-over not delivered", "to", node, "err", err)
				return
			}
			s.metrics.handoversSent.Inc()
			if ips := successors[node]; len(ips) > 0 {
				s.log.Info("handed addresses over", "to", node, "ips", ips)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("hand-over messages still pending after the timeout", "timeout", timeout.String())
	}
}
