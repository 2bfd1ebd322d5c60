package advertise

import (
	"net/netip"
	"slices"
	"sort"

	"github.com/heraldlb/herald/internal/config"
)

// Route is one prefix a node advertises to one peer on behalf of one Service.
type Route struct {
	Peer             string
	Prefix           netip.Prefix
	Communities      []uint32
	LargeCommunities []config.LargeCommunity
	LocalPref        *uint32
}

// BGPForService returns the routes this node advertises for the Service:
// for every IP in a pool that a BGPAdvertisement selecting this node and
// the Service covers, one route per peer of that advertisement that also
// peers with this node, with the IP aggregated to the advertisement's
// length. With externalTrafficPolicy: Local, nothing unless this node has
// a ready endpoint; with withdrawWithoutEndpoints, nothing from that
// advertisement while the Service has no ready endpoint anywhere. A node
// excluded from load balancing adds GRACEFUL_SHUTDOWN to every route, then
// advertises nothing (self.Withdrawal).
func BGPForService(m *config.Model, svc Service, self Node) []Route {
	if !svc.servedBy(self.Name) || self.Withdrawal == Withdrawn {
		return nil
	}
	mine := map[string]*config.Peer{}
	for _, p := range m.PeersForNode(self.Labels) {
		mine[p.Name] = p
	}
	var out []Route
	for _, ip := range svc.IPs {
		pool := m.PoolFor(ip)
		if pool == nil {
			continue
		}
		for _, adv := range m.BGPAdvertisementsFor(pool.Name) {
			if !adv.SelectsNode(self.Labels) || !adv.Announces(svc.Labels, svc.ReadyEndpoint) {
				continue
			}
			bits := adv.AggregationLength
			if ip.Is6() {
				bits = adv.AggregationLengthV6
			}
			prefix := netip.PrefixFrom(ip, bits).Masked()
			for _, name := range adv.Peers {
				peer, ok := mine[name]
				if !ok {
					continue
				}
				r := Route{
					Peer:             name,
					Prefix:           prefix,
					Communities:      adv.Communities,
					LargeCommunities: adv.LargeCommunities,
					LocalPref:        adv.LocalPrefFor(peer),
				}
				if self.Withdrawal == GracefulShutdown {
					r.Communities = append(slices.Clone(adv.Communities), CommunityGracefulShutdown)
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// Merge folds routes for the same (peer, prefix) — from several Services in
// one aggregate, a shared IP, or several advertisements — into one: the union
// of the communities and the highest local preference. The result is sorted
// by peer, then prefix.
func Merge(routes []Route) []Route {
	type key struct {
		peer   string
		prefix netip.Prefix
	}
	merged := map[key]*Route{}
	for _, r := range routes {
		k := key{r.Peer, r.Prefix}
		cur, ok := merged[k]
		if !ok {
			c := r
			c.Communities = append([]uint32(nil), r.Communities...)
			c.LargeCommunities = append([]config.LargeCommunity(nil), r.LargeCommunities...)
			merged[k] = &c
			continue
		}
		cur.Communities = append(cur.Communities, r.Communities...)
		cur.LargeCommunities = append(cur.LargeCommunities, r.LargeCommunities...)
		if r.LocalPref != nil && (cur.LocalPref == nil || *r.LocalPref > *cur.LocalPref) {
			cur.LocalPref = r.LocalPref
		}
	}
	out := make([]Route, 0, len(merged))
	for _, r := range merged {
		r.Communities = uniqueCommunities(r.Communities)
		r.LargeCommunities = uniqueLarge(r.LargeCommunities)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Peer != out[j].Peer {
			return out[i].Peer < out[j].Peer
		}
		return out[i].Prefix.Addr().Less(out[j].Prefix.Addr()) ||
			(out[i].Prefix.Addr() == out[j].Prefix.Addr() && out[i].Prefix.Bits() < out[j].Prefix.Bits())
	})
	return out
}

func uniqueCommunities(in []uint32) []uint32 {
	if len(in) == 0 {
		return nil
	}
	sort.Slice(in, func(i, j int) bool { return in[i] < in[j] })
	out := in[:1]
	for _, c := range in[1:] {
		if c != out[len(out)-1] {
			out = append(out, c)
		}
	}
	return out
}

func uniqueLarge(in []config.LargeCommunity) []config.LargeCommunity {
	if len(in) == 0 {
		return nil
	}
	less := func(a, b config.LargeCommunity) bool {
		if a.Global != b.Global {
			return a.Global < b.Global
		}
		if a.Local1 != b.Local1 {
			return a.Local1 < b.Local1
		}
		return a.Local2 < b.Local2
	}
	sort.Slice(in, func(i, j int) bool { return less(in[i], in[j]) })
	out := in[:1]
	for _, c := range in[1:] {
		if c != out[len(out)-1] {
			out = append(out, c)
		}
	}
	return out
}
