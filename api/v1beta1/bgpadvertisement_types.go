package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Community is a standard BGP community, "65000:100" (two 16-bit numbers),
// or one of the well-known names.
//
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self in ['no-export', 'no-advertise', 'no-export-subconfed', 'no-peer', 'blackhole', 'graceful-shutdown', 'accept-own', 'llgr-stale', 'no-llgr'] || (self.matches('^[0-9]{1,5}:[0-9]{1,5}$') && int(self.split(':')[0]) <= 65535 && int(self.split(':')[1]) <= 65535)",messageExpression="'community ' + self + ' must be two numbers of 0-65535 separated by a colon (65000:100) or one of no-export, no-advertise, no-export-subconfed, no-peer, blackhole, graceful-shutdown, accept-own, llgr-stale, no-llgr'"
type Community string

// LargeCommunity is a BGP large community, "global:local1:local2", three
// numbers of 0-4294967295 (RFC 8092).
//
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && self.split(':').all(p, int(p) <= 4294967295)",messageExpression="'large community ' + self + ' must be three numbers of 0-4294967295 separated by colons (65000:1:2)'"
type LargeCommunity string

// BGPAdvertisementSpec says which pools are advertised over BGP, from which
// nodes, to which peers and with which attributes.
type BGPAdvertisementSpec struct {
	PoolSelection `json:",inline"`

	// NodeSelectors limit the nodes that advertise. Empty: every node.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Peers, by BGPPeer name, that receive the advertisement. Empty: all peers.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Peers []string `json:"peers,omitempty"`

	// AggregationLength is the prefix length advertised for IPv4 addresses:
	// 32 advertises each address, shorter lengths advertise the covering
	// prefix once.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	// +kubebuilder:default=32
	// +optional
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is the same for IPv6 addresses.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +kubebuilder:default=128
	// +optional
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// Communities attached to the routes.
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +optional
	Communities []Community `json:"communities,omitempty"`

	// LargeCommunities attached to the routes.
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +optional
	LargeCommunities []LargeCommunity `json:"largeCommunities,omitempty"`

	// LocalPref sets LOCAL_PREF on the routes. iBGP peers only: an
	// advertisement with localPref toward an eBGP peer is refused for that
	// peer, with the reason in the status.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	LocalPref *int64 `json:"localPref,omitempty"`

	// ServiceSelectors limit the Services advertised: only Services whose
	// labels match one of the selectors. Empty: every Service of the pools.
	// Two advertisements of one pool, one with serviceSelectors, give the
	// selected Services other attributes (communities, say).
	// +kubebuilder:validation:MaxItems=16
	// +optional
	ServiceSelectors []LabelSelector `json:"serviceSelectors,omitempty"`

	// WithdrawWithoutEndpoints withdraws the routes of a Service with
	// externalTrafficPolicy Cluster while it has no ready endpoint anywhere,
	// so that routers send its traffic elsewhere (another site advertising
	// the same prefix, say). Default false: routes stay whatever the
	// endpoints. Services with externalTrafficPolicy Local are advertised
	// only by nodes with a ready endpoint in any case.
	// +optional
	WithdrawWithoutEndpoints bool `json:"withdrawWithoutEndpoints,omitempty"`
}

// BGPAdvertisement advertises the addresses of some pools to BGP peers.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpadv,categories=herald
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipPools`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Aggregation",type=integer,JSONPath=`.spec.aggregationLength`,priority=1
// +kubebuilder:printcolumn:name="Communities",type=string,JSONPath=`.spec.communities`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec   BGPAdvertisementSpec `json:"spec,omitempty"`
	Status ConfigStatus         `json:"status,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisements.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}

func init() {
	register(&BGPAdvertisement{}, &BGPAdvertisementList{})
}
