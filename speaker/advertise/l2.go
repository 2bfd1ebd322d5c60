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
	// Selected are the nodes any L2Advertisement of the pool selects, before
	// externalTrafficPolicy: Local narrows them (sorted).
	Selected []string
	// Interfaces per eligible node: nil means the default choice.
	Interfaces map[string][]string
}

// L2ForService returns a target for each of the Service's IPs whose pool an
// L2Advertisement selects. IPs outside every pool, or in pools without an
// L2Advertisement, are not announced in Layer 2 mode.
func L2ForService(m *config.Model, svc Service, nodes []Node) []L2Target {
	var out []L2Target
	for _, ip := range svc.IPs {
		pool := m.PoolFor(ip)
		if pool == nil {
			continue
		}
		advs := m.L2AdvertisementsFor(pool.Name)
		if len(advs) == 0 {
			continue
		}
		t := L2Target{IP: ip, Service: svc.Key, Interfaces: map[string][]string{}}
		selected, eligible := map[string]bool{}, map[string]bool{}
		for _, n := range nodes {
			ifaces, defaultIface, any := interfacesFor(advs, n)
			if !any {
				continue
			}
			selected[n.Name] = true
			if !svc.servedBy(n.Name) {
				continue
			}
			eligible[n.Name] = true
			if !defaultIface {
				t.Interfaces[n.Name] = ifaces
			}
		}
		t.Selected, t.Eligible = sortedNames(selected), sortedNames(eligible)
		out = append(out, t)
	}
	return out
}

// interfacesFor merges the interfaces of the advertisements that select the
// node. One advertisement without interfaces means the default choice.
func interfacesFor(advs []*config.L2Advertisement, n Node) (ifaces []string, defaultIface, selected bool) {
	set := map[string]bool{}
	for _, a := range advs {
		if !a.SelectsNode(n.Labels) {
			continue
		}
		selected = true
		if len(a.Interfaces) == 0 {
			defaultIface = true
		}
		for _, i := range a.Interfaces {
			set[i] = true
		}
	}
	return sortedNames(set), defaultIface, selected
}

// SkipReason says why node does not announce the target, given the owner
// election chose ("" when no live node is eligible).
func (t L2Target) SkipReason(node, owner string) v1beta1.L2SkipReason {
	switch {
	case !contains(t.Selected, node):
		return v1beta1.L2SkipNodeNotSelected
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
