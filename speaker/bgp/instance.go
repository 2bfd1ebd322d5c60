package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/heraldlb/herald/speaker/netif"
)

// instance owns the gobgp server and everything applied to it. Only Run's
// goroutine touches it, except for the fields marked otherwise.
//
// Each peer gets its own VRF inside the one gobgp server, and the peer's
// neighbor is bound to that VRF: gobgp then sends the neighbor exactly the
// paths of its VRF, with the attributes they were added with. So per-peer
// paths and per-peer attributes are plain AddPath/DeletePath calls on that
// VRF, with no policies, no soft resets and work proportional to the
// change; one server means native BFD works for every peer.
type instance struct {
	r      *Router
	log    *slog.Logger
	s      *server.BgpServer
	stopW  context.CancelFunc // ends the peer-event watch
	events chan peerEvent
	// bfdDue wakes Run when a session's BFD is due to start (bfdgate.go).
	bfdDue   chan struct{}
	bfdTimer *time.Timer

	routerID   netip.Addr
	listenPort uint16
	// last is the latest Set, re-applied when an unnumbered peer's router
	// changes (linklocal.go).
	last *snapshot
	ll   linkLocal
	// paths are the desired paths by peer name, running or not: the latest
	// Set's, with the Updates since applied in place.
	paths    map[string]pathSet
	peers    map[string]*peerState
	byAddr   map[netip.Addr]string
	status   map[string]PeerStatus
	rejected map[string]bool // peers whose LastError is a configuration error
	nextID   uint32

	// Written by gobgp's goroutines through the log adapter.
	connMu   sync.Mutex
	connErrs map[netip.Addr]string
	stopping atomic.Bool
}

// peerState is one running peer.
type peerState struct {
	cfg Peer
	vrf string
	// want is what Set and Update asked for (the instance's paths entry for
	// the peer); inGobgp what the VRF holds now (want minus cross-family
	// paths whose next hop is not known yet). They never share a map.
	want, inGobgp pathSet
	// local is the session's local address once it was up; crossNH the
	// next hop for paths of the other family derived from it.
	local      netip.Addr
	crossNH    netip.Addr
	crossErr   error
	crossDirty bool
	// lastUpdates is gobgp's UPDATE counter at the last refresh.
	lastUpdates uint64
	// bfdOn says gobgp runs BFD for the neighbor; bfdAt is when it is due
	// to start (zero: not scheduled). See bfdgate.go.
	bfdOn bool
	bfdAt time.Time
	// limitRetryAt is when a session gobgp shut down for its prefix limit
	// is re-enabled (zero: it is not down for that); see prefixlimit.go.
	limitRetryAt time.Time
	// asChecked: the AS of a dynamic external peer's session was checked
	// (dynamicasn.go).
	asChecked bool
	// deferred: a change of the VRF waits for the session to finish
	// opening (opening.go).
	deferred bool
}

type peerEvent struct {
	addr   netip.Addr
	local  netip.Addr
	peerAS uint32
	state  SessionState
	reason string
	time   time.Time
}

func newInstance(r *Router) *instance {
	return &instance{
		r:        r,
		log:      r.log,
		events:   make(chan peerEvent, 1024),
		bfdDue:   make(chan struct{}, 1),
		peers:    map[string]*peerState{},
		byAddr:   map[netip.Addr]string{},
		status:   map[string]PeerStatus{},
		rejected: map[string]bool{},
		connErrs: map[netip.Addr]string{},
		ll:       linkLocal{log: r.log, readNeighbors: readNeighbors},
	}
}

