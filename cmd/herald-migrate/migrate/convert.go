package migrate

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// AnnotationMigratedFrom marks every object herald-migrate writes with the
// MetalLB object it comes from.
const AnnotationMigratedFrom = "herald.dev/migrated-from"

// Result is Herald's configuration for a MetalLB one.
type Result struct {
	// Objects in the order to create them: BFD profiles, pools, peers,
	// advertisements.
	Objects []client.Object
	// Refusals are fields with no Herald equivalent: the configuration
	// would not do the same in Herald.
	Refusals []Finding
	// Notes say where Herald behaves differently in a way that does not
	// change which addresses Services get, or what to do by hand.
	Notes []Finding
}

// converter holds one conversion's findings.
type converter struct {
	in  Config
	out Result
	// communities are the aliases of the Community objects.
	communities map[string]string
}

// Convert translates MetalLB's configuration. It is pure.
func Convert(in Config) Result {
	c := &converter{in: in, communities: map[string]string{}}
	c.readCommunities()
	var objs []client.Object
	for _, b := range in.BFDProfiles {
		if o := c.bfdProfile(b); o != nil {
			objs = append(objs, o)
		}
	}
	for _, o := range c.pools() {
		objs = append(objs, o)
	}
	v4, v6 := poolFamilies(objs)
	for _, p := range in.Peers {
		if o := c.peer(p, v4, v6); o != nil {
			objs = append(objs, o)
		}
	}
	for _, a := range in.L2Advertisements {
		if o := c.l2Advertisement(a); o != nil {
			objs = append(objs, o)
		}
	}
	for _, a := range in.BGPAdvertisements {
		if o := c.bgpAdvertisement(a); o != nil {
			objs = append(objs, o)
		}
	}
	c.out.Objects = objs
	return c.out
}

func (c *converter) refuse(o Object, field, format string, args ...any) {
	c.out.Refusals = append(c.out.Refusals, Finding{Object: describe(o), Field: field, Message: fmt.Sprintf(format, args...)})
}

func (c *converter) note(o Object, field, format string, args ...any) {
	c.out.Notes = append(c.out.Notes, Finding{Object: describe(o), Field: field, Message: fmt.Sprintf(format, args...)})
}

// refused drops the notes made since mark (len of Notes when the object's
// conversion began): the object they are about is not written.
func (c *converter) refused(mark int) {
	c.out.Notes = c.out.Notes[:mark]
}

// meta is the Herald object's metadata: the MetalLB object's name and
// labels (advertisements select pools by them) and where it comes from.
func meta(o Object) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: o.Metadata.Name, Annotations: map[string]string{
		AnnotationMigratedFrom: fmt.Sprintf("%s %s %s/%s", Group, o.Kind, o.Metadata.Namespace, o.Metadata.Name),
	}}
	if len(o.Metadata.Labels) > 0 {
		m.Labels = map[string]string{}
		for k, v := range o.Metadata.Labels {
			m.Labels[k] = v
		}
	}
	return m
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: kind}
}

func (c *converter) readCommunities() {
	for _, cm := range c.in.Communities {
		for i, a := range cm.Spec.Communities {
			field := fmt.Sprintf("spec.communities[%d]", i)
			if _, dup := c.communities[a.Name]; dup {
				c.refuse(cm.Object, field, "community name %q is defined twice", a.Name)
				continue
			}
			if _, _, err := community(a.Value); err != nil {
				c.refuse(cm.Object, field, "%v", err)
				continue
			}
			c.communities[a.Name] = a.Value
		}
	}
}

// community parses a MetalLB community value: "65000:100", or
// "large:65000:1:2" for a large community.
func community(v string) (std v1beta1.Community, large v1beta1.LargeCommunity, err error) {
	parts := strings.Split(v, ":")
	switch {
	case len(parts) == 2:
		for _, p := range parts {
			if _, err := strconv.ParseUint(p, 10, 16); err != nil {
				return "", "", fmt.Errorf("community %q: %q is not a number of 0-65535", v, p)
			}
		}
		return v1beta1.Community(v), "", nil
	case len(parts) == 4 && parts[0] == "large":
		for _, p := range parts[1:] {
			if _, err := strconv.ParseUint(p, 10, 32); err != nil {
				return "", "", fmt.Errorf("large community %q: %q is not a number of 0-4294967295", v, p)
			}
		}
		return "", v1beta1.LargeCommunity(strings.Join(parts[1:], ":")), nil
	}
	return "", "", fmt.Errorf("community %q is neither a value (65000:100, large:65000:1:2) nor a name a Community object defines", v)
}

