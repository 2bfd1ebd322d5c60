package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// DynamicASN takes the peer's AS number from the session instead of a fixed
// peerASN: "internal" accepts only a peer in myASN (iBGP), "external" any
// other AS (eBGP), learnt from the peer's OPEN message.
// +kubebuilder:validation:Enum=internal;external
type DynamicASN string

// The DynamicASN values.
const (
	DynamicASNInternal DynamicASN = "internal"
	DynamicASNExternal DynamicASN = "external"
)

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
// +kubebuilder:validation:XValidation:rule="has(self.peerAddress) || has(self.interface)",message="set peerAddress, interface, or both (a link-local peerAddress on that interface)"
// +kubebuilder:validation:XValidation:rule="!has(self.peerAddress) || has(self.interface) || !(ip(self.peerAddress).family() == 6 && ip(self.peerAddress).isLinkLocalUnicast())",message="a link-local peerAddress needs interface, the link to reach it on",fieldPath=".peerAddress"
// +kubebuilder:validation:XValidation:rule="!has(self.interface) || !has(self.peerAddress) || (ip(self.peerAddress).family() == 6 && ip(self.peerAddress).isLinkLocalUnicast())",message="with interface, peerAddress must be an IPv6 link-local address (fe80::/10) or left out to peer with the router found on the interface",fieldPath=".peerAddress"
// +kubebuilder:validation:XValidation:rule="!has(self.interface) || !has(self.sourceAddress)",message="sourceAddress does not apply to an interface session: it uses the interface's link-local address",fieldPath=".sourceAddress"
// +kubebuilder:validation:XValidation:rule="!has(self.interface) || !has(self.ebgpMultiHop) || !self.ebgpMultiHop",message="ebgpMultiHop does not apply to an interface session: link-local addresses do not cross routers",fieldPath=".ebgpMultiHop"
// +kubebuilder:validation:XValidation:rule="!has(self.listenPort) || (has(self.passive) && self.passive)",message="listenPort applies to passive sessions only",fieldPath=".listenPort"
// +kubebuilder:validation:XValidation:rule="!has(self.gracefulRestartTime) || (has(self.gracefulRestart) && self.gracefulRestart)",message="gracefulRestartTime needs gracefulRestart: true",fieldPath=".gracefulRestartTime"
// +kubebuilder:validation:XValidation:rule="!has(self.gracefulRestartTime) || (duration(self.gracefulRestartTime) >= duration('1s') && duration(self.gracefulRestartTime) <= duration('4095s'))",message="gracefulRestartTime must be between 1s and 4095s (the capability's 12-bit field)",fieldPath=".gracefulRestartTime"
// +kubebuilder:validation:XValidation:rule="!has(self.password) || !has(self.passwordSecret)",message="password and passwordSecret are mutually exclusive",fieldPath=".passwordSecret"
// +kubebuilder:validation:XValidation:rule="!has(self.holdTime) || (duration(self.holdTime) >= duration('3s') && duration(self.holdTime) <= duration('65535s'))",message="holdTime must be between 3s and 65535s",fieldPath=".holdTime"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || (duration(self.keepaliveTime) >= duration('1s') && duration(self.keepaliveTime) < (has(self.holdTime) ? duration(self.holdTime) : duration('90s')))",message="keepaliveTime must be at least 1s and less than holdTime (default 90s)",fieldPath=".keepaliveTime"
// +kubebuilder:validation:XValidation:rule="!has(self.connectTime) || (duration(self.connectTime) >= duration('1s') && duration(self.connectTime) <= duration('65535s'))",message="connectTime must be between 1s and 65535s",fieldPath=".connectTime"
// +kubebuilder:validation:XValidation:rule="!has(self.ebgpMultiHop) || !self.ebgpMultiHop || (has(self.peerASN) && self.peerASN != self.myASN) || (has(self.dynamicASN) && self.dynamicASN == 'external')",message="ebgpMultiHop applies to eBGP peers only (peerASN differs from myASN, or dynamicASN external)",fieldPath=".ebgpMultiHop"
// +kubebuilder:validation:XValidation:rule="!has(self.sourceAddress) || !has(self.peerAddress) || ip(self.sourceAddress).family() == ip(self.peerAddress).family()",message="sourceAddress and peerAddress must be of the same IP family",fieldPath=".sourceAddress"
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

	// DynamicASN takes the peer's AS from the session instead of a fixed
	// peerASN: "internal" accepts a peer in myASN only (iBGP), "external"
	// any other AS (eBGP). No route is sent before the AS is checked.
	// +optional
	DynamicASN DynamicASN `json:"dynamicASN,omitempty"`

	// PeerAddress is the peer's IP address. With interface, an IPv6
	// link-local address on that interface, or empty to peer with the
	// router found there.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IPv4 or IPv6 address"
	// +optional
	PeerAddress string `json:"peerAddress,omitempty"`

	// Interface is the node's interface toward a directly connected peer,
	// for a session over IPv6 link-local addresses. Without peerAddress the
	// peer is the one IPv6 router the node hears Router Advertisements from
	// on that interface (BGP unnumbered), and the node sends its own so the
	// router finds it. IPv4 routes then carry an IPv6 next hop (RFC 8950)
	// unless the interface has an IPv4 address.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[^\s/:%]+$`
	// +optional
	Interface string `json:"interface,omitempty"`

	// Passive makes the node wait for the peer to connect instead of
	// dialing it. The node then listens on listenPort; with no passive peer
	// it listens on no port.
	// +optional
	Passive bool `json:"passive,omitempty"`

	// ListenPort is the TCP port a passive session is accepted on. Default
	// 179. All passive peers of a node must use the same port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	ListenPort *int32 `json:"listenPort,omitempty"`

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

	// GracefulRestartTime is how long the peer keeps the node's routes
	// after the session ends, 1s-4095s. Default 120s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	GracefulRestartTime *metav1.Duration `json:"gracefulRestartTime,omitempty"`
}

// BGPPeer is a BGP neighbor that Herald's speakers open sessions to.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpp,categories=herald
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="Interface",type=string,JSONPath=`.spec.interface`,priority=1
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
