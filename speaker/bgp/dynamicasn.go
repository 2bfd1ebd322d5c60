package bgp

import (
	"context"
	"fmt"

	api "github.com/osrg/gobgp/v4/api"
)

// A peer with DynamicExternal is given to gobgp with peer AS 0, which
// makes gobgp accept any AS in the peer's OPEN and treat the session as
// iBGP or eBGP by that AS (pkg/server/fsm.go). gobgp has no hook to refuse
// the OPEN itself, so the check runs when the session is established: until
// it has passed, the peer's VRF holds no path, so nothing is sent to a peer
// that turns out to be in the node's own AS; such a session is reset with
// the reason, and gobgp retries after the connect time, as a router would.
// Every time the session goes down the paths leave the VRF again (nothing
// is sent then), so the next session is checked before it gets any.

// checkPeerAS says whether a session whose peer sent AS got is acceptable.
// It is pure.
func checkPeerAS(p Peer, got uint32) error {
	switch {
	case p.DynamicASN != DynamicExternal:
		return nil
	case got == 0:
		return fmt.Errorf("the peer's AS is unknown")
	case got == p.MyASN:
		return fmt.Errorf("the peer announced AS %d, the node's own AS: dynamic ASN external accepts eBGP peers only", got)
	}
	return nil
}

// held reports whether the peer's paths wait for its AS to be checked.
func (ps *peerState) held() bool {
	return ps.cfg.DynamicASN == DynamicExternal && !ps.asChecked
}

// peerASN is the AS a peer is expected to have; 0 when it is learnt.
func (p Peer) peerASN() uint32 {
	switch p.DynamicASN {
	case DynamicInternal:
		return p.MyASN
	case DynamicExternal:
		return 0
	}
	return p.PeerASN
}

// acceptSession runs when ps's session comes up with a peer of AS got. It
// records the AS, and either releases the peer's paths or resets the
// session and says why (then false: the session does not count as up).
func (e *instance) acceptSession(ps *peerState, st *PeerStatus, got uint32) bool {
	if ps.cfg.DynamicASN == "" {
		st.PeerASN = ps.cfg.PeerASN
		return true
	}
	if got == 0 {
		got = e.sessionPeerAS(ps)
	}
	st.PeerASN = got
	if err := checkPeerAS(ps.cfg, got); err != nil {
		req := &api.ResetPeerRequest{Address: ps.cfg.Address.String(), Communication: err.Error()}
		if rerr := e.s.ResetPeer(context.Background(), req); rerr != nil {
			e.log.Error("BGP session not reset", "peer", ps.cfg.Name, "err", rerr)
		}
		st.State, st.LastError = StateIdle, err.Error()
		e.log.Warn("BGP session refused", "peer", ps.cfg.Name, "peerASN", got, "reason", err)
		return false
	}
	if ps.held() {
		ps.asChecked = true
		e.syncPaths(ps, ps.want)
	}
	return true
}

// sessionEnded takes a dynamic external peer's paths out of its VRF until
// the next session has been checked.
func (e *instance) sessionEnded(ps *peerState) {
	if ps.cfg.DynamicASN != DynamicExternal || !ps.asChecked {
		return
	}
	ps.asChecked = false
	e.syncPaths(ps, ps.want)
}

// sessionPeerAS asks gobgp for the AS of a session's peer.
func (e *instance) sessionPeerAS(ps *peerState) uint32 {
	var asn uint32
	_ = e.s.ListPeer(context.Background(), &api.ListPeerRequest{Address: ps.cfg.Address.String()}, func(p *api.Peer) {
		asn = p.GetState().GetPeerAsn()
	})
	return asn
}
