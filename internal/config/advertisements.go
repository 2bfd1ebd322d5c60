package config

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

func (b *builder) l2Advertisements() {
	for i := range b.in.L2Advertisements {
		obj := &b.in.L2Advertisements[i]
		ref := Ref{KindL2Advertisement, obj.Name}
		if _, in, ok := lastValid(b, ref, *obj.Spec.DeepCopy(), func(s v1beta1.L2AdvertisementSpec) (*L2Advertisement, error) {
			return b.parseL2(obj.Name, s, nil)
		}); ok {
			// Resolve again, now reporting what is missing.
			adv, _ := b.parseL2(obj.Name, in, &b.problems)
			b.m.L2Advertisements = append(b.m.L2Advertisements, adv)
			b.m.inputs[ref] = in
		}
	}
	sort.Slice(b.m.L2Advertisements, func(i, j int) bool { return b.m.L2Advertisements[i].Name < b.m.L2Advertisements[j].Name })
}

func (b *builder) parseL2(name string, s v1beta1.L2AdvertisementSpec, report *problems) (*L2Advertisement, error) {
	adv := &L2Advertisement{Name: name, Interfaces: append([]string(nil), s.Interfaces...)}
	sort.Strings(adv.Interfaces)
	var err error
	if adv.NodeSelectors, err = selectors(s.NodeSelectors); err != nil {
		return nil, fmt.Errorf("nodeSelectors: %w", err)
	}
	if adv.PreferredNodeSelectors, err = checkedSelectors(s.PreferredNodeSelectors); err != nil {
		return nil, fmt.Errorf("preferredNodeSelectors%w", err)
	}
	if adv.ServiceSelection, err = serviceSelection(s.ServiceSelectors, s.WithdrawWithoutEndpoints); err != nil {
		return nil, err
	}
	if adv.Pools, err = b.resolvePools(Ref{KindL2Advertisement, name}, s.PoolSelection, report); err != nil {
		return nil, err
	}
	if report != nil {
		b.checkPreferences(adv, report)
	}
	return adv, nil
}

// checkPreferences reports preferred selectors that prefer no node: they
// match no node, or only nodes the advertisement does not select.
func (b *builder) checkPreferences(adv *L2Advertisement, report *problems) {
	if len(b.in.Nodes) == 0 {
		return // nodes unknown (a model built without them)
	}
	for i, sel := range adv.PreferredNodeSelectors {
		matched, selected := 0, 0
		for _, nodeLabels := range b.in.Nodes {
			if sel.Matches(labels.Set(nodeLabels)) {
				matched++
				if adv.SelectsNode(nodeLabels) {
					selected++
				}
			}
		}
		switch {
		case matched == 0:
			report.add(Ref{KindL2Advertisement, adv.Name}, Degraded, ReasonNoPreferredNode,
				"preferredNodeSelectors[%d] (%s) matches no node, so it prefers none", i, sel)
		case selected == 0:
			report.add(Ref{KindL2Advertisement, adv.Name}, Degraded, ReasonNoPreferredNode,
				"preferredNodeSelectors[%d] (%s) matches only nodes that nodeSelectors leave out, so it prefers none", i, sel)
		}
	}
}

// ReasonNoPreferredNode says that a preferred node selector of an
// L2Advertisement prefers no node it selects.
const ReasonNoPreferredNode = "NoPreferredNode"

// serviceSelection parses the Service part of an advertisement.
func serviceSelection(sel []v1beta1.LabelSelector, withdraw bool) (ServiceSelection, error) {
	out := ServiceSelection{WithdrawWithoutEndpoints: withdraw}
	var err error
	if out.ServiceSelectors, err = checkedSelectors(sel); err != nil {
		return out, fmt.Errorf("serviceSelectors%w", err)
	}
	return out, nil
}