func (c *converter) bfdProfile(b BFDProfile) *v1beta1.BFDProfile {
	mark := len(c.out.Notes)
	s, ok := b.Spec, true
	if s.EchoMode != nil && *s.EchoMode {
		c.refuse(b.Object, "spec.echoMode", "Herald's BFD has no echo mode")
		ok = false
	}
	if s.PassiveMode != nil && *s.PassiveMode {
		c.refuse(b.Object, "spec.passiveMode", "Herald's BFD has no passive mode: it always sends control packets")
		ok = false
	}
	if s.MinimumTTL != nil {
		c.refuse(b.Object, "spec.minimumTtl", "Herald runs single-hop BFD only, where the TTL is always 255")
		ok = false
	}
	if s.EchoInterval != nil && (s.EchoMode == nil || !*s.EchoMode) {
		c.note(b.Object, "spec.echoInterval", "left out: it has no effect without echo mode")
	}
	if !ok {
		c.refused(mark)
		return nil
	}
	i32 := func(v *uint32) *int32 {
		if v == nil {
			return nil
		}
		n := int32(*v)
		return &n
	}
	return &v1beta1.BFDProfile{TypeMeta: typeMeta("BFDProfile"), ObjectMeta: meta(b.Object), Spec: v1beta1.BFDProfileSpec{
		ReceiveInterval: i32(s.ReceiveInterval), TransmitInterval: i32(s.TransmitInterval), DetectMultiplier: i32(s.DetectMultiplier),
	}}
}

// maxPriority is the highest allocateTo.priority Herald accepts.
const maxPriority = 1000000

// pools translates the IPAddressPools. MetalLB tries the pools that have
// a serviceAllocation before those without one, the former by priority
// with an unset priority last; Herald orders all pools by priority, unset
// last, then by name. So a pool with a serviceAllocation but no priority
// gets one past every priority set, and keeps MetalLB's order, when pools
// without a serviceAllocation would otherwise come before it.
func (c *converter) pools() []*v1beta1.IPPool {
	highest, plain := 0, false
	for _, p := range c.in.Pools {
		if a := p.Spec.ServiceAllocation; a != nil {
			highest = max(highest, a.Priority)
		} else if p.Spec.AutoAssign == nil || *p.Spec.AutoAssign {
			plain = true
		}
	}
	var out []*v1beta1.IPPool
	for _, p := range c.in.Pools {
		if o := c.pool(p, highest+1, plain); o != nil {
			out = append(out, o)
		}
	}
	return out
}

