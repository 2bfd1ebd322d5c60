package reconcile

import (
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/speaker/advertise"
	"github.com/heraldlb/herald/speaker/announce"
	"github.com/heraldlb/herald/speaker/election"
	"github.com/heraldlb/herald/speaker/takeover"
)

// Service is a LoadBalancer Service as the engine needs it.
type Service struct {
	advertise.Service
	UID types.UID
}

// ServiceRef names a Service for Events.
type ServiceRef struct {
	Key string
	UID types.UID
}

// Engine is this node's view of what to advertise: per-Service results
// (Layer 2 targets, BGP routes) and, per IP, the union of the targets of the
// Services using it and the owner election chose. It decides which Layer 2
// addresses this node announces. It is pure (no client, no sockets) and not
// safe for concurrent use. Every change costs what it touches: a Service
// change recomputes that Service and its IPs; a membership or trust change
// re-elects every IP (one hash per eligible node); only a configuration or
// node-label change recomputes every Service.
type Engine struct {
	self  string
	model *config.Model
	// withdrawing: some advertisement withdraws Services without ready
	// endpoints, so endpoints matter to every Service.
	withdrawing bool
	nodes       []advertise.Node // sorted by name
	selfNode    *advertise.Node

	services map[string]*serviceState
	ips      map[netip.Addr]*ipState
	live     map[string]bool
	// unconfirmed are members seen alive that have not confirmed yet (see
	// takeover.Decision.Unconfirmed): no candidates, but an address one of
	// them ranks first for is not taken over.
	unconfirmed map[string]bool
	// blocked are the addresses each node published it cannot announce
	// (this node's own included): it is no candidate for them.
	blocked map[string]takeover.Blocked

	// excluded says why this node is excluded from load balancing ("" if
	// it is not): it then announces nothing.
	excluded string
	// withdrawals are the Services whose withdrawal for lack of endpoints
	// began or ended since the last TakeWithdrawals.
	withdrawals []Withdrawal

	// unselected are addresses that left the index while their Service
	// still has them (no L2Advertisement announces it any more), for the
	// reason of the stop.
	unselected map[netip.Addr]bool

	// names interns the sorted node lists of the targets: most Services
	// share them, and each costs 16 bytes per node (8 KB per list at 500
	// nodes, for every Service and address).
	names nameSets

	dirty     map[netip.Addr]bool // IPs to elect again
	ipVersion uint64              // see IPVersion
	announced map[netip.Addr]*announcement
	// Version changes whenever anything a status report shows changed.
	Version uint64
}

type serviceState struct {
	svc    Service
	l2     []advertise.L2Target
	routes []advertise.Route
	// withdrawnBy names the advertisements that leave the Service out for
	// lack of a ready endpoint (withdrawWithoutEndpoints).
	withdrawnBy []string
}

type ipState struct {
	// targets are the Services using the IP, sorted by key: usually one, so
	// a slice (a map costs a kilobyte per IP even with one entry).
	targets []ipTarget
	// Derived from targets.
	eligible, selected []string
	ifaces             []string // this node's interfaces; nil: default choice
	prefs              election.Preferences
	noEndpoint         bool   // a target is withdrawn for lack of endpoints
	owner              string // elected among live eligible nodes
	waiting            bool   // this node owns it but may not take it over yet
	// deferTo is the unconfirmed member that ranks before owner: owner
	// does not take the address over while it does.
	deferTo string
}

// ipTarget is one Service's target for an IP.
type ipTarget struct {
	key string
	uid types.UID
	advertise.L2Target
}

// announcement is an IP this node announces.
type announcement struct {
	ifaces   []string
	services []ServiceRef
	since    time.Time
}

