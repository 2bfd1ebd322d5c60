package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// L2AdvertisementSpec says which pools are announced with ARP/NDP, from
// which nodes and on which interfaces.
type L2AdvertisementSpec struct {
	PoolSelection `json:",inline"`

	// NodeSelectors limit the nodes that may announce. Empty: every node
	// running a speaker. A node matched by any selector is selected.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Interfaces to announce on. Empty: the interface whose subnet holds the
	// IP, else the interface of the route toward it. Herald never answers on
	// an interface that is not selected.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=15
	// +kubebuilder:validation:items:Pattern=`^[^\s/:]+$`
	// +listType=set
	// +optional
	Interfaces []string `json:"interfaces,omitempty"`

	// ServiceSelectors limit the Services announced: only Services whose
	// labels match one of the selectors. Empty: every Service of the pools.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	ServiceSelectors []LabelSelector `json:"serviceSelectors,omitempty"`

	// PreferredNodeSelectors order the nodes that may announce an address:
	// the live nodes matching the first selector come first, then those
	// matching the second, and so on; nodes matching none come last. Among
	// equals, and when no preferred node is live, the usual hash ranking of
	// (node, address) decides. A selector applies only to the nodes this
	// advertisement selects (nodeSelectors); with several advertisements a
	// node takes its best place among them.
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.all(s, (has(s.matchLabels) && size(s.matchLabels) > 0) || (has(s.matchExpressions) && size(s.matchExpressions) > 0))",message="preferredNodeSelectors must not hold an empty selector: it matches every node and so prefers none"
	// +optional
	PreferredNodeSelectors []LabelSelector `json:"preferredNodeSelectors,omitempty"`

	// WithdrawWithoutEndpoints stops announcing a Service with
	// externalTrafficPolicy Cluster while it has no ready endpoint anywhere,
	// so that traffic can go elsewhere (another site announcing the same
	// address, say). Default false: the address is answered whatever the
	// endpoints. Services with externalTrafficPolicy Local are announced
	// only by nodes with a ready endpoint in any case.
	// +optional
	WithdrawWithoutEndpoints bool `json:"withdrawWithoutEndpoints,omitempty"`
}

// L2Advertisement announces the addresses of some pools on the LAN: one node
// per address answers ARP (IPv4) and Neighbor Solicitations (IPv6) for it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=l2adv,categories=herald
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec   L2AdvertisementSpec `json:"spec,omitempty"`
	Status ConfigStatus        `json:"status,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisements.
//
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}

func init() {
	register(&L2Advertisement{}, &L2AdvertisementList{})
}
