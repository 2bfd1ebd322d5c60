package bgp

import (
	"context"
	"errors"
	"time"

	api "github.com/osrg/gobgp/v4/api"

	"github.com/heraldlb/herald/internal/poll"
)

// gobgp (v4.8) runs a session's "now Established" work (the dump of the
// table to the new session, then the Established event we watch) before
// its FSM records the state. A path added or withdrawn in between is lost:
// its propagation sees the session not up, and the dump has already run.
// Two rules close that window (found when a dynamic-AS peer's paths,
// released on the Established event, never reached the router):
//   - the VRF of a session that is opening (OpenSent, OpenConfirm) is not
//     changed; the change is deferred, and sent as a difference once the
//     FSM says Established, or at once if the session fails instead;
//   - on the Established event Run waits until the FSM says so too (it
//     follows the event by microseconds) before it releases anything.

// errFSMNotYet is fsmEstablished's "still opening".
var errFSMNotYet = errors.New("gobgp's FSM not Established yet")

// fsmState asks gobgp for the state its FSM is in for ps's neighbor now.
func (e *instance) fsmState(ps *peerState) api.PeerState_SessionState {
	state := api.PeerState_SESSION_STATE_UNSPECIFIED
	_ = e.s.ListPeer(context.Background(), &api.ListPeerRequest{Address: ps.cfg.Address.String()}, func(p *api.Peer) {
		state = p.GetState().GetSessionState()
	})
	return state
}

// sessionOpening reports whether ps's VRF must not change now (see above).
func (e *instance) sessionOpening(ps *peerState) bool {
	switch e.fsmState(ps) {
	case api.PeerState_SESSION_STATE_OPENSENT, api.PeerState_SESSION_STATE_OPENCONFIRM:
		return true
	}
	return false
}

// awaitFSMEstablished waits, at most a second, until gobgp's FSM for ps
// says Established after the Established event. False: it did not (the
// session failed again at once); the next session's dump covers the paths.
func (e *instance) awaitFSMEstablished(ps *peerState) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := poll.Until(ctx, time.Millisecond, func() error {
		switch e.fsmState(ps) {
		case api.PeerState_SESSION_STATE_ESTABLISHED:
			return nil
		case api.PeerState_SESSION_STATE_OPENSENT, api.PeerState_SESSION_STATE_OPENCONFIRM:
			return errFSMNotYet
		}
		return poll.Stop(errors.New("session no longer opening"))
	})
	if err != nil {
		e.log.Debug("BGP session not Established in gobgp's FSM after its event", "peer", ps.cfg.Name, "err", err)
		return false
	}
	return true
}

// sendDeferred sends a change deferred while ps's session was opening, as
// the difference between what the VRF holds and what is wanted now; still
// opening, it stays deferred.
func (e *instance) sendDeferred(ps *peerState) {
	if ps.deferred {
		ps.deferred = false
		e.syncPaths(ps, ps.want)
	}
}
