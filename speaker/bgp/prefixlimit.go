package bgp

import (
	"context"
	"fmt"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// Herald imports no routes (rejectReceivedRoutes), but gobgp keeps every
// path a peer sends in the session's Adj-RIB-In all the same, so a router
// that leaks a full table would grow the speaker's memory without bound.
// Every session therefore has a limit on the prefixes it may receive per
// address family. A peer that sends more gets a Cease NOTIFICATION
// (maximum number of prefixes reached, RFC 4486), the session stays down
// for PrefixLimitRetry and then reconnects; the peer's status says why.
const (
	// DefaultMaxReceivedPrefixes leaves room for a router that sends back
	// every Service address of the cluster (routes it learned from the
	// other nodes, which the node discards as its own AS is in their path)
	// at 10,000 Services per family, and bounds what a session costs.
	DefaultMaxReceivedPrefixes = 20000
	// PrefixLimitRetry is how long a session that exceeded its limit stays down.
	PrefixLimitRetry = time.Minute
)

func (p Peer) maxReceivedPrefixes() uint32 {
	if p.MaxReceivedPrefixes == 0 {
		return DefaultMaxReceivedPrefixes
	}
	return p.MaxReceivedPrefixes
}

// prefixLimit is the limit gobgp enforces for family on p's session.
func prefixLimit(p Peer, f *api.Family) *api.PrefixLimit {
	return &api.PrefixLimit{Family: f, MaxPrefixes: p.maxReceivedPrefixes()}
}

// prefixLimitText is what the status says while a session is held down.
func prefixLimitText(p Peer, retry time.Time) string {
	return fmt.Sprintf("the peer sent more than %d prefixes of one address family, the limit per session (Herald imports no routes: "+
		"configure the router to send this node none); the session reconnects at %s", p.maxReceivedPrefixes(), retry.UTC().Format(time.TimeOnly))
}

// checkPrefixLimit follows a session that gobgp shut down for its prefix
// limit (overLimit, from the peer's admin state): it reports why, and
// re-enables the peer once PrefixLimitRetry has passed.
func (e *instance) checkPrefixLimit(ps *peerState, st *PeerStatus, overLimit bool, now time.Time) {
	switch {
	case !overLimit:
		ps.limitRetryAt = time.Time{}
	case ps.limitRetryAt.IsZero():
		ps.limitRetryAt = now.Add(e.r.opts.prefixLimitRetry())
		st.LastError = prefixLimitText(ps.cfg, ps.limitRetryAt)
		e.log.Warn("BGP session shut down: too many prefixes received", "peer", ps.cfg.Name, "limit", ps.cfg.maxReceivedPrefixes(), "retryAt", ps.limitRetryAt)
	case !now.Before(ps.limitRetryAt):
		if err := e.s.EnablePeer(context.Background(), &api.EnablePeerRequest{Address: ps.cfg.Address.String()}); err != nil {
			e.log.Error("BGP peer not re-enabled after its prefix limit", "peer", ps.cfg.Name, "err", err)
			return
		}
		ps.limitRetryAt = time.Time{}
		e.log.Info("BGP session retried after its prefix limit", "peer", ps.cfg.Name)
	default:
		st.LastError = prefixLimitText(ps.cfg, ps.limitRetryAt)
	}
}

func (o Options) prefixLimitRetry() time.Duration {
	if o.PrefixLimitRetry > 0 {
		return o.PrefixLimitRetry
	}
	return PrefixLimitRetry
}
