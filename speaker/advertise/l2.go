package advertise

import (
	"net/netip"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
)

// L2Target is one Service IP that Layer 2 mode announces.
type L2Target struct {
	IP      netip.Addr
	Service string
	// Eligible are the nodes an L2Advertisement selects that may attract the
	// Service's traffic (sorted). Election picks the owner among the live ones.
	Eligible []string
	// Selected are the nodes any L2Advertisement of the pool that selects
	// the Service selects, before externalTrafficPolicy: Local and
	// withdrawWithoutEndpoints narrow them (sorted).
	Selected []string
	// Interfaces per eligible node: nil means the default choice.
	Interfaces map[string][]string
	// Preferred gives the eligible nodes that preferredNodeSelectors rank
	// their place (0 first); the others are not preferred.
	Preferred map[string]int
	// NoEndpoint: advertisements with withdrawWithoutEndpoints left the
	// Service out, since it has no ready endpoint anywhere.
	NoEndpoint bool
}

// L2ForService returns a target for each of the Service's IPs whose pool an
// L2Advertisement selecting the Service covers. IPs outside every pool, or
// in pools without such an advertisement, are not announced in Layer 2 mode.
func L2ForService(m *config.Model, svc Service, nodes []Node) []L2Target {
	var out []L2Target
	for _, ip := range svc.IPs {
		pool := m.PoolFor(ip)
		if pool == nil {
			continue
		}
		var advs []*config.L2Advertisement
		for _, a := range m.L2AdvertisementsFor(pool.Name) {
			if a.SelectsService(svc.Labels) {
				advs = append(advs, a)
			}
		}
		if len(advs) == 0 {
			continue
		}
		t := L2Target{IP: ip, Service: svc.Key, Interfaces: map[string][]string{}, Preferred: map[string]int{}}
		selected, eligible := map[string]bool{}, map[string]bool{}
		for _, n := range nodes {
			p := placeOn(advs, n, svc.Labels, svc.ReadyEndpoint)
			if !p.selected {
				continue
			}
			selected[n.Name] = true
			if !p.announced {
				t.NoEndpoint = true
				continue
			}
			if !svc.servedBy(n.Name) {
				continue
			}
			eligible[n.Name] = true
			if !p.defaultIface {
				t.Interfaces[n.Name] = p.ifaces
			}
			if p.preference != config.NotPreferred {
				t.Preferred[n.Name] = p.preference
			}
		}
		t.Selected, t.Eligible = sortedNames(selected), sortedNames(eligible)
		// Kept per Service and address: no empty maps.
		if len(t.Interfaces) == 0 {
			t.Interfaces = nil
		}
		if len(t.Preferred) == 0 {
			t.Preferred = nil
		}
		out = append(out, t)
	}
	return out
}

// placement is what the advertisements that select a node say about it.
type placement struct {
	selected  bool // an advertisement selects the node
	announced bool // one of those announces the Service (endpoints permitting)
	// Of the advertisements that announce: their interfaces (one without
	// interfaces means the default choice) and the node's best preference.
	ifaces       []string
	defaultIface bool
	preference   int
}

func placeOn(advs []*config.L2Advertisement, n Node, svcLabels map[string]string, ready bool) placement {
	p := placement{preference: config.NotPreferred}
	set := map[string]bool{}
	for _, a := range advs {
		if !a.SelectsNode(n.Labels) {
			continue
		}
		p.selected = true
		if !a.Announces(svcLabels, ready) {
			continue
		}
		p.announced = true
		if len(a.Interfaces) == 0 {
			p.defaultIface = true
		}
		for _, i := range a.Interfaces {
			set[i] = true
		}
		if pref := a.Preference(n.Labels); pref != config.NotPreferred && (p.preference == config.NotPreferred || pref < p.preference) {
			p.preference = pref
		}
	}
	p.ifaces = sortedNames(set)
	return p
}

// SkipReason says why node does not announce the target when the owner
// election did not choose it.
func (t L2Target) SkipReason(node string) v1beta1.L2SkipReason {
	switch {
	case !contains(t.Selected, node):
		return v1beta1.L2SkipNodeNotSelected
	case !contains(t.Eligible, node) && t.NoEndpoint:
		return v1beta1.L2SkipNoEndpoint
	case !contains(t.Eligible, node):
		return v1beta1.L2SkipNoLocalEndpoint
	default:
		return v1beta1.L2SkipOwnedElsewhere
	}
}

func contains(sorted []string, s string) bool {
	for _, v := range sorted {
		if v == s {
			return true
		}
	}
	return false
}