// NewEngine returns an engine for the node called self.
func NewEngine(self string) *Engine {
	return &Engine{
		self:        self,
		services:    map[string]*serviceState{},
		ips:         map[netip.Addr]*ipState{},
		live:        map[string]bool{},
		unconfirmed: map[string]bool{},
		blocked:     map[string]takeover.Blocked{},
		dirty:       map[netip.Addr]bool{},
		unselected:  map[netip.Addr]bool{},
		announced:   map[netip.Addr]*announcement{},
	}
}

// Self is the node this engine decides for.
func (e *Engine) Self() string { return e.self }

// SetModel installs a new configuration model and recomputes every Service.
func (e *Engine) SetModel(m *config.Model) {
	e.model = m
	e.withdrawing = false
	for _, a := range m.L2Advertisements {
		e.withdrawing = e.withdrawing || a.WithdrawWithoutEndpoints
	}
	for _, a := range m.BGPAdvertisements {
		e.withdrawing = e.withdrawing || a.WithdrawWithoutEndpoints
	}
	e.recomputeAll()
}

// SetNodes replaces the cluster's nodes (names and labels). Label changes
// recompute every Service; anything else costs nothing.
func (e *Engine) SetNodes(nodes []advertise.Node) {
	sorted := slices.Clone(nodes)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var self *advertise.Node
	for i := range sorted {
		if sorted[i].Name == e.self {
			self = &sorted[i]
		}
	}
	same := reflect.DeepEqual(sorted, e.nodes)
	e.nodes, e.selfNode = sorted, self
	if !same {
		e.recomputeAll()
	}
}

func (e *Engine) recomputeAll() {
	for _, st := range e.services {
		e.compute(st)
	}
	e.Version++
}

// UpsertService adds or updates a Service.
func (e *Engine) UpsertService(svc Service) {
	st, ok := e.services[svc.Key]
	if !ok {
		st = &serviceState{}
		e.services[svc.Key] = st
	}
	st.svc = svc
	e.compute(st)
	e.Version++
}

// Withdrawal is a Service that advertisements with withdrawWithoutEndpoints
// started (By set) or stopped (By empty) leaving out.
type Withdrawal struct {
	Service ServiceRef
	IPs     []netip.Addr
	By      []string
}

// TakeWithdrawals returns the withdrawals that began or ended since the
// last call, and forgets them.
func (e *Engine) TakeWithdrawals() []Withdrawal {
	w := e.withdrawals
	e.withdrawals = nil
	return w
}

// DeleteService removes a Service (no-op if unknown).
func (e *Engine) DeleteService(key string) {
	st, ok := e.services[key]
	if !ok {
		return
	}
	e.unindex(key, st.l2)
	delete(e.services, key)
	e.Version++
}

// Has reports whether the engine tracks the Service.
func (e *Engine) Has(key string) bool { _, ok := e.services[key]; return ok }

// EndpointsMatter reports whether a tracked Service's ready endpoints
// change what is announced: it has externalTrafficPolicy Local, or some
// advertisement withdraws Services without ready endpoints.
func (e *Engine) EndpointsMatter(key string) bool {
	st, ok := e.services[key]
	return ok && (st.svc.LocalTraffic || e.withdrawing)
}