func (c *converter) pool(p IPAddressPool, unsetPriority int, plainPools bool) *v1beta1.IPPool {
	mark := len(c.out.Notes)
	s, ok := p.Spec, true
	o := &v1beta1.IPPool{TypeMeta: typeMeta("IPPool"), ObjectMeta: meta(p.Object)}
	if len(s.Addresses) == 0 {
		c.refuse(p.Object, "spec.addresses", "a pool needs addresses")
		ok = false
	}
	if len(s.Addresses) > 32 {
		c.refuse(p.Object, "spec.addresses", "%d blocks; Herald takes at most 32 per pool", len(s.Addresses))
		ok = false
	}
	for i, a := range s.Addresses {
		r, changed, err := addressRange(a)
		if err != nil {
			c.refuse(p.Object, fmt.Sprintf("spec.addresses[%d]", i), "%v", err)
			ok = false
			continue
		}
		if changed {
			c.note(p.Object, fmt.Sprintf("spec.addresses[%d]", i), "%q is written %q, the same addresses as MetalLB reads it", a, r)
		}
		o.Spec.Addresses = append(o.Spec.Addresses, v1beta1.AddressRange(r))
	}
	if s.AutoAssign != nil && !*s.AutoAssign {
		o.Spec.AutoAssign = s.AutoAssign
	}
	o.Spec.AvoidBuggyIPs = s.AvoidBuggyIPs
	if a := s.ServiceAllocation; a != nil {
		to := &v1beta1.AllocateTo{
			Namespaces:         slices.Clone(a.Namespaces),
			NamespaceSelectors: slices.Clone(a.NamespaceSelectors),
			ServiceSelectors:   slices.Clone(a.ServiceSelectors),
		}
		switch {
		case a.Priority < 0 || a.Priority > maxPriority:
			c.refuse(p.Object, "spec.serviceAllocation.priority", "%d is outside Herald's 0-%d", a.Priority, maxPriority)
			ok = false
		case a.Priority > 0:
			to.Priority = int32(a.Priority)
		case plainPools && (s.AutoAssign == nil || *s.AutoAssign):
			if unsetPriority > maxPriority {
				c.refuse(p.Object, "spec.serviceAllocation.priority", "unset, but no priority past every other pool's is left within Herald's 0-%d", maxPriority)
				ok = false
				break
			}
			to.Priority = int32(unsetPriority)
			c.note(p.Object, "spec.serviceAllocation.priority", "set to %d: MetalLB tries a pool with a serviceAllocation before pools without one, and Herald orders pools by priority", unsetPriority)
		}
		if len(a.Namespaces) > 0 && len(a.NamespaceSelectors) > 0 {
			// Herald takes one or the other; a selector on the name
			// label every namespace carries says the same.
			to.Namespaces = nil
			to.NamespaceSelectors = append(to.NamespaceSelectors, metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: slices.Clone(a.Namespaces),
			}}})
			c.note(p.Object, "spec.serviceAllocation.namespaces", "written as a namespace selector on %s (Herald takes namespaces or namespaceSelectors, not both)", corev1.LabelMetadataName)
		}
		o.Spec.AllocateTo = to
	}
	if !ok {
		c.refused(mark)
		return nil
	}
	return o
}

// poolFamilies says which families the translated pools hold.
func poolFamilies(objs []client.Object) (v4, v6 bool) {
	for _, o := range objs {
		p, ok := o.(*v1beta1.IPPool)
		if !ok {
			continue
		}
		for _, a := range p.Spec.Addresses {
			if strings.Contains(string(a), ":") {
				v6 = true
			} else {
				v4 = true
			}
		}
	}
	return v4, v6
}

