package bgp

import (
	"context"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// BFD runs only on an Established session. gobgp's BFD (v4.8.0,
// pkg/server/bfd_peer.go) resets the BGP session whenever its BFD session
// fails, also one that was never Up (expiry in Init), and while in Init it
// ignores a router that has replaced its BFD session (the new session's
// discriminator differs from the one it bound). FRR's bgpd replaces its
// BFD session for a neighbor when the BGP session comes up and the local
// address becomes known: the first session of a configured neighbor,
// every session of a listen-range neighbor. The old session's last Down
// then either hits gobgp's Up session or binds its Init session to a
// session that is gone, and gobgp resets the new BGP session (at once, or
// on the Init expiry 3 s later). So gobgp is given a peer's BFD settings
// only once its BGP session has been up for bfdSettle, and they are taken
// away when it goes down: BFD always starts against the router's BFD
// session for the current BGP session, and never while BGP is down, where
// a reset from gobgp's BFD would be queued and end the next session.
// Once BFD is Up, a failure resets the session as before.

// bfdSettle is how long a session must have been up before its BFD
// starts: a second, ample time for the router to replace its BFD session,
// or the detection time if longer, so that the router's BFD session of an
// earlier BGP session has timed out and does not see the new one as a
// failure of its own.
func bfdSettle(b *BFD) time.Duration {
	rx, tx := orDefault(b.ReceiveInterval, defaultBFDInterval), orDefault(b.TransmitInterval, defaultBFDInterval)
	mult := time.Duration(b.DetectMultiplier)
	if mult == 0 {
		mult = defaultBFDMult
	}
	return max(time.Second, mult*max(rx, tx))
}

// bfdSessionUp schedules BFD for ps, whose session just came up.
func (e *instance) bfdSessionUp(ps *peerState) {
	if ps.cfg.BFD == nil || ps.bfdOn {
		return
	}
	ps.bfdAt = time.Now().Add(bfdSettle(ps.cfg.BFD))
	e.armBFDTimer()
}

// bfdSessionDown stops BFD for ps, whose session is no longer up.
func (e *instance) bfdSessionDown(ps *peerState) {
	ps.bfdAt = time.Time{}
	if !ps.bfdOn {
		return
	}
	if err := e.setBFD(ps, false); err != nil {
		e.log.Error("BFD not stopped", "peer", ps.cfg.Name, "err", err)
		return
	}
	e.log.Debug("BFD stopped with the session", "peer", ps.cfg.Name)
}

// startDueBFD starts BFD on every session that has been up long enough.
func (e *instance) startDueBFD() {
	now := time.Now()
	for name, ps := range e.peers {
		if ps.bfdAt.IsZero() || ps.bfdAt.After(now) {
			continue
		}
		ps.bfdAt = time.Time{}
		if !e.status[name].Established() {
			continue
		}
		if err := e.setBFD(ps, true); err != nil {
			st := e.status[name]
			st.LastError = "BFD not started: " + err.Error()
			e.status[name] = st
			e.log.Error("BFD not started", "peer", name, "err", err)
			continue
		}
		e.log.Info("BFD started", "peer", name, "address", ps.cfg.Address)
	}
	e.armBFDTimer()
}

// setBFD gives gobgp the peer's settings with or without BFD. gobgp
// applies a change of BFD alone without touching the BGP session.
func (e *instance) setBFD(ps *peerState, on bool) error {
	_, err := e.s.UpdatePeer(context.Background(), &api.UpdatePeerRequest{Peer: apiPeer(ps.cfg, ps.vrf, on)})
	if err == nil {
		ps.bfdOn = on
	}
	return err
}

// armBFDTimer wakes Run at the earliest scheduled BFD start.
func (e *instance) armBFDTimer() {
	var next time.Time
	for _, ps := range e.peers {
		if !ps.bfdAt.IsZero() && (next.IsZero() || ps.bfdAt.Before(next)) {
			next = ps.bfdAt
		}
	}
	if next.IsZero() {
		return
	}
	wait := time.Until(next)
	if e.bfdTimer == nil {
		e.bfdTimer = time.AfterFunc(wait, func() {
			select {
			case e.bfdDue <- struct{}{}:
			default:
			}
		})
		return
	}
	e.bfdTimer.Reset(wait)
}

func (e *instance) stopBFDTimer() {
	if e.bfdTimer != nil {
		e.bfdTimer.Stop()
	}
}