// compute recomputes one Service's targets and routes and reindexes its IPs.
func (e *Engine) compute(st *serviceState) {
	var l2 []advertise.L2Target
	var routes []advertise.Route
	if e.model != nil {
		l2 = advertise.L2ForService(e.model, st.svc.Service, e.nodes)
		if e.selfNode != nil {
			routes = advertise.BGPForService(e.model, st.svc.Service, *e.selfNode)
		}
	}
	key := st.svc.Key
	var by []string
	if e.model != nil {
		by = advertise.WithdrawnBy(e.model, st.svc.Service)
	}
	if !slices.Equal(by, st.withdrawnBy) && (len(by) > 0 || len(st.withdrawnBy) > 0) {
		e.withdrawals = append(e.withdrawals, Withdrawal{Service: ServiceRef{Key: key, UID: st.svc.UID}, IPs: st.svc.IPs, By: by})
	}
	st.withdrawnBy = by
	e.unindex(key, st.l2)
	for _, t := range st.l2 {
		if e.ips[t.IP] == nil && slices.Contains(st.svc.IPs, t.IP) {
			// The Service still has the address: an advertisement stopped
			// selecting it (serviceSelectors, the pool's advertisements).
			e.unselected[t.IP] = true
		}
	}
	for i := range l2 {
		l2[i].Eligible, l2[i].Selected = e.names.intern(l2[i].Eligible), e.names.intern(l2[i].Selected)
	}
	st.l2 = l2
	for _, t := range l2 {
		ip := e.ips[t.IP]
		if ip == nil {
			ip = &ipState{}
			e.ips[t.IP] = ip
		}
		it := ipTarget{key: key, uid: st.svc.UID, L2Target: t}
		if i, found := slices.BinarySearchFunc(ip.targets, key, func(x ipTarget, k string) int { return strings.Compare(x.key, k) }); found {
			ip.targets[i] = it
		} else {
			ip.targets = slices.Insert(ip.targets, i, it)
		}
		ip.derive(e.self, &e.names)
		e.dirty[t.IP] = true
		e.ipVersion++
	}
	st.routes = routes
}

// unindex removes a Service's targets from the per-IP index.
func (e *Engine) unindex(key string, targets []advertise.L2Target) {
	for _, t := range targets {
		ip := e.ips[t.IP]
		if ip == nil {
			continue
		}
		ip.targets = slices.DeleteFunc(ip.targets, func(x ipTarget) bool { return x.key == key })
		if len(ip.targets) == 0 {
			delete(e.ips, t.IP)
		} else {
			ip.derive(e.self, &e.names)
		}
		e.dirty[t.IP] = true
		e.ipVersion++
	}
}

// derive merges the targets of the Services sharing the IP: the union of
// their nodes and of this node's interfaces (one default choice wins, as
// within one Service). The node lists are interned in names.
func (s *ipState) derive(self string, names *nameSets) {
	eligible, selected, ifaces := map[string]bool{}, map[string]bool{}, map[string]bool{}
	serves, deflt := false, false
	s.prefs, s.noEndpoint = nil, false
	for _, t := range s.targets {
		for _, n := range t.Eligible {
			eligible[n] = true
		}
		// A node takes its best place among the Services sharing the IP.
		for n, place := range t.Preferred {
			if cur, ok := s.prefs[n]; !ok || place < cur {
				if s.prefs == nil {
					s.prefs = election.Preferences{}
				}
				s.prefs[n] = place
			}
		}
		s.noEndpoint = s.noEndpoint || t.NoEndpoint
		for _, n := range t.Selected {
			selected[n] = true
		}
		if !slices.Contains(t.Eligible, self) {
			continue
		}
		serves = true
		names, explicit := t.Interfaces[self]
		if !explicit {
			deflt = true
		}
		for _, n := range names {
			ifaces[n] = true
		}
	}
	s.eligible, s.selected = names.intern(sortedKeys(eligible)), names.intern(sortedKeys(selected))
	s.ifaces = nil
	if serves && !deflt {
		s.ifaces = sortedKeys(ifaces)
	}
}

func (s *ipState) refs() []ServiceRef {
	out := make([]ServiceRef, len(s.targets))
	for i, t := range s.targets {
		out[i] = ServiceRef{Key: t.key, UID: t.uid}
	}
	return out
}

// SetLive replaces the live members (memberlist's view minus those that
// handed over). Only the IPs whose owner the change can move are
// re-elected: those a departed member owned, and those a new member
// outranks the owner for (one pass over the IPs, one hash per IP for each
// new member, no full ranking).
func (e *Engine) SetLive(names []string) bool {
	next, joined, gone, changed := diffSet(e.live, names)
	if !changed {
		return false
	}
	e.live = next
	for ip, st := range e.ips {
		if e.dirty[ip] {
			continue
		}
		if st.owner != "" && slices.Contains(gone, st.owner) {
			e.dirty[ip] = true
			continue
		}
		for _, n := range joined {
			if e.mayClaim(n, ip, st) && election.Outranks(ip, n, st.owner, st.prefs) {
				e.dirty[ip] = true
				break
			}
		}
	}
	return true
}