func (c *converter) peer(p BGPPeer, v4 bool, v6 bool) *v1beta1.BGPPeer {
	mark := len(c.out.Notes)
	s, ok := p.Spec, true
	refuse := func(field, format string, args ...any) {
		c.refuse(p.Object, field, format, args...)
		ok = false
	}
	o := &v1beta1.BGPPeer{TypeMeta: typeMeta("BGPPeer"), ObjectMeta: meta(p.Object), Spec: v1beta1.BGPPeerSpec{
		MyASN: int64(s.MyASN), PeerAddress: s.PeerAddress, Interface: s.Interface, SourceAddress: s.SourceAddress,
		RouterID: s.RouterID, Password: s.Password, BFDProfile: s.BFDProfile, EBGPMultiHop: s.EBGPMultiHop,
		GracefulRestart: s.EnableGracefulRestart, NodeSelectors: slices.Clone(s.NodeSelectors),
		DynamicASN: v1beta1.DynamicASN(s.DynamicASN), HoldTime: s.HoldTime, KeepaliveTime: s.KeepaliveTime, ConnectTime: s.ConnectTime,
	}}
	if s.PeerASN != 0 {
		asn := int64(s.PeerASN)
		o.Spec.PeerASN = &asn
	}
	if s.PeerPort != 0 {
		o.Spec.PeerPort = int32(s.PeerPort)
	}
	if s.VRF != "" {
		refuse("spec.vrf", "Herald peers from the node's default VRF only")
	}
	if s.LocalASN != 0 {
		refuse("spec.localASN", "Herald has no local-as: set myASN to the AS the peer expects")
	}
	if s.PeerAddress != "" && s.Interface != "" {
		refuse("spec.interface", "MetalLB refuses peerAddress and interface together")
	}
	if s.HoldTime != nil && s.HoldTime.Duration < 3*time.Second {
		refuse("spec.holdTime", "%s: Herald's sessions always send keepalives, with a hold time of 3s or more", s.HoldTime.Duration)
	}
	if s.EBGPMultiHop && s.PeerASN != 0 && s.PeerASN == s.MyASN {
		refuse("spec.ebgpMultiHop", "set on an iBGP peer, which MetalLB refuses too")
	}
	if ps := s.PasswordSecret; ps != nil && ps.Name != "" {
		o.Spec.PasswordSecret = &v1beta1.SecretRef{Name: ps.Name}
		c.note(p.Object, "spec.passwordSecret", "copy the Secret to %s, where Herald reads it (key \"password\"): "+
			"kubectl -n %s get secret %s -o go-template='{{.data.password | base64decode}}' | kubectl -n %s create secret generic %s --from-file=password=/dev/stdin",
			v1beta1.Namespace, p.Metadata.Namespace, ps.Name, v1beta1.Namespace, ps.Name)
	}
	if s.Interface != "" {
		c.note(p.Object, "spec.interface", "Herald finds the peer by its IPv6 Router Advertisements on %s and sends its own; IPv4 routes get an IPv6 next hop unless %s has an IPv4 address (see docs/bgp.md)", s.Interface, s.Interface)
	}
	other := v6
	if a, err := netip.ParseAddr(s.PeerAddress); err == nil && a.Is6() {
		other = v4
	}
	if (!s.DualStackAddressFamily || s.DisableMP) && s.Interface == "" && other {
		c.note(p.Object, "spec.dualStackAddressFamily", "Herald sends routes of both families over every session (with the node's address of the other family as next hop); MetalLB sent only the session's family")
	}
	if !ok {
		c.refused(mark)
		return nil
	}
	return o
}

func (c *converter) l2Advertisement(a L2Advertisement) *v1beta1.L2Advertisement {
	mark := len(c.out.Notes)
	s := a.Spec
	services, sok := c.selectors(a.Object, "spec.serviceSelectors", s.ServiceSelectors)
	preferred, pok := c.preferences(a)
	ok := sok && pok
	for i, ifname := range s.Interfaces {
		if ifname == "" || len(ifname) > 15 || strings.ContainsAny(ifname, " \t/:") {
			c.refuse(a.Object, fmt.Sprintf("spec.interfaces[%d]", i), "%q is not an interface name", ifname)
			ok = false
		}
	}
	if !ok {
		c.refused(mark)
		return nil
	}
	if len(s.Interfaces) == 0 {
		c.note(a.Object, "spec.interfaces", "unset: Herald answers on the interface whose subnet holds the address (else the one its route leaves by), where MetalLB answered on every interface")
	}
	return &v1beta1.L2Advertisement{TypeMeta: typeMeta("L2Advertisement"), ObjectMeta: meta(a.Object), Spec: v1beta1.L2AdvertisementSpec{
		PoolSelection: v1beta1.PoolSelection{IPPools: slices.Clone(s.IPAddressPools), IPPoolSelectors: slices.Clone(s.IPAddressPoolSelectors)},
		NodeSelectors: slices.Clone(s.NodeSelectors), Interfaces: slices.Clone(s.Interfaces),
		ServiceSelectors: services, PreferredNodeSelectors: preferred,
	}}
}

// Bounds of Herald's checked selectors (api/v1beta1.LabelSelector).
const (
	maxSelectors       = 16
	maxMatchLabels     = 32
	maxMatchExpression = 16
	maxValues          = 64
	maxPreferred       = 8
)

