// Package config turns Herald's CRD objects (and the Secrets they reference)
// into one validated, immutable Model that the controller and the speaker
// both use. Build is a pure function: no client, no I/O.
//
// A bad object never takes a good one down. Build attributes every problem
// to the object that causes it; that object is skipped (or, when it only
// names something missing, used for what it can resolve), and every other
// object keeps working. An object that was valid in the previous model and
// turns invalid keeps serving with its last valid version, so a bad edit
// never drops working announcements.
package config

import (
	"net/netip"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

// Model is the validated configuration. Treat it as immutable.
type Model struct {
	// Pools by name, only valid ones.
	Pools map[string]*Pool
	// L2Advertisements and BGPAdvertisements, sorted by name.
	L2Advertisements  []*L2Advertisement
	BGPAdvertisements []*BGPAdvertisement
	// Peers by name, only usable ones.
	Peers map[string]*Peer
	// BFDProfiles by name.
	BFDProfiles map[string]*BFDProfile
	// Problems found, sorted by object.
	Problems []Problem

	// ranges of all valid pools sorted by First, for PoolFor.
	ranges []poolRange
	// inputs remembers, per object, the spec the model used, so the next
	// Build can tell changed objects from unchanged ones.
	inputs map[Ref]any
}

type poolRange struct {
	Range
	pool *Pool
}

// Range is an inclusive block of addresses of one family.
type Range struct {
	First, Last netip.Addr
}

// Contains reports whether ip lies in the range.
func (r Range) Contains(ip netip.Addr) bool {
	return r.First.Compare(ip) <= 0 && ip.Compare(r.Last) <= 0
}

// Overlaps reports whether two ranges share an address.
func (r Range) Overlaps(o Range) bool {
	return r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// Pool is a valid IPPool.
type Pool struct {
	Name          string
	Labels        labels.Set
	Ranges        []Range // sorted, non-overlapping
	AutoAssign    bool
	AvoidBuggyIPs bool
	AllocateTo    AllocateTo
}

// AllocateTo restricts a pool to some Services.
type AllocateTo struct {
	Priority           int
	Namespaces         []string
	NamespaceSelectors []labels.Selector
	ServiceSelectors   []labels.Selector
}

// Contains reports whether ip belongs to the pool.
func (p *Pool) Contains(ip netip.Addr) bool {
	i := sort.Search(len(p.Ranges), func(i int) bool { return ip.Compare(p.Ranges[i].Last) <= 0 })
	return i < len(p.Ranges) && p.Ranges[i].Contains(ip)
}

// HasFamily reports whether the pool holds addresses of the family (4 or 6).
func (p *Pool) HasFamily(family int) bool {
	for _, r := range p.Ranges {
		if familyOf(r.First) == family {
			return true
		}
	}
	return false
}

// L2Advertisement is a valid L2Advertisement with its pools resolved.
type L2Advertisement struct {
	Name          string
	Pools         []string          // sorted names of the valid pools it selects
	NodeSelectors []labels.Selector // empty: all nodes
	Interfaces    []string          // empty: default choice
	// PreferredNodeSelectors rank the nodes it selects, first first.
	PreferredNodeSelectors []labels.Selector
	ServiceSelection
}

// SelectsNode reports whether the advertisement applies to a node with these labels.
func (a *L2Advertisement) SelectsNode(nodeLabels map[string]string) bool {
	return anySelects(a.NodeSelectors, nodeLabels)
}

// Preference is the place the advertisement gives a node with these
// labels: the index of the first preferred selector it matches, or
// NotPreferred.
func (a *L2Advertisement) Preference(nodeLabels map[string]string) int {
	for i, s := range a.PreferredNodeSelectors {
		if s.Matches(labels.Set(nodeLabels)) {
			return i
		}
	}
	return NotPreferred
}

// NotPreferred is the Preference of a node no preferred selector matches.
const NotPreferred = -1

// ServiceSelection is what advertisements of both kinds say about the
// Services they announce.
type ServiceSelection struct {
	// ServiceSelectors: empty selects every Service.
	ServiceSelectors []labels.Selector
	// WithdrawWithoutEndpoints: a Service with externalTrafficPolicy
	// Cluster and no ready endpoint anywhere is not announced.
	WithdrawWithoutEndpoints bool
}

// SelectsService reports whether the advertisement applies to a Service
// with these labels.
func (s ServiceSelection) SelectsService(serviceLabels map[string]string) bool {
	return anySelects(s.ServiceSelectors, serviceLabels)
}

// Announces reports whether the advertisement announces a Service with
// these labels, given whether it has a ready endpoint anywhere.
func (s ServiceSelection) Announces(serviceLabels map[string]string, readyEndpoint bool) bool {
	return s.SelectsService(serviceLabels) && (readyEndpoint || !s.WithdrawWithoutEndpoints)
}

// LargeCommunity is a BGP large community.
type LargeCommunity struct {
	Global, Local1, Local2 uint32
}

// BGPAdvertisement is a valid BGPAdvertisement with pools and peers resolved.
type BGPAdvertisement struct {
	Name                string
	Pools               []string          // sorted names of the valid pools it selects
	NodeSelectors       []labels.Selector // empty: all nodes
	Peers               []string          // sorted names of the usable peers it applies to
	AggregationLength   int
	AggregationLengthV6 int
	Communities         []uint32 // sorted, deduplicated
	LargeCommunities    []LargeCommunity
	LocalPref           *uint32
	ServiceSelection
}

// SelectsNode reports whether the advertisement applies to a node with these labels.
func (a *BGPAdvertisement) SelectsNode(nodeLabels map[string]string) bool {
	return anySelects(a.NodeSelectors, nodeLabels)
}

// Peer is a usable BGPPeer with its password and BFD profile resolved.
type Peer struct {
	Name            string
	MyASN           uint32
	PeerASN         uint32 // 0 with DynamicASN
	DynamicASN      string // "", "internal" or "external"
	Address         netip.Addr
	Port            uint16
	SourceAddress   netip.Addr // invalid when unset
	RouterID        netip.Addr // invalid when unset
	HoldTime        time.Duration
	KeepaliveTime   time.Duration
	ConnectTime     time.Duration
	EBGPMultiHop    bool
	Password        string
	NodeSelectors   []labels.Selector // empty: all nodes
	BFD             *BFDProfile       // nil: no BFD
	GracefulRestart bool

	// Interface is the link of a link-local session; Address is then an
	// IPv6 link-local address on it, or invalid to peer with the router
	// found there (unnumbered).
	Interface string
	// Passive peers connect to the node, on ListenPort.
	Passive    bool
	ListenPort uint16
	// GracefulRestartTime is the restart time the peer is told.
	GracefulRestartTime time.Duration
}

// IBGP reports whether the session is internal BGP.
func (p *Peer) IBGP() bool {
	return p.DynamicASN == "internal" || p.PeerASN == p.MyASN
}

// SelectsNode reports whether the peer applies to a node with these labels.
func (p *Peer) SelectsNode(nodeLabels map[string]string) bool {
	return anySelects(p.NodeSelectors, nodeLabels)
}

// BFDProfile holds BFD timers.
type BFDProfile struct {
	Name             string
	ReceiveInterval  time.Duration
	TransmitInterval time.Duration
	DetectMultiplier uint32
}

// PoolFor returns the valid pool that holds ip, or nil.
func (m *Model) PoolFor(ip netip.Addr) *Pool {
	i := sort.Search(len(m.ranges), func(i int) bool { return ip.Compare(m.ranges[i].Last) <= 0 })
	if i < len(m.ranges) && m.ranges[i].Contains(ip) {
		return m.ranges[i].pool
	}
	return nil
}

// SortedPools returns the valid pools sorted by name.
func (m *Model) SortedPools() []*Pool {
	out := make([]*Pool, 0, len(m.Pools))
	for _, p := range m.Pools {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// L2AdvertisementsFor returns the L2 advertisements that select the pool.
func (m *Model) L2AdvertisementsFor(pool string) []*L2Advertisement {
	var out []*L2Advertisement
	for _, a := range m.L2Advertisements {
		if containsSorted(a.Pools, pool) {
			out = append(out, a)
		}
	}
	return out
}

// BGPAdvertisementsFor returns the BGP advertisements that select the pool.
func (m *Model) BGPAdvertisementsFor(pool string) []*BGPAdvertisement {
	var out []*BGPAdvertisement
	for _, a := range m.BGPAdvertisements {
		if containsSorted(a.Pools, pool) {
			out = append(out, a)
		}
	}
	return out
}

// PeersForNode returns the usable peers that select a node, sorted by name.
func (m *Model) PeersForNode(nodeLabels map[string]string) []*Peer {
	var out []*Peer
	for _, p := range m.Peers {
		if p.SelectsNode(nodeLabels) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func anySelects(selectors []labels.Selector, l map[string]string) bool {
	if len(selectors) == 0 {
		return true
	}
	for _, s := range selectors {
		if s.Matches(labels.Set(l)) {
			return true
		}
	}
	return false
}

func containsSorted(list []string, s string) bool {
	i := sort.SearchStrings(list, s)
	return i < len(list) && list[i] == s
}

func familyOf(ip netip.Addr) int {
	if ip.Is4() {
		return 4
	}
	return 6
}