// SetUnconfirmed replaces the unconfirmed members (see
// takeover.Decision.Unconfirmed). Only the IPs that deferred to a member
// that is no longer unconfirmed, and those a newly unconfirmed member
// outranks the owner for, are re-elected.
func (e *Engine) SetUnconfirmed(names []string) bool {
	next, added, _, changed := diffSet(e.unconfirmed, names)
	if !changed {
		return false
	}
	e.unconfirmed = next
	for ip, st := range e.ips {
		if e.dirty[ip] {
			continue
		}
		if st.deferTo != "" && !next[st.deferTo] {
			e.dirty[ip] = true
			continue
		}
		for _, n := range added {
			if e.mayClaim(n, ip, st) && election.Outranks(ip, n, st.owner, st.prefs) {
				e.dirty[ip] = true
				break
			}
		}
	}
	return true
}

// diffSet returns names as a set, the names it adds to prev and those it
// drops, and whether it differs from prev.
func diffSet(prev map[string]bool, names []string) (next map[string]bool, added, dropped []string, changed bool) {
	next = make(map[string]bool, len(names))
	for _, n := range names {
		next[n] = true
	}
	if maps.Equal(next, prev) {
		return prev, nil, nil, false
	}
	for n := range prev {
		if !next[n] {
			dropped = append(dropped, n)
		}
	}
	for n := range next {
		if !prev[n] {
			added = append(added, n)
		}
	}
	return next, added, dropped, true
}

// mayClaim reports whether node n, not necessarily live, is eligible for ip
// and has not published that it cannot announce it.
func (e *Engine) mayClaim(n string, ip netip.Addr, st *ipState) bool {
	_, ok := slices.BinarySearch(st.eligible, n)
	return ok && !e.blocked[n].Has(ip)
}

// deferTo returns the unconfirmed member that ranks first for ip if it
// ranks before owner, else "".
func (e *Engine) deferTo(ip netip.Addr, st *ipState, owner string) string {
	best, to := owner, ""
	for n := range e.unconfirmed {
		if e.mayClaim(n, ip, st) && election.Outranks(ip, n, best, st.prefs) {
			best, to = n, n
		}
	}
	return to
}

// SetBlocked replaces what each node published it cannot announce. A
// change re-elects every IP.
func (e *Engine) SetBlocked(blocked map[string]takeover.Blocked) bool {
	same := len(blocked) == len(e.blocked)
	for n, b := range blocked {
		if o, ok := e.blocked[n]; !ok || !o.Equal(b) {
			same = false
		}
	}
	if same {
		return false
	}
	e.blocked = blocked
	e.MarkAllDirty()
	e.Version++ // the report says which addresses this node cannot announce
	return true
}

// SetExcluded says why this node is excluded from load balancing ("": it
// is not), for the reasons it gives. The guard keeps an excluded node out
// of the live members; this only words what it says.
func (e *Engine) SetExcluded(why string) {
	if why != e.excluded {
		e.excluded = why
		e.MarkAllDirty()
		e.Version++
	}
}

// candidate reports whether node n may own ip: live, and not blocked for it.
func (e *Engine) candidate(n string, ip netip.Addr) bool {
	return e.live[n] && !e.blocked[n].Has(ip)
}

// Placements lists, sorted by IP, every address an L2Advertisement selects
// this node for, with the interfaces it would use (nil: the default
// choice): what the node must be able to announce to be a candidate.
func (e *Engine) Placements() []announce.Announcement {
	out := make([]announce.Announcement, 0, len(e.ips))
	for ip, st := range e.ips {
		if slices.Contains(st.selected, e.self) {
			out = append(out, announce.Announcement{IP: ip, Interfaces: st.ifaces})
		}
	}
	slices.SortFunc(out, func(a, b announce.Announcement) int { return a.IP.Compare(b.IP) })
	return out
}

