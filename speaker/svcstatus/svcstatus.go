// Package svcstatus decides what a node's AnnouncementSlices say: which
// Services it announces, how (Layer 2 or BGP), on which interfaces or to
// which peers, and how those Services are spread over slices of at most
// v1beta1.MaxServicesPerSlice so that a change rewrites few slices. It is
// pure: speaker/reconcile gathers the inputs, speaker/status writes the
// slices.
//
// Why slices per node and not an object per Service: a failover changes the
// announcing node of every Service the failed node announced (Layer 2) or
// drops that node from every Service (BGP). Per Service that is one write
// per Service; per node it is a write per changed slice, and a Service a
// node gains goes into the slice with room, so a node taking over a
// thousand Services rewrites a handful of slices (docs/decisions.md).
package svcstatus

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// L2 is an address this node answers ARP/NDP for, on interfaces.
type L2 struct {
	IP         netip.Addr
	Services   []string // "namespace/name"
	Interfaces []string
}

// Route is a prefix this node advertises for a Service to one peer.
type Route struct {
	Peer   string
	Prefix netip.Prefix
}

// BGP is one Service's routes on this node.
type BGP struct {
	Service string
	IPs     []netip.Addr
	Routes  []Route
}

// Input is what the node announces now.
type Input struct {
	L2  []L2
	BGP []BGP
	// Sending names the peers that get this node's routes (their session is
	// established): a route to another peer is not announced.
	Sending map[string]bool
}

// View is what a node's speaker tells the slice writer.
type View struct {
	// Version changes whenever Services does; Services is not changed
	// after it is handed over.
	Version  uint64
	Services map[string]v1beta1.ServiceAnnouncement
	// Alive are the speakers memberlist shows alive (suspects included):
	// the slices of every other node are deleted by the janitor.
	Alive []string
	// Candidates are the live speakers that see a majority and have
	// settled; Quorum says whether this one does (see Janitor).
	Candidates []string
	Quorum     bool
}

// Build returns, per Service key, what this node announces for it. A
// Service with nothing announced is absent. Addresses are sorted by IP,
// Layer2 before BGP, then by prefix; peers and interfaces are sorted.
func Build(in Input) map[string]v1beta1.ServiceAnnouncement {
	addrs := map[string][]v1beta1.AnnouncedAddress{}
	for _, a := range in.L2 {
		if len(a.Interfaces) == 0 {
			continue // owned but not placed: not announced
		}
		ifaces := slices.Sorted(slices.Values(a.Interfaces))
		for _, svc := range a.Services {
			addrs[svc] = append(addrs[svc], v1beta1.AnnouncedAddress{IP: a.IP.String(), Protocol: v1beta1.ProtocolLayer2, Interfaces: ifaces})
		}
	}
	for _, b := range in.BGP {
		for _, ip := range b.IPs {
			peers := map[netip.Prefix][]string{}
			for _, r := range b.Routes {
				if in.Sending[r.Peer] && r.Prefix.Contains(ip) && !slices.Contains(peers[r.Prefix], r.Peer) {
					peers[r.Prefix] = append(peers[r.Prefix], r.Peer)
				}
			}
			for prefix, ps := range peers {
				slices.Sort(ps)
				addrs[b.Service] = append(addrs[b.Service], v1beta1.AnnouncedAddress{IP: ip.String(), Protocol: v1beta1.ProtocolBGP, Prefix: prefix.String(), Peers: ps})
			}
		}
	}
	out := make(map[string]v1beta1.ServiceAnnouncement, len(addrs))
	for svc, list := range addrs {
		slices.SortFunc(list, compareAddress)
		out[svc] = v1beta1.ServiceAnnouncement{Service: svc, Addresses: list}
	}
	return out
}