// apply converges to d.
func (e *instance) apply(ctx context.Context, d *snapshot) {
	if err := e.ensureServer(ctx, d); err != nil {
		e.log.Error("BGP server not started", "err", err)
		for _, p := range d.peers {
			st := e.status[p.Name]
			st.Name, st.Address, st.LastError = p.Name, p.Address, err.Error()
			e.rejected[p.Name] = true
			if st.State == "" {
				st.State = StateIdle
			}
			e.status[p.Name] = st
		}
		return
	}
	e.last = d
	e.ll.advertise(d.peers)
	running := make(map[string]Peer, len(e.peers))
	for name, ps := range e.peers {
		running[name] = ps.cfg
	}
	resolved, waiting := e.resolvePeers(d.peers)
	plan := planPeers(running, resolved)
	rejectUnreachablePassive(&plan, d.listenPort)
	e.rejectAddressClashes(&plan)
	for _, name := range plan.remove {
		e.removePeer(ctx, name)
	}
	for _, p := range plan.recreate {
		e.recreatePeer(ctx, p)
	}
	for _, p := range plan.add {
		e.addPeer(ctx, p)
	}
	for _, p := range plan.retarget {
		ps := e.peers[p.Name]
		ps.cfg = p
		ps.crossDirty = true
		e.resolveCrossNextHop(ps)
	}
	e.recordInvalid(d, plan.invalid)
	e.recordWaiting(waiting)
	e.paths = d.paths
	for _, name := range sortedNames(e.peers) {
		e.syncPaths(e.peers[name], e.wantFor(name))
	}
}

// wantFor returns the desired paths of a peer, creating the entry.
func (e *instance) wantFor(name string) pathSet {
	if e.paths == nil {
		e.paths = map[string]pathSet{}
	}
	want := e.paths[name]
	if want == nil {
		want = pathSet{}
		e.paths[name] = want
	}
	return want
}

// update applies path changes (nil: withdraw) by peer; a running peer's
// session gets just those prefixes announced or withdrawn.
func (e *instance) update(u map[string]map[netip.Prefix]*Path) {
	for _, name := range sortedNames(u) {
		want := e.wantFor(name)
		changed := make([]netip.Prefix, 0, len(u[name]))
		for prefix, p := range u[name] {
			if p == nil {
				delete(want, prefix)
			} else {
				want[prefix] = *p
			}
			changed = append(changed, prefix)
		}
		if ps := e.peers[name]; ps != nil {
			ps.want = want
			e.patchPaths(ps, changed)
		}
	}
}

// recordInvalid shows rejected peers in Status, clears the error of peers
// that are valid again and forgets peers that are gone.
func (e *instance) recordInvalid(d *snapshot, invalid map[string]error) {
	named := map[string]bool{}
	for _, p := range d.peers {
		named[p.Name] = true
	}
	for name, st := range e.status {
		_, running := e.peers[name]
		switch {
		case !named[name] && !running:
			delete(e.status, name)
			delete(e.rejected, name)
		case invalid[name] == nil && e.rejected[name]:
			st.LastError = ""
			e.status[name] = st
			delete(e.rejected, name)
		}
	}
	for name, err := range invalid {
		e.rejected[name] = true
		st := e.status[name]
		st.Name, st.LastError = name, err.Error()
		if _, ok := e.peers[name]; !ok {
			st.State = StateInvalid
		}
		e.status[name] = st
		e.log.Warn("BGP peer rejected", "peer", name, "err", err)
	}
}

// rejectAddressClashes moves peers that would share an address with
// another peer to invalid: gobgp keys neighbors by address.
func (e *instance) rejectAddressClashes(plan *peerPlan) {
	owner := map[netip.Addr]string{}
	for name, ps := range e.peers {
		if !slices.Contains(plan.remove, name) {
			owner[ps.cfg.Address] = name
		}
	}
	for _, p := range plan.recreate {
		for a, n := range owner {
			if n == p.Name {
				delete(owner, a)
			}
		}
	}
	keep := func(list []Peer) []Peer {
		var out []Peer
		for _, p := range list {
			if n, ok := owner[p.Address]; ok && n != p.Name {
				plan.invalid[p.Name] = fmt.Errorf("%w: peer %q: address %v is already used by peer %q", ErrInvalid, p.Name, p.Address, n)
				continue
			}
			owner[p.Address] = p.Name
			out = append(out, p)
		}
		return out
	}
	plan.recreate = keep(plan.recreate)
	plan.add = keep(plan.add)
}