// IPVersion changes whenever the set of addresses or their interfaces
// changed (Placements may differ).
func (e *Engine) IPVersion() uint64 { return e.ipVersion }

// MarkDirty makes the next Elect look at ips (handed over or released to
// this node: they may be taken now).
func (e *Engine) MarkDirty(ips map[netip.Addr]bool) {
	for ip := range ips {
		if e.ips[ip] != nil || e.announced[ip] != nil {
			e.dirty[ip] = true
		}
	}
}

// MarkWaitingDirty makes the next Elect look at the IPs this node owns
// but could not take over yet: the only ones a takeover newly allowed can
// change.
func (e *Engine) MarkWaitingDirty() {
	for ip, st := range e.ips {
		if st.waiting {
			e.dirty[ip] = true
		}
	}
}

// MarkAllDirty makes the next Elect look at every IP.
func (e *Engine) MarkAllDirty() {
	for ip := range e.ips {
		e.dirty[ip] = true
	}
	for ip := range e.announced {
		e.dirty[ip] = true
	}
}

// Change is an IP this node starts or stops announcing.
type Change struct {
	IP       netip.Addr
	Start    bool
	Services []ServiceRef
	// Why this node stopped (empty for a start).
	Why string
	// To is the node that owns it now, for a stop ("" if none).
	To string
}

