// Package advertise decides, from the config model and what the cluster
// looks like, which Service IPs a speaker should advertise and how: for
// Layer 2, which nodes may own each IP and on which interfaces; for BGP,
// which routes go to which peer with which attributes. It is pure: no
// client, no sockets. Work is per Service, so a speaker recomputes only what
// an event touched.
package advertise

import (
	"net/netip"
	"slices"
	"sort"

	"github.com/heraldlb/herald/internal/config"
)

// Service is what a speaker knows of one LoadBalancer Service.
type Service struct {
	// Key is "namespace/name".
	Key string
	// IPs from status.loadBalancer.ingress.
	IPs []netip.Addr
	// LocalTraffic is externalTrafficPolicy: Local: only nodes with a ready
	// endpoint may attract its traffic.
	LocalTraffic bool
	// EndpointNodes are the nodes with at least one ready endpoint, sorted,
	// each once (a slice: the speaker keeps one per Service).
	EndpointNodes []string
	// ReadyEndpoint: the Service has a ready endpoint somewhere (on a node
	// or not). Advertisements with withdrawWithoutEndpoints skip a Service
	// without one.
	ReadyEndpoint bool
	// Labels are the Service's labels, for serviceSelectors.
	Labels map[string]string
}

// servedBy reports whether the node may attract the Service's traffic.
func (s Service) servedBy(node string) bool {
	if !s.LocalTraffic {
		return true
	}
	_, found := slices.BinarySearch(s.EndpointNodes, node)
	return found
}

// Node is a cluster node as the speaker sees it.
type Node struct {
	Name   string
	Labels map[string]string
	// Withdrawal is how far this node is in taking its BGP routes away
	// (BGPForService reads it for the node it computes for; Layer 2
	// learns that a node is excluded from what the node publishes).
	Withdrawal Withdrawal
}

// Withdrawal is where a node excluded from load balancing (drained,
// excluded from external load balancers, network unavailable) is in
// withdrawing its BGP routes.
type Withdrawal int

const (
	// Advertising means the node is in service.
	Advertising Withdrawal = iota
	// GracefulShutdown means its routes carry the GRACEFUL_SHUTDOWN community
	// (RFC 8326), so that routers move traffic to other paths first.
	GracefulShutdown
	// Withdrawn means the node advertises nothing.
	Withdrawn
)

// CommunityGracefulShutdown is RFC 8326's GRACEFUL_SHUTDOWN, 65535:0.
const CommunityGracefulShutdown uint32 = 0xFFFF0000

func sortedNames(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// WithdrawnBy names the advertisements ("L2Advertisement/name",
// "BGPAdvertisement/name", sorted) that leave the Service out because it
// has externalTrafficPolicy Cluster and no ready endpoint anywhere, and
// would announce it otherwise. A Service with a ready endpoint, or with
// externalTrafficPolicy Local (which follows its endpoints anyway), has none.
func WithdrawnBy(m *config.Model, svc Service) []string {
	if svc.ReadyEndpoint || svc.LocalTraffic {
		return nil
	}
	set := map[string]bool{}
	for _, ip := range svc.IPs {
		pool := m.PoolFor(ip)
		if pool == nil {
			continue
		}
		for _, a := range m.L2AdvertisementsFor(pool.Name) {
			if a.WithdrawWithoutEndpoints && a.SelectsService(svc.Labels) {
				set[config.KindL2Advertisement+"/"+a.Name] = true
			}
		}
		for _, a := range m.BGPAdvertisementsFor(pool.Name) {
			if a.WithdrawWithoutEndpoints && a.SelectsService(svc.Labels) {
				set[config.KindBGPAdvertisement+"/"+a.Name] = true
			}
		}
	}
	if len(set) == 0 {
		return nil
	}
	return sortedNames(set)
}
