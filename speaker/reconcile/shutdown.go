package reconcile

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/heraldlb/herald/speaker/members"
)

// shutdown stops the node gracefully, in the order that keeps clients
// served: it stops answering for its Layer 2 addresses and at once tells
// each address's successor (the next node in the ranking) to take it over,
// which it does without waiting for failure detection; it tells the other
// members it is leaving (an empty hand-over) and leaves memberlist.
// Meanwhile the BGP router stops and withdraws the routes: the routers'
// other next hops need no hand-over, so the withdrawal does not wait for
// it (the hand-over takes 100-150 ms).
func (s *Speaker) shutdown(runs *components) {
	begin := time.Now()
	bgpStopped := make(chan bool, 1)
	go func() { bgpStopped <- runs.bgp.stop(5 * time.Second) }()
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

	s.handOver(live, successors)
	for _, c := range stops {
		c.Why = "this speaker is stopping"
		if next := nextOf[c.IP]; next != "" {
			c.Why += "; handed over to " + next
		}
		stoppedEvents(s.opts.Events, s.opts.Node, c)
	}
	if err := s.opts.Members.Leave(s.opts.HandoverTimeout); err != nil {
		s.log.Warn("leaving the speakers' cluster", "err", err)
	}
	// The others stop expecting this speaker at once (a two-node cluster
	// can then take over new addresses without waiting for the Lease).
	runs.presence.stop(time.Second)
	if s.opts.Presence != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.HandoverTimeout)
		if err := s.opts.Presence.Release(ctx); err != nil {
			s.log.Warn("speaker Lease not deleted", "err", err)
		}
		cancel()
	}
	handedOver := time.Since(begin)
	if !<-bgpStopped {
		s.log.Warn("BGP router did not stop in time")
	}
	runs.l2.stop(5 * time.Second)
	runs.members.stop(5 * time.Second)
	s.mu.Lock()
	s.live = nil
	s.mu.Unlock()
	s.notifyStatus()
	s.log.Info("stopped", "handedOverIn", handedOver.Round(time.Millisecond).String(), "addresses", len(stops), "after", time.Since(begin).Round(time.Millisecond).String())
}

// handOver sends every other live member a hand-over message, in
// parallel: the successors with their addresses, the others empty, so that
// no one counts this node as failed.
func (s *Speaker) handOver(live []string, successors map[string][]netip.Addr) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.HandoverTimeout)
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
		s.log.Warn("hand-over messages still pending after the timeout", "timeout", s.opts.HandoverTimeout.String())
	}
}
