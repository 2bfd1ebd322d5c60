package bgp

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
)

// forwardPeerEvent runs on gobgp's watcher goroutine and hands state
// changes to Run's goroutine.
// It gives up once the watch has ended (the server is stopping).
func (e *instance) forwardPeerEvent(watch context.Context, ev *apiutil.WatchEventMessage_PeerEvent, t time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	pe := peerEvent{
		addr:   ev.Peer.State.NeighborAddress,
		local:  ev.Peer.Transport.LocalAddress,
		peerAS: ev.Peer.State.PeerASN,
		state:  sessionState(ev.Peer.State.SessionState),
		reason: ev.Peer.State.DisconnectMessage,
		time:   t,
	}
	select {
	case e.events <- pe:
	case <-watch.Done():
	}
}

// reportConnErr runs on gobgp's goroutines (through the log adapter).
func (e *instance) reportConnErr(peer netip.Addr, err string) {
	e.connMu.Lock()
	e.connErrs[peer] = err
	e.connMu.Unlock()
}

func (e *instance) takeConnErr(peer netip.Addr) string {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	err := e.connErrs[peer]
	delete(e.connErrs, peer)
	return err
}

// sessionLocalAddress asks gobgp for the local address of an established
// session (its peer events carry only the configured one).
func (e *instance) sessionLocalAddress(peer netip.Addr) netip.Addr {
	var local netip.Addr
	_ = e.s.ListPeer(context.Background(), &api.ListPeerRequest{Address: peer.String()}, func(p *api.Peer) {
		if a, err := netip.ParseAddr(p.GetTransport().GetLocalAddress()); err == nil && !a.IsUnspecified() {
			local = a.Unmap()
		}
	})
	return local
}

// benignReasons are state-change reasons that are not failures.
var benignReasons = []string{"", "unknown", "dying", "new-connection", "open-msg-received", "open-msg-negotiated", "idle-hold-timer-expired"}

// onPeerEvent records a session state change and reports ups and downs.
func (e *instance) onPeerEvent(ev peerEvent) {
	name, ok := e.byAddr[ev.addr.Unmap()]
	if !ok {
		return // a peer removed since; its last event is of no interest
	}
	ps, st := e.peers[name], e.status[name]
	defer e.sendDeferred(ps)
	was := st.State
	if ev.state == was {
		return
	}
	st.State, st.Since = ev.state, ev.time
	if !slices.Contains(benignReasons, ev.reason) {
		st.LastError = ev.reason
	}
	if ev.state == StateEstablished {
		e.awaitFSMEstablished(ps)
	}
	if ev.state == StateEstablished && !e.acceptSession(ps, &st, ev.peerAS) {
		e.status[name] = st
		return
	}
	if ev.state == StateEstablished {
		st.LastError = ""
		e.takeConnErr(ev.addr)
		local := ev.local.Unmap()
		if !local.IsValid() || local.IsUnspecified() {
			local = e.sessionLocalAddress(ev.addr)
		}
		if local.IsValid() && local != ps.local {
			ps.local = local
			e.resolveCrossNextHop(ps)
			if ps.crossDirty {
				e.syncPaths(ps, ps.want)
			}
		}
		if ps.crossErr != nil {
			st.LastError = ps.crossErr.Error()
		}
	}
	e.status[name] = st
	up, down := ev.state == StateEstablished, was == StateEstablished
	if up {
		e.bfdSessionUp(ps)
	} else {
		e.bfdSessionDown(ps)
		e.sessionEnded(ps)
	}
	if !up && !down {
		return
	}
	e.report(Event{Peer: name, Address: ev.addr.Unmap(), Up: up, State: ev.state, Reason: ev.reason, Time: ev.time})
}

// report logs a session that went up or down and passes it to OnEvent.
func (e *instance) report(ev Event) {
	if ev.Up {
		e.log.Info("BGP session up", "peer", ev.Peer, "address", ev.Address, "local", e.peers[ev.Peer].local)
	} else {
		e.log.Warn("BGP session down", "peer", ev.Peer, "address", ev.Address, "reason", ev.Reason)
	}
	if e.r.opts.OnEvent != nil {
		e.r.opts.OnEvent(ev)
	}
}

// refresh reads counters, connect errors and BFD state from gobgp: one
// call each, proportional to the number of peers.
func (e *instance) refresh() {
	if e.s == nil {
		return
	}
	ctx := context.Background()
	type counters struct {
		updates   uint64
		received  int
		overLimit bool // shut down for its received-prefix limit
	}
	seen := map[netip.Addr]counters{}
	_ = e.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		c := counters{updates: p.GetState().GetMessages().GetSent().GetUpdate(),
			overLimit: p.GetState().GetAdminState() == api.PeerState_ADMIN_STATE_PFX_CT}
		for _, af := range p.GetAfiSafis() {
			c.received += int(af.GetState().GetReceived())
		}
		seen[addr] = c
	})
	bfd := map[netip.Addr]string{}
	e.s.ListBfdPeer(ctx, func(addr string, st *api.BfdPeerState) {
		if a, err := netip.ParseAddr(addr); err == nil {
			bfd[a.Unmap()] = bfdState(st.GetSessionState())
		}
	})
	for name, ps := range e.peers {
		st := e.status[name]
		if c, ok := seen[ps.cfg.Address]; ok {
			// gobgp's counters restart with each session; ours keep counting.
			if c.updates >= ps.lastUpdates {
				st.UpdatesSent += c.updates - ps.lastUpdates
			} else {
				st.UpdatesSent += c.updates
			}
			ps.lastUpdates = c.updates
			st.Received = c.received
		}
		if ps.cfg.BFD != nil {
			st.BFD = "down"
			if s, ok := bfd[ps.cfg.Address]; ok {
				st.BFD = s
			}
		}
		if err := e.takeConnErr(ps.cfg.Address); err != "" && st.State != StateEstablished {
			st.LastError = connErrText(err, ps.cfg.Password != "")
		}
		e.checkPrefixLimit(ps, &st, seen[ps.cfg.Address].overLimit, time.Now())
		e.status[name] = st
	}
}

// connErrText adds what a silent peer most often means.
func connErrText(err string, md5 bool) string {
	if md5 && strings.Contains(err, "i/o timeout") {
		return err + " (no answer: with TCP MD5 on, a password mismatch looks like this)"
	}
	return err
}

// publish hands a snapshot to Status.
func (e *instance) publish() {
	for name, ps := range e.peers {
		st := e.status[name]
		st.Advertised = 0
		if st.State == StateEstablished {
			st.Advertised = len(ps.inGobgp)
		}
		e.status[name] = st
	}
	e.r.publish(e.status)
}
