package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnouncementProtocol is how a node announces an address.
// +kubebuilder:validation:Enum=Layer2;BGP
type AnnouncementProtocol string

const (
	// ProtocolLayer2 means the node answers ARP (IPv4) or NDP (IPv6) for the address.
	ProtocolLayer2 AnnouncementProtocol = "Layer2"
	// ProtocolBGP means the node advertises a prefix covering the address to BGP peers.
	ProtocolBGP AnnouncementProtocol = "BGP"
)

// Labels of an AnnouncementSlice.
const (
	// LabelNode names the node whose speaker wrote the slice.
	LabelNode = "herald.dev/node"
	// ServiceLabelSuffix ends the prefix of the label a slice carries for
	// each Service it lists: "<namespace>.svc.herald.dev/<name>" (see
	// ServiceLabel), so that `kubectl get announcementslices -l
	// demo.svc.herald.dev/web` lists the nodes that announce demo/web.
	ServiceLabelSuffix = ".svc.herald.dev"
	// MaxServicesPerSlice caps the Services one slice lists (its size stays
	// under about 100 kB); a node announcing more has several slices.
	MaxServicesPerSlice = 250
)

// ServiceLabel is the label key an AnnouncementSlice carries for the
// Service namespace/name. Both parts are DNS labels (at most 63
// characters), so the key is always valid.
func ServiceLabel(namespace, name string) string {
	return namespace + ServiceLabelSuffix + "/" + name
}

// AnnouncedAddress is one address of a Service as one node announces it.
type AnnouncedAddress struct {
	// IP is the Service's address.
	IP string `json:"ip"`
	// Protocol is Layer2 or BGP. An address announced both ways is listed
	// twice.
	Protocol AnnouncementProtocol `json:"protocol"`
	// Interfaces the node answers ARP/NDP on (Layer2).
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Interfaces []string `json:"interfaces,omitempty"`
	// Prefix is what the node advertises (BGP): the address as a /32 or
	// /128, or the aggregate covering it.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// Peers are the BGPPeers the prefix is advertised to: those whose
	// session with this node is established (BGP).
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Peers []string `json:"peers,omitempty"`
}

// ServiceAnnouncement is what one node announces for one Service.
type ServiceAnnouncement struct {
	// Service is "namespace/name".
	// +kubebuilder:validation:MaxLength=127
	Service string `json:"service"`
	// Addresses the node announces, sorted by IP, Layer2 before BGP.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Addresses []AnnouncedAddress `json:"addresses"`
}

// AnnouncementSlice lists LoadBalancer Services one node announces: which
// of their addresses, by Layer 2 or BGP, on which interfaces or to which
// peers. Only that node's speaker writes it, when what it announces
// changed (at most about once a second); a node announcing more than 250
// Services has several slices (named <node>, <node>.1, <node>.2, ...). A
// speaker that stops deletes its slices; those of a speaker that failed
// are deleted by a live speaker once memberlist declares it dead. Each
// slice carries a label per Service it lists, so
//
//	kubectl get announcementslices -l demo.svc.herald.dev/web
//
// lists the nodes announcing Service demo/web. One object per node and not
// one per Service: a failover changes the announcing node of many Services
// at once, and costs a write per changed slice instead of one per Service
// (docs/decisions.md).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=aslice,categories=herald
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.node`
// +kubebuilder:printcolumn:name="Services",type=integer,JSONPath=`.serviceCount`
// +kubebuilder:printcolumn:name="L2",type=integer,JSONPath=`.layer2Count`,description="addresses announced by Layer 2"
// +kubebuilder:printcolumn:name="BGP",type=integer,JSONPath=`.bgpCount`,description="addresses advertised by BGP"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AnnouncementSlice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Node is the node that announces these Services.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node"`
	// ServiceCount, Layer2Count and BGPCount count the Services listed and
	// their addresses by protocol (for kubectl's columns).
	// +kubebuilder:validation:Minimum=0
	ServiceCount int32 `json:"serviceCount"`
	// +kubebuilder:validation:Minimum=0
	Layer2Count int32 `json:"layer2Count"`
	// +kubebuilder:validation:Minimum=0
	BGPCount int32 `json:"bgpCount"`
	// Services, sorted by namespace/name.
	// +listType=map
	// +listMapKey=service
	// +kubebuilder:validation:MaxItems=250
	// +optional
	Services []ServiceAnnouncement `json:"services,omitempty"`
}

// AnnouncementSliceList is a list of AnnouncementSlices.
//
// +kubebuilder:object:root=true
type AnnouncementSliceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AnnouncementSlice `json:"items"`
}

func init() {
	register(&AnnouncementSlice{}, &AnnouncementSliceList{})
}