// selectors converts MetalLB's selectors of field into Herald's checked
// ones, refusing those the API server would refuse.
func (c *converter) selectors(o Object, field string, in []metav1.LabelSelector) ([]v1beta1.LabelSelector, bool) {
	if len(in) > maxSelectors {
		c.refuse(o, field, "%d selectors; Herald takes at most %d", len(in), maxSelectors)
		return nil, false
	}
	var out []v1beta1.LabelSelector
	ok := true
	for i := range in {
		sel, err := checkedSelector(in[i])
		if err != nil {
			c.refuse(o, fmt.Sprintf("%s[%d]", field, i), "%v", err)
			ok = false
			continue
		}
		out = append(out, sel)
	}
	return out, ok
}

// checkedSelector converts one selector if Herald's API accepts it.
func checkedSelector(m metav1.LabelSelector) (v1beta1.LabelSelector, error) {
	if _, err := metav1.LabelSelectorAsSelector(&m); err != nil {
		return v1beta1.LabelSelector{}, err
	}
	switch {
	case len(m.MatchLabels) > maxMatchLabels:
		return v1beta1.LabelSelector{}, fmt.Errorf("%d matchLabels; Herald takes at most %d", len(m.MatchLabels), maxMatchLabels)
	case len(m.MatchExpressions) > maxMatchExpression:
		return v1beta1.LabelSelector{}, fmt.Errorf("%d matchExpressions; Herald takes at most %d", len(m.MatchExpressions), maxMatchExpression)
	}
	for _, e := range m.MatchExpressions {
		if len(e.Values) > maxValues {
			return v1beta1.LabelSelector{}, fmt.Errorf("%d values for %s; Herald takes at most %d", len(e.Values), e.Key, maxValues)
		}
	}
	return v1beta1.SelectorFrom(m), nil
}

// preferences translates MetalLB's weighted node preferences into
// Herald's ordered ones. MetalLB ranks a node by the sum of the weights of
// the selectors it matches, Herald by the first selector it matches; the
// two agree when no node can match two of the selectors and the weights
// differ: then heavier first is the same order. So herald-migrate writes
// them heaviest first when every two of them require different values of
// one label (zone=a and zone=b, say), and refuses them otherwise, as it
// does preferences of an advertisement whose pools another advertisement
// with preferences may share (MetalLB adds the weights of both, Herald
// takes a node's best place).
func (c *converter) preferences(a L2Advertisement) ([]v1beta1.LabelSelector, bool) {
	in := a.Spec.PreferredNodeSelectors
	if len(in) == 0 {
		return nil, true
	}
	const field = "spec.preferredNodeSelectors"
	if len(in) > maxPreferred {
		c.refuse(a.Object, field, "%d preferences; Herald takes at most %d", len(in), maxPreferred)
		return nil, false
	}
	for _, other := range c.in.L2Advertisements {
		if other.Metadata.Name != a.Metadata.Name && len(other.Spec.PreferredNodeSelectors) > 0 && mayShareAPool(a.Spec, other.Spec) {
			c.refuse(a.Object, field, "L2Advertisement %s also prefers nodes and may announce the same pools: MetalLB adds the weights of both, Herald takes a node's best place; put the preferences in one advertisement", other.Metadata.Name)
			return nil, false
		}
	}
	order := make([]int, len(in))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int { return int(in[y].Weight - in[x].Weight) })
	ok := true
	for i := range in {
		if len(in[i].Preference.MatchLabels) == 0 && len(in[i].Preference.MatchExpressions) == 0 {
			c.refuse(a.Object, fmt.Sprintf("%s[%d].preference", field, i), "an empty preference prefers every node the advertisement selects, which Herald does not take")
			ok = false
		}
		for j := i + 1; j < len(in); j++ {
			switch {
			case in[i].Weight == in[j].Weight:
				c.refuse(a.Object, field, "preferences %d and %d have the same weight %d: MetalLB ranks their nodes alike, Herald's ordered places cannot; give them different weights or merge them", i, j, in[i].Weight)
				ok = false
			case !disjoint(in[i].Preference, in[j].Preference):
				c.refuse(a.Object, field, "preferences %d and %d may match the same node, which MetalLB ranks by the sum of both weights and Herald by its first place; make them require different values of one label (zone=a, zone=b), or keep one", i, j)
				ok = false
			}
		}
	}
	if !ok {
		return nil, false
	}
	out := make([]v1beta1.LabelSelector, 0, len(in))
	var weights []string
	for _, i := range order {
		sel, err := checkedSelector(in[i].Preference)
		if err != nil {
			c.refuse(a.Object, fmt.Sprintf("%s[%d].preference", field, i), "%v", err)
			return nil, false
		}
		out = append(out, sel)
		weights = append(weights, strconv.Itoa(int(in[i].Weight)))
	}
	if len(out) > 1 {
		c.note(a.Object, field, "weights %s written as places in that order: the selectors match no node together, so the order is MetalLB's", strings.Join(weights, ", "))
	}
	return out, true
}

