// Package migrate turns MetalLB's configuration objects into Herald's.
//
// MetalLB's kinds are read into the few types below, written after
// MetalLB's API reference (metallb.io/v1beta1, and v1beta2 for BGPPeer);
// MetalLB's Go module is not imported. Every field MetalLB documents is
// listed, so that a field with no Herald equivalent is refused by name
// and an unknown one is refused as unknown, never dropped in silence.
// Convert is pure; Read* and the writers do the I/O.
package migrate

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group is MetalLB's API group.
const Group = "metallb.io"

// Kinds of MetalLB's configuration.
const (
	KindIPAddressPool    = "IPAddressPool"
	KindL2Advertisement  = "L2Advertisement"
	KindBGPAdvertisement = "BGPAdvertisement"
	KindBGPPeer          = "BGPPeer"
	KindBFDProfile       = "BFDProfile"
	KindCommunity        = "Community"
)

// Object is what every MetalLB object has besides its spec.
type Object struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
}

// IPAddressPool is metallb.io/v1beta1 IPAddressPool.
type IPAddressPool struct {
	Object
	Spec IPAddressPoolSpec `json:"spec"`
}

// IPAddressPoolSpec is an IPAddressPool's spec.
type IPAddressPoolSpec struct {
	Addresses         []string           `json:"addresses"`
	AutoAssign        *bool              `json:"autoAssign,omitempty"`
	AvoidBuggyIPs     bool               `json:"avoidBuggyIPs,omitempty"`
	ServiceAllocation *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation limits a pool to some Services, with a priority.
type ServiceAllocation struct {
	Priority           int                    `json:"priority,omitempty"`
	Namespaces         []string               `json:"namespaces,omitempty"`
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
	ServiceSelectors   []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// L2Advertisement is metallb.io/v1beta1 L2Advertisement.
type L2Advertisement struct {
	Object
	Spec L2AdvertisementSpec `json:"spec"`
}

// L2AdvertisementSpec is an L2Advertisement's spec.
type L2AdvertisementSpec struct {
	IPAddressPools         []string                `json:"ipAddressPools,omitempty"`
	IPAddressPoolSelectors []metav1.LabelSelector  `json:"ipAddressPoolSelectors,omitempty"`
	NodeSelectors          []metav1.LabelSelector  `json:"nodeSelectors,omitempty"`
	Interfaces             []string                `json:"interfaces,omitempty"`
	ServiceSelectors       []metav1.LabelSelector  `json:"serviceSelectors,omitempty"`
	PreferredNodeSelectors []PreferredNodeSelector `json:"preferredNodeSelectors,omitempty"`
}

// PreferredNodeSelector is a weighted node preference (1-100): MetalLB
// ranks nodes by the sum of the weights of the selectors they match.
type PreferredNodeSelector struct {
	Weight     int32                `json:"weight"`
	Preference metav1.LabelSelector `json:"preference"`
}

// BGPAdvertisement is metallb.io/v1beta1 BGPAdvertisement.
type BGPAdvertisement struct {
	Object
	Spec BGPAdvertisementSpec `json:"spec"`
}

// BGPAdvertisementSpec is a BGPAdvertisement's spec.
type BGPAdvertisementSpec struct {
	AggregationLength      *int32                 `json:"aggregationLength,omitempty"`
	AggregationLengthV6    *int32                 `json:"aggregationLengthV6,omitempty"`
	LocalPref              uint32                 `json:"localPref,omitempty"`
	Communities            []string               `json:"communities,omitempty"`
	IPAddressPools         []string               `json:"ipAddressPools,omitempty"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	Peers                  []string               `json:"peers,omitempty"`
	ServiceSelectors       []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// BGPPeer is MetalLB's BGPPeer in the v1beta2 shape; a v1beta1 object is
// read into it (its node selectors converted) with Version "v1beta1".
type BGPPeer struct {
	Object
	Spec BGPPeerSpec `json:"spec"`
}

// BGPPeerSpec is a BGPPeer's spec, v1beta2.
type BGPPeerSpec struct {
	MyASN                  uint32                 `json:"myASN"`
	PeerASN                uint32                 `json:"peerASN,omitempty"`
	LocalASN               uint32                 `json:"localASN,omitempty"`
	DynamicASN             string                 `json:"dynamicASN,omitempty"`
	PeerAddress            string                 `json:"peerAddress,omitempty"`
	Interface              string                 `json:"interface,omitempty"`
	SourceAddress          string                 `json:"sourceAddress,omitempty"`
	PeerPort               uint16                 `json:"peerPort,omitempty"`
	HoldTime               *metav1.Duration       `json:"holdTime,omitempty"`
	KeepaliveTime          *metav1.Duration       `json:"keepaliveTime,omitempty"`
	ConnectTime            *metav1.Duration       `json:"connectTime,omitempty"`
	RouterID               string                 `json:"routerID,omitempty"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	Password               string                 `json:"password,omitempty"`
	PasswordSecret         *SecretReference       `json:"passwordSecret,omitempty"`
	BFDProfile             string                 `json:"bfdProfile,omitempty"`
	EnableGracefulRestart  bool                   `json:"enableGracefulRestart,omitempty"`
	EBGPMultiHop           bool                   `json:"ebgpMultiHop,omitempty"`
	VRF                    string                 `json:"vrf,omitempty"`
	DisableMP              bool                   `json:"disableMP,omitempty"`
	DualStackAddressFamily bool                   `json:"dualStackAddressFamily,omitempty"`
}

// SecretReference names a Secret, as core/v1 SecretReference.
type SecretReference struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// bgpPeerSpecV1beta1 is metallb.io/v1beta1 BGPPeer's spec: no pointers
// for the timers, and node selectors of MetalLB's own shape.
type bgpPeerSpecV1beta1 struct {
	MyASN         uint32           `json:"myASN"`
	PeerASN       uint32           `json:"peerASN"`
	PeerAddress   string           `json:"peerAddress"`
	SourceAddress string           `json:"sourceAddress,omitempty"`
	PeerPort      uint16           `json:"peerPort,omitempty"`
	HoldTime      metav1.Duration  `json:"holdTime,omitempty"`
	KeepaliveTime metav1.Duration  `json:"keepaliveTime,omitempty"`
	RouterID      string           `json:"routerID,omitempty"`
	NodeSelectors []nodeSelectorV1 `json:"nodeSelectors,omitempty"`
	Password      string           `json:"password,omitempty"`
	BFDProfile    string           `json:"bfdProfile,omitempty"`
	EBGPMultiHop  bool             `json:"ebgpMultiHop,omitempty"`
	VRF           string           `json:"vrf,omitempty"`
}

type nodeSelectorV1 struct {
	MatchLabels      map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions []struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	} `json:"matchExpressions,omitempty"`
}

// v1beta2 is the v1beta2 shape of a v1beta1 BGPPeer spec: a zero hold or
// keepalive time means unset, as MetalLB reads it.
func (s bgpPeerSpecV1beta1) v1beta2() BGPPeerSpec {
	out := BGPPeerSpec{
		MyASN: s.MyASN, PeerASN: s.PeerASN, PeerAddress: s.PeerAddress, SourceAddress: s.SourceAddress,
		PeerPort: s.PeerPort, RouterID: s.RouterID, Password: s.Password, BFDProfile: s.BFDProfile,
		EBGPMultiHop: s.EBGPMultiHop, VRF: s.VRF,
	}
	if s.HoldTime.Duration != 0 {
		out.HoldTime = &metav1.Duration{Duration: s.HoldTime.Duration}
	}
	if s.KeepaliveTime.Duration != 0 {
		out.KeepaliveTime = &metav1.Duration{Duration: s.KeepaliveTime.Duration}
	}
	for _, ns := range s.NodeSelectors {
		sel := metav1.LabelSelector{MatchLabels: ns.MatchLabels}
		for _, e := range ns.MatchExpressions {
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
				Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values,
			})
		}
		out.NodeSelectors = append(out.NodeSelectors, sel)
	}
	return out
}