// ensureServer starts gobgp with d's router ID and listen port, or
// restarts it when either changed (gobgp can change neither in place).
func (e *instance) ensureServer(ctx context.Context, d *snapshot) error {
	if e.s != nil && (d.routerID == e.routerID || !d.routerID.Is4()) && d.listenPort == e.listenPort {
		if d.routerID != e.routerID {
			e.log.Warn("BGP router ID rejected, keeping the running one", "routerID", d.routerID, "running", e.routerID)
		}
		return nil
	}
	if e.s != nil && !d.routerID.Is4() {
		d.routerID = e.routerID // a listen port change keeps the running router ID
	}
	if !d.routerID.Is4() {
		if len(d.peers) == 0 {
			return nil
		}
		return fmt.Errorf("%w: router ID must be an IPv4 address, got %v", ErrInvalid, d.routerID)
	}
	if e.s != nil {
		e.log.Info("BGP router ID or listen port changed, restarting every session",
			"from", e.routerID, "to", d.routerID, "listenPortFrom", e.listenPort, "listenPortTo", d.listenPort)
		// Peers that d no longer has are deleted first, with a Cease:
		// the restart closes graceful-restart sessions without one, and
		// a deleted peer's router would keep its routes (stale) for the
		// whole restart time.
		for _, name := range sortedNames(e.peers) {
			if !slices.ContainsFunc(d.peers, func(p Peer) bool { return p.Name == name }) {
				e.removePeer(ctx, name)
			}
		}
		e.stopServer(true)
	}
	asn := uint32(64512) // gobgp needs one; every neighbor sets its own local AS
	for _, p := range d.peers {
		if p.MyASN != 0 {
			asn = p.MyASN
			break
		}
	}
	s := server.NewBgpServer(server.LoggerOption(newGobgpLogger(e.log.Handler(), e.reportConnErr, &e.stopping), nil))
	go s.Serve()
	// Without passive peers (ListenPort -1) the node only dials.
	global := &api.Global{Asn: asn, RouterId: d.routerID.String(), ListenPort: listenPort(d.listenPort), Families: globalFamilies()}
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		s.Stop()
		return fmt.Errorf("bgp: start: %w", err)
	}
	if err := rejectReceivedRoutes(ctx, s); err != nil {
		s.Stop()
		return err
	}
	watchCtx, stop := context.WithCancel(context.Background())
	forward := func(ev *apiutil.WatchEventMessage_PeerEvent, t time.Time) { e.forwardPeerEvent(watchCtx, ev, t) }
	err := s.WatchEvent(watchCtx, server.WatchEventMessageCallbacks{OnPeerUpdate: forward}, server.WatchPeer())
	if err != nil {
		stop()
		s.Stop()
		return fmt.Errorf("bgp: watch peers: %w", err)
	}
	e.s, e.stopW, e.routerID, e.listenPort = s, stop, d.routerID, d.listenPort
	e.stopping.Store(false)
	return nil
}

// rejectReceivedRoutes keeps routes that peers send out of the RIB: the
// node announces, it never routes by BGP, and a received route for one of
// its own prefixes must never win over the node's path.
func rejectReceivedRoutes(ctx context.Context, s *server.BgpServer) error {
	const set, policy = "herald-any-neighbor", "herald-reject-received"
	err := s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: set, List: []string{"0.0.0.0/0", "::/0"},
	}})
	if err == nil {
		err = s.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: policy, Statements: []*api.Statement{{
			Name:       policy,
			Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: set}},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		}}}})
	}
	if err == nil {
		err = s.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_IMPORT,
			Policies: []*api.Policy{{Name: policy}}, DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
		}})
	}
	if err != nil {
		return fmt.Errorf("bgp: import policy: %w", err)
	}
	return nil
}

func (e *instance) addPeer(ctx context.Context, p Peer) {
	e.nextID++
	ps := &peerState{cfg: p, vrf: fmt.Sprintf("herald-%d", e.nextID), inGobgp: pathSet{}}
	vrf, err := apiVrf(ps.vrf, e.nextID)
	if err == nil {
		err = e.s.AddVrf(ctx, &api.AddVrfRequest{Vrf: vrf})
	}
	if err == nil {
		err = e.s.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, ps.vrf, false)})
		if err != nil {
			_ = e.s.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: ps.vrf})
		}
	}
	if err != nil {
		e.status[p.Name] = PeerStatus{Name: p.Name, Address: p.Address, State: StateInvalid, Since: time.Now(), LastError: err.Error()}
		e.log.Error("BGP peer not added", "peer", p.Name, "err", err)
		return
	}
	e.peers[p.Name] = ps
	e.byAddr[p.Address] = p.Name
	e.resolveCrossNextHop(ps)
	e.status[p.Name] = PeerStatus{Name: p.Name, Address: p.Address, State: StateIdle, Since: time.Now(), BFD: bfdLabel(p)}
	e.log.Info("BGP peer added", "peer", p.Name, "address", p.Address, "peerASN", p.PeerASN, "myASN", p.MyASN)
}