func compareAddress(a, b v1beta1.AnnouncedAddress) int {
	ia, _ := netip.ParseAddr(a.IP)
	ib, _ := netip.ParseAddr(b.IP)
	if c := ia.Compare(ib); c != 0 {
		return c
	}
	if a.Protocol != b.Protocol {
		if a.Protocol == v1beta1.ProtocolLayer2 {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.Prefix, b.Prefix)
}

// Place assigns each of services a slice index. A Service that had one
// keeps it; a new one goes to the lowest slice with room, else to a new
// slice at the lowest free index. Empty slices disappear. When the slices
// are on average less than half full (after many Services went), the
// Services are packed again, in key order, into as few slices as they need.
// services need not be sorted; perSlice is the most Services per slice.
func Place(prev map[string]int, services []string, perSlice int) map[string]int {
	want := slices.Sorted(slices.Values(services))
	want = slices.Compact(want)
	next := make(map[string]int, len(want))
	count := map[int]int{}
	var fresh []string
	for _, s := range want {
		if i, ok := prev[s]; ok {
			next[s] = i
			count[i]++
		} else {
			fresh = append(fresh, s)
		}
	}
	i := 0
	for _, s := range fresh {
		for count[i] >= perSlice {
			i++
		}
		next[s] = i
		count[i]++
	}
	need := (len(want) + perSlice - 1) / perSlice
	if len(count) > 2*need && len(count) > 1 {
		for j, s := range want {
			next[s] = j / perSlice
		}
	}
	return next
}

// Group lists, per slice index, the Services placed in it, sorted.
func Group(place map[string]int) map[int][]string {
	out := map[int][]string{}
	for _, s := range slices.Sorted(maps.Keys(place)) {
		out[place[s]] = append(out[place[s]], s)
	}
	return out
}

// SliceName names slice i of node: the node's name for the first,
// "<node>.<i>" for the others (shortened with a hash of the node's name if
// that would pass the 253 characters a name may have).
func SliceName(node string, i int) string {
	if i == 0 {
		return node
	}
	suffix := "." + strconv.Itoa(i)
	if len(node)+len(suffix) <= 253 {
		return node + suffix
	}
	h := fnv.New32a()
	h.Write([]byte(node))
	return fmt.Sprintf("%s-%08x%s", strings.TrimRight(node[:253-len(suffix)-9], ".-"), h.Sum32(), suffix)
}

// SliceIndex is the index of node's slice called name, or -1 if SliceName
// gives no such name.
func SliceIndex(node, name string) int {
	if name == node {
		return 0
	}
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return -1
	}
	i, err := strconv.Atoi(name[dot+1:])
	if err != nil || i <= 0 || SliceName(node, i) != name {
		return -1
	}
	return i
}

// Slice is the content of node's slice listing services (sorted by key):
// name, labels (the node, and one per Service whose value says how it is
// announced: Layer2, BGP or Layer2-BGP), the Services and their counts.
// The caller sets the owner reference.
func Slice(node string, i int, services []v1beta1.ServiceAnnouncement) v1beta1.AnnouncementSlice {
	s := v1beta1.AnnouncementSlice{Node: node, Services: services, ServiceCount: int32(len(services))}
	s.Name = SliceName(node, i)
	s.Labels = map[string]string{
		"app.kubernetes.io/name":      "herald",
		"app.kubernetes.io/component": "speaker",
		v1beta1.LabelNode:             node,
	}
	for _, svc := range services {
		var l2, bgp bool
		for _, a := range svc.Addresses {
			switch a.Protocol {
			case v1beta1.ProtocolLayer2:
				s.Layer2Count++
				l2 = true
			case v1beta1.ProtocolBGP:
				s.BGPCount++
				bgp = true
			}
		}
		ns, name, _ := strings.Cut(svc.Service, "/")
		s.Labels[v1beta1.ServiceLabel(ns, name)] = protocols(l2, bgp)
	}
	return s
}

func protocols(l2, bgp bool) string {
	switch {
	case l2 && bgp:
		return string(v1beta1.ProtocolLayer2) + "-" + string(v1beta1.ProtocolBGP)
	case l2:
		return string(v1beta1.ProtocolLayer2)
	default:
		return string(v1beta1.ProtocolBGP)
	}
}

// Janitor reports whether self deletes the slices of speakers that are gone:
// it sees a majority of the speakers (so it is not the one cut off) and it
// comes first by name among the candidates (live speakers that see a
// majority), so one node does it.
func Janitor(self string, candidates []string, quorum bool) bool {
	return quorum && len(candidates) > 0 && slices.Min(candidates) == self
}

// GoneSelector selects the slices of the nodes not in live (self is
// among them): the slices a janitor deletes.
func GoneSelector(live []string) (labels.Selector, error) {
	exists, err := labels.NewRequirement(v1beta1.LabelNode, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	notLive, err := labels.NewRequirement(v1beta1.LabelNode, selection.NotIn, live)
	if err != nil {
		return nil, fmt.Errorf("svcstatus: live nodes %v: %w", live, err)
	}
	return labels.NewSelector().Add(*exists, *notLive), nil
}