// BFDProfile is metallb.io/v1beta1 BFDProfile.
type BFDProfile struct {
	Object
	Spec BFDProfileSpec `json:"spec"`
}

// BFDProfileSpec is a BFDProfile's spec.
type BFDProfileSpec struct {
	ReceiveInterval  *uint32 `json:"receiveInterval,omitempty"`
	TransmitInterval *uint32 `json:"transmitInterval,omitempty"`
	DetectMultiplier *uint32 `json:"detectMultiplier,omitempty"`
	EchoInterval     *uint32 `json:"echoInterval,omitempty"`
	EchoMode         *bool   `json:"echoMode,omitempty"`
	PassiveMode      *bool   `json:"passiveMode,omitempty"`
	MinimumTTL       *uint32 `json:"minimumTtl,omitempty"`
}

// Community is metallb.io/v1beta1 Community: names for communities that
// BGPAdvertisements use instead of the values.
type Community struct {
	Object
	Spec struct {
		Communities []struct {
			Name  string `json:"name,omitempty"`
			Value string `json:"value,omitempty"`
		} `json:"communities,omitempty"`
	} `json:"spec"`
}

// Config is MetalLB's configuration as read.
type Config struct {
	Pools             []IPAddressPool
	L2Advertisements  []L2Advertisement
	BGPAdvertisements []BGPAdvertisement
	Peers             []BGPPeer
	BFDProfiles       []BFDProfile
	Communities       []Community
}