// Elect re-elects the IPs that changed and decides what this node
// announces. The owner of an IP is election.Owner among its eligible nodes
// that are live and not blocked for it (see takeover.Blocked). An IP this
// node owns is taken over only when trusted (see takeover) and no
// unconfirmed member ranks before it, or when it was handed over or
// released to it; one it announces already is kept as long as it owns it.
// It returns the starts and stops,
// and whether anything in the desired state changed (interfaces included).
func (e *Engine) Elect(now time.Time, trusted bool, handedOver map[netip.Addr]bool) (changes []Change, changed bool) {
	cands := make([]string, 0, len(e.live))
	for ip := range e.dirty {
		delete(e.dirty, ip)
		st, cur := e.ips[ip], e.announced[ip]
		unselected := e.unselected[ip]
		delete(e.unselected, ip)
		if st == nil {
			if cur != nil {
				why := "no Service uses it any more"
				if unselected {
					why = "no L2Advertisement announces its Service any more (pools, serviceSelectors)"
				}
				delete(e.announced, ip)
				changes = append(changes, Change{IP: ip, Services: cur.services, Why: why})
			}
			continue
		}
		cands = cands[:0]
		for _, n := range st.eligible {
			if e.candidate(n, ip) {
				cands = append(cands, n)
			}
		}
		owner := election.PreferredOwner(ip, cands, st.prefs)
		wasOwner, wasWaiting, wasDefer := st.owner, st.waiting, st.deferTo
		st.owner, st.waiting, st.deferTo = owner, false, ""
		if len(e.unconfirmed) > 0 {
			st.deferTo = e.deferTo(ip, st, owner)
		}
		switch {
		case owner == e.self && cur != nil:
			refs := st.refs()
			if !slices.Equal(cur.ifaces, st.ifaces) || !slices.Equal(cur.services, refs) {
				cur.ifaces, cur.services = st.ifaces, refs
				changed = true
			}
		case owner == e.self && (trusted && st.deferTo == "" || handedOver[ip]):
			// Not while an unconfirmed member ranks first (takeover rule
			// 3): it may announce the address still. Releasing to a live
			// owner stays as it is: the owner may not see that member, and
			// would take the address after its grace period anyway.
			e.announced[ip] = &announcement{ifaces: st.ifaces, services: st.refs(), since: now}
			changes = append(changes, Change{IP: ip, Start: true, Services: st.refs()})
		case owner == e.self:
			st.waiting = true
		case cur != nil:
			delete(e.announced, ip)
			changes = append(changes, Change{IP: ip, Services: cur.services, Why: e.stopReason(ip, st), To: owner})
		}
		// The report shows the owner of every address, also of one this
		// node neither announces nor stops announcing (it cannot: it is
		// blocked, or another node owns it): a new owner is a new report.
		if st.waiting != wasWaiting || st.owner != wasOwner || st.deferTo != wasDefer {
			e.Version++
		}
	}
	if len(changes) > 0 {
		changed = true
	}
	if changed {
		e.Version++
	}
	return changes, changed
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func (e *Engine) stopReason(ip netip.Addr, st *ipState) string {
	switch {
	case e.excluded != "":
		return e.self + " is excluded from load balancing (" + e.excluded + "); " + or(st.owner, "no other node") + " announces it now"
	case !slices.Contains(st.selected, e.self):
		return "no L2Advertisement selects " + e.self + " for it any more"
	case !slices.Contains(st.eligible, e.self) && st.noEndpoint:
		return "the Service has no ready endpoint anywhere (withdrawWithoutEndpoints)"
	case !slices.Contains(st.eligible, e.self):
		return "no ready endpoint on " + e.self + " (externalTrafficPolicy: Local)"
	case e.blocked[e.self].Has(ip):
		return e.self + " cannot announce it (no usable interface); " + or(st.owner, "no other node") + " announces it now"
	case st.owner != "":
		return st.owner + " announces it now"
	default:
		return e.self + " left the speakers' cluster"
	}
}

// Desired is what the announcer must announce, sorted by IP.
func (e *Engine) Desired() []announce.Announcement {
	out := make([]announce.Announcement, 0, len(e.announced))
	for ip, a := range e.announced {
		out = append(out, announce.Announcement{IP: ip, Interfaces: a.ifaces})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out
}

// Announces reports whether this node announces ip.
func (e *Engine) Announces(ip netip.Addr) bool { return e.announced[ip] != nil }

// Announced lists the IPs this node announces, sorted.
func (e *Engine) Announced() []netip.Addr {
	out := make([]netip.Addr, 0, len(e.announced))
	for ip := range e.announced {
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Successors groups the IPs this node announces by the node that owns each
// once this node is gone (nodes "" are left out: no other eligible live node).
func (e *Engine) Successors() map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, ip := range e.Announced() {
		st := e.ips[ip]
		if st == nil {
			continue
		}
		var cands []string
		for _, n := range st.eligible {
			if n != e.self && e.candidate(n, ip) {
				cands = append(cands, n)
			}
		}
		if next := election.PreferredOwner(ip, cands, st.prefs); next != "" {
			out[next] = append(out[next], ip)
		}
	}
	return out
}

// StopAll forgets every announcement (on shutdown) and returns them as stops.
func (e *Engine) StopAll(why string) []Change {
	var out []Change
	for _, ip := range e.Announced() {
		out = append(out, Change{IP: ip, Services: e.announced[ip].services, Why: why})
		delete(e.announced, ip)
	}
	e.Version++
	return out
}

func sortedKeys(set map[string]bool) []string { return slices.Sorted(maps.Keys(set)) }

// nameSets hands out one shared copy of each sorted node list. The lists
// are never changed once interned. It forgets every list when it holds
// more than maxNameSets (the lists handed out stay valid, only unshared):
// Local Services' endpoint nodes change, and old lists must not pile up.
type nameSets map[string][]string

const maxNameSets = 4096

func (n *nameSets) intern(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	key := strings.Join(names, "\x00")
	if s, ok := (*n)[key]; ok {
		return s
	}
	if *n == nil || len(*n) >= maxNameSets {
		*n = nameSets{}
	}
	(*n)[key] = names
	return names
}