// mayShareAPool reports whether two advertisements may select one pool:
// they name one in common, or either selects pools by label or names none
// (every pool).
func mayShareAPool(a, b L2AdvertisementSpec) bool {
	if len(a.IPAddressPools) == 0 || len(b.IPAddressPools) == 0 || len(a.IPAddressPoolSelectors) > 0 || len(b.IPAddressPoolSelectors) > 0 {
		return true
	}
	return slices.ContainsFunc(a.IPAddressPools, func(p string) bool { return slices.Contains(b.IPAddressPools, p) })
}

// disjoint reports whether no node can match both selectors: for some
// label, each allows only values the other does not (matchLabels and In).
func disjoint(a, b metav1.LabelSelector) bool {
	allowed := func(s metav1.LabelSelector, key string) ([]string, bool) {
		var vals []string
		found := false
		if v, ok := s.MatchLabels[key]; ok {
			vals, found = []string{v}, true
		}
		for _, e := range s.MatchExpressions {
			if e.Key != key || e.Operator != metav1.LabelSelectorOpIn {
				continue
			}
			if !found {
				vals, found = slices.Clone(e.Values), true
				continue
			}
			vals = slices.DeleteFunc(vals, func(v string) bool { return !slices.Contains(e.Values, v) })
		}
		return vals, found
	}
	keys := map[string]bool{}
	for k := range a.MatchLabels {
		keys[k] = true
	}
	for _, e := range a.MatchExpressions {
		keys[e.Key] = true
	}
	for k := range keys {
		va, okA := allowed(a, k)
		vb, okB := allowed(b, k)
		if okA && okB && !slices.ContainsFunc(va, func(v string) bool { return slices.Contains(vb, v) }) {
			return true
		}
	}
	return false
}

func (c *converter) bgpAdvertisement(a BGPAdvertisement) *v1beta1.BGPAdvertisement {
	mark := len(c.out.Notes)
	s := a.Spec
	o := &v1beta1.BGPAdvertisement{TypeMeta: typeMeta("BGPAdvertisement"), ObjectMeta: meta(a.Object), Spec: v1beta1.BGPAdvertisementSpec{
		PoolSelection:     v1beta1.PoolSelection{IPPools: slices.Clone(s.IPAddressPools), IPPoolSelectors: slices.Clone(s.IPAddressPoolSelectors)},
		NodeSelectors:     slices.Clone(s.NodeSelectors),
		Peers:             slices.Clone(s.Peers),
		AggregationLength: s.AggregationLength, AggregationLengthV6: s.AggregationLengthV6,
	}}
	var ok bool
	o.Spec.ServiceSelectors, ok = c.selectors(a.Object, "spec.serviceSelectors", s.ServiceSelectors)
	if s.LocalPref != 0 {
		lp := int64(s.LocalPref)
		o.Spec.LocalPref = &lp
	}
	for i, v := range s.Communities {
		value := v
		if alias, found := c.communities[v]; found {
			value = alias
		}
		std, large, err := community(value)
		switch {
		case err != nil:
			c.refuse(a.Object, fmt.Sprintf("spec.communities[%d]", i), "%v", err)
			ok = false
		case std != "" && !slices.Contains(o.Spec.Communities, std): // an alias may repeat a value
			o.Spec.Communities = append(o.Spec.Communities, std)
		case large != "" && !slices.Contains(o.Spec.LargeCommunities, large):
			o.Spec.LargeCommunities = append(o.Spec.LargeCommunities, large)
		}
	}
	if !ok {
		c.refused(mark)
		return nil
	}
	return o
}