func bfdLabel(p Peer) string {
	if p.BFD == nil {
		return ""
	}
	return "down"
}

// removePeer closes the session (Cease) and drops the peer's VRF with its paths.
func (e *instance) removePeer(ctx context.Context, name string) {
	ps := e.peers[name]
	if err := e.s.DeletePeer(ctx, &api.DeletePeerRequest{Address: ps.cfg.Address.String()}); err != nil {
		e.log.Error("BGP peer not deleted", "peer", name, "err", err)
	}
	if err := e.s.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: ps.vrf}); err != nil {
		e.log.Error("BGP peer VRF not deleted", "peer", name, "err", err)
	}
	delete(e.peers, name)
	delete(e.byAddr, ps.cfg.Address)
	delete(e.status, name)
	e.log.Info("BGP peer removed", "peer", name)
}

// recreatePeer replaces the neighbor of one peer; its VRF and paths stay,
// so the new session starts with them. No other session is touched.
func (e *instance) recreatePeer(ctx context.Context, p Peer) {
	ps := e.peers[p.Name]
	if err := e.s.DeletePeer(ctx, &api.DeletePeerRequest{Address: ps.cfg.Address.String()}); err != nil {
		e.log.Error("BGP peer not deleted", "peer", p.Name, "err", err)
	}
	// The old session's own state change is dropped (the status is reset
	// below before Run sees it), so its end is reported here.
	if e.status[p.Name].Established() {
		e.report(Event{Peer: p.Name, Address: ps.cfg.Address, State: StateIdle, Reason: "peer settings changed: session re-created", Time: time.Now()})
	}
	delete(e.byAddr, ps.cfg.Address)
	ps.cfg = p
	ps.local, ps.crossNH, ps.crossErr = netip.Addr{}, netip.Addr{}, nil
	ps.lastUpdates = 0
	ps.bfdOn, ps.bfdAt = false, time.Time{} // BFD went with the old neighbor
	ps.asChecked = false
	e.resolveCrossNextHop(ps)
	st := e.status[p.Name]
	st.Address, st.State, st.Since, st.BFD, st.LastError = p.Address, StateIdle, time.Now(), bfdLabel(p), ""
	if err := e.s.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, ps.vrf, false)}); err != nil {
		st.LastError = err.Error()
		e.log.Error("BGP peer not re-created", "peer", p.Name, "err", err)
	}
	e.byAddr[p.Address] = p.Name
	e.status[p.Name] = st
	e.log.Info("BGP peer re-created", "peer", p.Name, "address", p.Address)
}

// nextHop returns the next hop for prefix on ps's session, or false while
// the path must wait: its next hop is not known (a cross-family path
// before the session was ever up) or the peer's AS is not checked yet.
func (ps *peerState) nextHop(prefix netip.Prefix) (netip.Addr, bool) {
	if ps.held() {
		return netip.Addr{}, false
	}
	v6 := prefix.Addr().Is6()
	if v6 == ps.cfg.Address.Is6() {
		if v6 {
			return netip.IPv6Unspecified(), true // gobgp puts in the session's local address
		}
		return netip.IPv4Unspecified(), true
	}
	if v6 && ps.cfg.NextHopIPv6.IsValid() {
		return ps.cfg.NextHopIPv6, true
	}
	if !v6 && ps.cfg.NextHopIPv4.IsValid() {
		return ps.cfg.NextHopIPv4, true
	}
	return ps.crossNH, ps.crossNH.IsValid()
}

// resolveCrossNextHop derives the other family's next hop from the
// session's local address (known once the session was up).
func (e *instance) resolveCrossNextHop(ps *peerState) {
	if ps.cfg.Interface != "" {
		e.resolveLinkNextHop(ps)
		return
	}
	local := ps.local
	if !local.IsValid() {
		local = ps.cfg.SourceAddress
	}
	if !local.IsValid() {
		return
	}
	ifaces, err := netif.List()
	if err != nil {
		ps.crossErr = err
		return
	}
	nh, err := pickNextHop(local, ps.cfg.Address.Is4(), ifaces)
	ps.crossErr = err
	if nh != ps.crossNH {
		ps.crossNH = nh
		ps.crossDirty = true
	}
}

