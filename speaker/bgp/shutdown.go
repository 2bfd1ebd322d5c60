package bgp

import (
	"context"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
)

// stopServer ends gobgp. With withdraw, it first withdraws the paths of
// every peer without graceful restart and waits (up to FlushTimeout) until
// those UPDATEs have left, then closes every session: a Cease NOTIFICATION
// for those peers, a plain close for graceful-restart peers so that they
// keep this node's routes for the restart time. It returns once gobgp has
// written the NOTIFICATIONs and closed the connections.
func (e *instance) stopServer(withdraw bool) {
	if e.s == nil {
		return
	}
	ctx := context.Background()
	anyGR := false
	if withdraw {
		sent := e.updatesSent()
		var waitFor []netip.Addr
		for _, name := range sortedNames(e.peers) {
			ps := e.peers[name]
			if ps.cfg.GracefulRestart {
				anyGR = true
				continue
			}
			if len(ps.inGobgp) == 0 {
				continue
			}
			del := make([]*apiutil.Path, 0, len(ps.inGobgp))
			for prefix := range ps.inGobgp {
				if wp, err := apiWithdrawal(prefix); err == nil {
					del = append(del, wp)
				}
			}
			if err := e.s.DeletePath(apiutil.DeletePathRequest{VRFID: ps.vrf, Paths: del}); err != nil {
				e.log.Error("BGP paths not withdrawn", "peer", name, "err", err)
				continue
			}
			if e.status[name].State == StateEstablished {
				waitFor = append(waitFor, ps.cfg.Address)
			}
		}
		e.waitFlushed(sent, waitFor)
	}
	e.stopping.Store(true)
	if err := e.s.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: anyGR}); err != nil {
		e.log.Error("BGP server did not stop cleanly", "err", err)
	}
	e.s.Stop() // ends the BFD server too
	e.stopW()
	e.s = nil
	for name, ps := range e.peers {
		st := e.status[name]
		if st.State == StateEstablished {
			st.State, st.Since = StateIdle, time.Now()
		}
		e.status[name] = st
		ps.inGobgp, ps.local, ps.crossNH = pathSet{}, netip.Addr{}, netip.Addr{}
	}
	e.peers = map[string]*peerState{}
	e.byAddr = map[netip.Addr]string{}
	e.connMu.Lock()
	clear(e.connErrs)
	e.connMu.Unlock()
	e.log.Info("BGP server stopped")
}

// updatesSent reads gobgp's UPDATE counter of every neighbor.
func (e *instance) updatesSent() map[netip.Addr]uint64 {
	m := map[netip.Addr]uint64{}
	_ = e.s.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		if a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil {
			m[a] = p.GetState().GetMessages().GetSent().GetUpdate()
		}
	})
	return m
}

// waitFlushed waits until every listed neighbor has sent UPDATEs since
// before and its counter has been still for a moment (withdrawals of many
// prefixes take several messages), or FlushTimeout passes. gobgp writes
// a NOTIFICATION straight to the socket, past its queue of UPDATEs, so
// without this wait the withdrawals could be cut off.
func (e *instance) waitFlushed(before map[netip.Addr]uint64, peers []netip.Addr) {
	if len(peers) == 0 {
		return
	}
	const still = 10 * time.Millisecond
	deadline := time.Now().Add(e.r.opts.FlushTimeout)
	last := map[netip.Addr]uint64{}
	lastChange := time.Now()
	for time.Now().Before(deadline) {
		now := e.updatesSent()
		done := true
		for _, a := range peers {
			if now[a] != last[a] {
				last[a] = now[a]
				lastChange = time.Now()
			}
			if now[a] <= before[a] {
				done = false
			}
		}
		if done && time.Since(lastChange) >= still {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	e.log.Warn("BGP withdrawals not confirmed sent before closing", "timeout", e.r.opts.FlushTimeout)
}
