package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// DynamicASN takes the peer's AS number from the session instead of a fixed
// peerASN. Only "internal" (iBGP: the peer is in myASN) is supported; MetalLB's
// "external" is refused because the embedded BGP speaker must know an eBGP
// peer's AS number before it connects.
// +kubebuilder:validation:Enum=internal
type DynamicASN string

const DynamicASNInternal DynamicASN = "internal"

// SecretRef names a Secret in the herald-system namespace.
type SecretRef struct {
	// Name of the Secret. A BGP password is read from its "password" key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// BGPPeerSpec describes one BGP neighbor of the selected nodes.
//
// +kubebuilder:validation:XValidation:rule="has(self.peerASN) != has(self.dynamicASN)",message="set exactly one of peerASN and dynamicASN"
// +kubebuilder:validation:XValidation:rule="!has(self.password) || !has(self.passwordSecret)",message="password and passwordSecret are mutually exclusive",fieldPath=".passwordSecret"
// +kubebuilder:validation:XValidation:rule="!has(self.holdTime) || (duration(self.holdTime) >= duration('3s') && duration(self.holdTime) <= duration('65535s'))",message="holdTime must be between 3s and 65535s",fieldPath=".holdTime"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || (duration(self.keepaliveTime) >= duration('1s') && duration(self.keepaliveTime) < (has(self.holdTime) ? duration(self.holdTime) : duration('90s')))",message="keepaliveTime must be at least 1s and less than holdTime (default 90s)",fieldPath=".keepaliveTime"
// +kubebuilder:validation:XValidation:rule="!has(self.connectTime) || (duration(self.connectTime) >= duration('1s') && duration(self.connectTime) <= duration('65535s'))",message="connectTime must be between 1s and 65535s",fieldPath=".connectTime"
// +kubebuilder:validation:XValidation:rule="!has(self.ebgpMultiHop) || !self.ebgpMultiHop || (has(self.peerASN) && self.peerASN != self.myASN)",message="ebgpMultiHop applies to eBGP peers only (peerASN differs from myASN)",fieldPath=".ebgpMultiHop"
// +kubebuilder:validation:XValidation:rule="!has(self.sourceAddress) || ip(self.sourceAddress).family() == ip(self.peerAddress).family()",message="sourceAddress and peerAddress must be of the same IP family",fieldPath=".sourceAddress"
type BGPPeerSpec struct {
	// MyASN is the nodes' own AS number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	MyASN int64 `json:"myASN"`

	// PeerASN is the peer's AS number; equal to myASN for iBGP.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	PeerASN *int64 `json:"peerASN,omitempty"`

	// DynamicASN "internal" makes the peer an iBGP peer in myASN, instead of
	// a fixed peerASN.
	// +optional
	DynamicASN DynamicASN `json:"dynamicASN,omitempty"`

	// PeerAddress is the peer's IP address.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IPv4 or IPv6 address"
	PeerAddress string `json:"peerAddress"`

	// PeerPort is the peer's TCP port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=179
	// +optional
	PeerPort int32 `json:"peerPort,omitempty"`

	// SourceAddress is the local address to connect from. Empty: the kernel
	// picks the address of the interface toward the peer.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IPv4 or IPv6 address"
	// +optional
	SourceAddress string `json:"sourceAddress,omitempty"`

	// RouterID is the BGP router ID. Empty: the node's IPv4 address.
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="must be an IPv4 address"
	// +optional
	RouterID string `json:"routerID,omitempty"`

	// HoldTime is the BGP hold time, 3s-65535s. Default 90s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the BGP keepalive interval, at least 1s and less than
	// holdTime. Default a third of holdTime.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// ConnectTime is how long to wait before retrying a failed connection.
	// Default 5s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`

	// EBGPMultiHop allows an eBGP peer that is not directly connected (TTL 255).
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// Password for TCP MD5 authentication (RFC 2385), in clear text.
	// Prefer passwordSecret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	// +optional
	Password string `json:"password,omitempty"`

	// PasswordSecret names a Secret in herald-system whose "password" key
	// holds the TCP MD5 password.
	// +optional
	PasswordSecret *SecretRef `json:"passwordSecret,omitempty"`

	// NodeSelectors limit the nodes that peer with this neighbor. Empty:
	// every node.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// BFDProfile names a BFDProfile; BFD then watches the session.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	BFDProfile string `json:"bfdProfile,omitempty"`

	// GracefulRestart asks the peer to keep forwarding to this node's routes
	// while its speaker restarts (RFC 4724).
	// +optional
	GracefulRestart bool `json:"gracefulRestart,omitempty"`
}

// BGPPeer is a BGP neighbor that Herald's speakers open sessions to.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpp,categories=herald
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=`.spec.myASN`
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=`.spec.bfdProfile`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPPeerSpec  `json:"spec"`
	Status ConfigStatus `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeers.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}

func init() {
	register(&BGPPeer{}, &BGPPeerList{})
}