// checkedSelectors converts the API's checked selectors; the error names
// the index of the first bad one (the API server refuses them, so only an
// object written past its validation gets here).
func checkedSelectors(in []v1beta1.LabelSelector) ([]labels.Selector, error) {
	out := make([]labels.Selector, 0, len(in))
	for i := range in {
		m := in[i].Meta()
		s, err := metav1.LabelSelectorAsSelector(&m)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (b *builder) bgpAdvertisements() {
	for i := range b.in.BGPAdvertisements {
		obj := &b.in.BGPAdvertisements[i]
		ref := Ref{KindBGPAdvertisement, obj.Name}
		if _, in, ok := lastValid(b, ref, *obj.Spec.DeepCopy(), func(s v1beta1.BGPAdvertisementSpec) (*BGPAdvertisement, error) {
			return b.parseBGP(obj.Name, s, nil)
		}); ok {
			adv, _ := b.parseBGP(obj.Name, in, &b.problems)
			b.m.BGPAdvertisements = append(b.m.BGPAdvertisements, adv)
			b.m.inputs[ref] = in
		}
	}
	sort.Slice(b.m.BGPAdvertisements, func(i, j int) bool { return b.m.BGPAdvertisements[i].Name < b.m.BGPAdvertisements[j].Name })
}

func (b *builder) parseBGP(name string, s v1beta1.BGPAdvertisementSpec, report *problems) (*BGPAdvertisement, error) {
	ref := Ref{KindBGPAdvertisement, name}
	adv := &BGPAdvertisement{Name: name, AggregationLength: 32, AggregationLengthV6: 128}
	if s.AggregationLength != nil {
		adv.AggregationLength = int(*s.AggregationLength)
	}
	if s.AggregationLengthV6 != nil {
		adv.AggregationLengthV6 = int(*s.AggregationLengthV6)
	}
	if adv.AggregationLength < 0 || adv.AggregationLength > 32 {
		return nil, fmt.Errorf("aggregationLength: %d is outside 0-32", adv.AggregationLength)
	}
	if adv.AggregationLengthV6 < 0 || adv.AggregationLengthV6 > 128 {
		return nil, fmt.Errorf("aggregationLengthV6: %d is outside 0-128", adv.AggregationLengthV6)
	}
	var err error
	if adv.NodeSelectors, err = selectors(s.NodeSelectors); err != nil {
		return nil, fmt.Errorf("nodeSelectors: %w", err)
	}
	if adv.ServiceSelection, err = serviceSelection(s.ServiceSelectors, s.WithdrawWithoutEndpoints); err != nil {
		return nil, err
	}
	for i, c := range s.Communities {
		v, err := ParseCommunity(string(c))
		if err != nil {
			return nil, fmt.Errorf("communities[%d]: %w", i, err)
		}
		adv.Communities = append(adv.Communities, v)
	}
	sort.Slice(adv.Communities, func(i, j int) bool { return adv.Communities[i] < adv.Communities[j] })
	for i, c := range s.LargeCommunities {
		v, err := ParseLargeCommunity(string(c))
		if err != nil {
			return nil, fmt.Errorf("largeCommunities[%d]: %w", i, err)
		}
		adv.LargeCommunities = append(adv.LargeCommunities, v)
	}
	if s.LocalPref != nil {
		if *s.LocalPref < 0 || *s.LocalPref > 4294967295 {
			return nil, fmt.Errorf("localPref: %d is outside 0-4294967295", *s.LocalPref)
		}
		lp := uint32(*s.LocalPref)
		adv.LocalPref = &lp
	}
	pools, err := b.resolvePools(ref, s.PoolSelection, report)
	if err != nil {
		return nil, err
	}
	// A pool block wider than the aggregation would advertise addresses
	// outside the pool: leave that pool out and say so.
	for _, name := range pools {
		if bad := aggregationTooShort(b.m.Pools[name], adv); bad != "" {
			if report != nil {
				report.add(ref, Degraded, v1beta1.ReasonInvalid, "IPPool %q is not advertised: %s", name, bad)
			}
			continue
		}
		adv.Pools = append(adv.Pools, name)
	}
	adv.Peers = b.resolvePeers(ref, s.Peers, report)
	if adv.LocalPref != nil && report != nil {
		var ebgp []string
		for _, p := range adv.Peers {
			if !b.m.Peers[p].IBGP() {
				ebgp = append(ebgp, p)
			}
		}
		if len(ebgp) > 0 {
			report.add(ref, Degraded, v1beta1.ReasonInvalid,
				"localPref is an iBGP attribute: routes go to eBGP peers %s without it", strings.Join(ebgp, ", "))
		}
	}
	return adv, nil
}

// LocalPrefFor is the LOCAL_PREF to send to peer: never to an eBGP peer.
func (a *BGPAdvertisement) LocalPrefFor(p *Peer) *uint32 {
	if p == nil || !p.IBGP() {
		return nil
	}
	return a.LocalPref
}

func aggregationTooShort(p *Pool, adv *BGPAdvertisement) string {
	for _, r := range p.Ranges {
		agg := adv.AggregationLength
		if !r.First.Is4() {
			agg = adv.AggregationLengthV6
		}
		for _, pfx := range r.Prefixes() {
			if agg < pfx.Bits() {
				return fmt.Sprintf("aggregation length /%d is shorter than its block %s, so the route would cover addresses outside the pool", agg, pfx)
			}
		}
	}
	return ""
}

// resolvePools returns the sorted names of the valid pools a selection picks.
// Names that do not resolve are reported (when report is set) and left out.
func (b *builder) resolvePools(ref Ref, sel v1beta1.PoolSelection, report *problems) ([]string, error) {
	sels, err := selectors(sel.IPPoolSelectors)
	if err != nil {
		return nil, fmt.Errorf("ipPoolSelectors: %w", err)
	}
	picked := map[string]bool{}
	if len(sel.IPPools) == 0 && len(sels) == 0 {
		for name := range b.m.Pools {
			picked[name] = true
		}
	}
	for _, name := range sel.IPPools {
		if _, ok := b.m.Pools[name]; ok {
			picked[name] = true
			continue
		}
		if report != nil {
			report.add(ref, Degraded, v1beta1.ReasonMissing, "ipPools: %s", b.whyMissing(KindIPPool, name))
		}
	}
	for _, p := range b.m.Pools {
		for _, s := range sels {
			if s.Matches(labels.Set(p.Labels)) {
				picked[p.Name] = true
			}
		}
	}
	return sortedKeys(picked), nil
}

// resolvePeers returns the sorted names of the usable peers named (all when none).
func (b *builder) resolvePeers(ref Ref, names []string, report *problems) []string {
	picked := map[string]bool{}
	if len(names) == 0 {
		for name := range b.m.Peers {
			picked[name] = true
		}
	}
	for _, name := range names {
		if _, ok := b.m.Peers[name]; ok {
			picked[name] = true
		} else if report != nil {
			report.add(ref, Degraded, v1beta1.ReasonMissing, "peers: %s", b.whyMissing(KindBGPPeer, name))
		}
	}
	return sortedKeys(picked)
}

// whyMissing tells a missing object from one that exists but is not in use.
func (b *builder) whyMissing(kind, name string) string {
	exists := false
	switch kind {
	case KindIPPool:
		for i := range b.in.Pools {
			exists = exists || b.in.Pools[i].Name == name
		}
	case KindBGPPeer:
		for i := range b.in.Peers {
			exists = exists || b.in.Peers[i].Name == name
		}
	}
	if exists {
		return fmt.Sprintf("%s %q is not in use (see its status)", kind, name)
	}
	return fmt.Sprintf("%s %q does not exist", kind, name)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