// syncPaths makes ps's VRF hold want: only the difference is sent. It
// looks at every path of the peer; patchPaths looks at some.
func (e *instance) syncPaths(ps *peerState, want pathSet) {
	ps.want = want
	// Usually every path has a next hop and target is want itself; it is
	// copied only when some wait for theirs.
	target := want
	for prefix := range want {
		if _, ok := ps.nextHop(prefix); !ok {
			target = make(pathSet, len(want))
			for prefix, p := range want {
				if _, ok := ps.nextHop(prefix); ok {
					target[prefix] = p
				}
			}
			break
		}
	}
	d := diffPaths(ps.inGobgp, target)
	if ps.crossDirty {
		// Same attributes, new next hop: announce again (an implicit replace).
		for prefix, p := range target {
			if _, had := ps.inGobgp[prefix]; had && sameAttrs(ps.inGobgp[prefix], p) && prefix.Addr().Is6() != ps.cfg.Address.Is6() {
				d.announce = append(d.announce, p)
			}
		}
	}
	if e.sendPaths(ps, d) {
		ps.crossDirty = false
	}
}

// patchPaths brings the listed prefixes of ps's VRF in line with want.
func (e *instance) patchPaths(ps *peerState, prefixes []netip.Prefix) {
	var d pathDiff
	for _, prefix := range prefixes {
		p, wanted := ps.want[prefix]
		if _, ok := ps.nextHop(prefix); !ok {
			wanted = false
		}
		have, in := ps.inGobgp[prefix]
		switch {
		case wanted && (!in || !sameAttrs(have, p)):
			d.announce = append(d.announce, p)
		case !wanted && in:
			d.withdraw = append(d.withdraw, prefix)
		}
	}
	e.sendPaths(ps, d)
}

// sendPaths announces and withdraws d on ps's VRF and records in inGobgp
// what gobgp took. While the session is opening it changes nothing and
// returns false: the change is deferred (opening.go).
func (e *instance) sendPaths(ps *peerState, d pathDiff) bool {
	if d.empty() {
		return true
	}
	if e.sessionOpening(ps) {
		ps.deferred = true
		e.log.Debug("BGP paths deferred: session opening", "peer", ps.cfg.Name, "announce", len(d.announce), "withdraw", len(d.withdraw))
		return false
	}
	var errs []error
	if len(d.announce) > 0 {
		add := make([]*apiutil.Path, 0, len(d.announce))
		var added []Path
		for _, p := range d.announce {
			nh, _ := ps.nextHop(p.Prefix)
			ap, err := apiPath(p, nh)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			add = append(add, ap)
			added = append(added, p)
		}
		if len(add) > 0 {
			if _, err := e.s.AddPath(apiutil.AddPathRequest{VRFID: ps.vrf, Paths: add}); err != nil {
				errs = append(errs, err)
			} else {
				for _, p := range added {
					ps.inGobgp[p.Prefix] = p
				}
			}
		}
	}
	if len(d.withdraw) > 0 {
		del := make([]*apiutil.Path, 0, len(d.withdraw))
		withdrawn := make([]netip.Prefix, 0, len(d.withdraw))
		for _, prefix := range d.withdraw {
			wp, err := apiWithdrawal(prefix)
			if err != nil {
				// Still in gobgp: kept, so the next sync tries again.
				errs = append(errs, fmt.Errorf("withdrawal not sent: %w", err))
				continue
			}
			del = append(del, wp)
			withdrawn = append(withdrawn, prefix)
		}
		if len(del) > 0 {
			if err := e.s.DeletePath(apiutil.DeletePathRequest{VRFID: ps.vrf, Paths: del}); err != nil {
				errs = append(errs, err)
			} else {
				for _, prefix := range withdrawn {
					delete(ps.inGobgp, prefix)
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		st := e.status[ps.cfg.Name]
		st.LastError = err.Error()
		e.status[ps.cfg.Name] = st
		e.log.Error("BGP paths not applied", "peer", ps.cfg.Name, "err", err)
		return true
	}
	e.log.Debug("BGP paths applied", "peer", ps.cfg.Name, "announced", len(d.announce), "withdrawn", len(d.withdraw))
	return true
}
