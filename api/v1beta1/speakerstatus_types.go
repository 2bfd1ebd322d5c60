package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// L2SkipReason says why a node does not announce an address in Layer 2 mode.
type L2SkipReason string

const (
	// L2SkipOwnedElsewhere means another eligible node ranks first for the address.
	L2SkipOwnedElsewhere L2SkipReason = "OwnedByOtherNode"
	// L2SkipNodeNotSelected means no L2Advertisement for the address's pool selects this node.
	L2SkipNodeNotSelected L2SkipReason = "NodeNotSelected"
	// L2SkipNoLocalEndpoint means externalTrafficPolicy Local and no ready endpoint on this node.
	L2SkipNoLocalEndpoint L2SkipReason = "NoLocalEndpoint"
	// L2SkipNoQuorum means this node ranks first but does not see a strict
	// majority of the speakers it should see (or is still joining them), so
	// it may be cut off and does not take over.
	L2SkipNoQuorum L2SkipReason = "NoQuorum"
	// L2SkipNoInterface means this node has no usable interface for the address
	// (none of the advertisement's interfaces, link or carrier down, no
	// subnet or route toward it): it is no candidate, the next node announces it.
	L2SkipNoInterface L2SkipReason = "NoInterface"
	// L2SkipNoEndpoint means the Service has no ready endpoint anywhere and its
	// L2Advertisement sets withdrawWithoutEndpoints: no node announces it.
	L2SkipNoEndpoint L2SkipReason = "NoEndpoint"
	// L2SkipNodeExcluded means this node announces nothing (drained, labelled
	// node.kubernetes.io/exclude-from-external-load-balancers, or its
	// NetworkUnavailable condition is true); see the Excluded condition.
	L2SkipNodeExcluded L2SkipReason = "NodeExcluded"
)

// L2Announcement is an address this node answers ARP/NDP for.
type L2Announcement struct {
	IP string `json:"ip"`
	// Services ("namespace/name") that use the address.
	// +listType=atomic
	Services []string `json:"services"`
	// Interfaces the node answers on.
	// +listType=atomic
	Interfaces []string `json:"interfaces,omitempty"`
	// Since is when this node took the address over.
	Since metav1.Time `json:"since"`
}

// L2Skip is an address in a Layer 2 pool that this node does not announce.
type L2Skip struct {
	IP string `json:"ip"`
	// +listType=atomic
	Services []string     `json:"services"`
	Reason   L2SkipReason `json:"reason"`
	// Owner is the node that announces the address, when one does.
	// +optional
	Owner string `json:"owner,omitempty"`
}

// BGPSession is the state of one BGP session of this node.
type BGPSession struct {
	// Peer is the BGPPeer's name.
	Peer    string `json:"peer"`
	Address string `json:"address"`
	PeerASN int64  `json:"peerASN,omitempty"`
	// State is the BGP FSM state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established.
	State string `json:"state"`
	// Since is when the session entered its state.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// PrefixesSent counts the prefixes advertised to the peer.
	PrefixesSent int32 `json:"prefixesSent"`
	// PrefixesReceived counts the prefixes the peer advertised.
	PrefixesReceived int32 `json:"prefixesReceived"`
	// BFD is the BFD session state (Up, Down, Init, AdminDown), empty without BFD.
	// +optional
	BFD string `json:"bfd,omitempty"`
	// Message says what is wrong when the session is not established,
	// for instance a refused connection or a peer that never answers
	// (which is what a wrong TCP MD5 password looks like).
	// +optional
	Message string `json:"message,omitempty"`
}

// SpeakerStatusStatus is what one node's speaker reports.
type SpeakerStatusStatus struct {
	// MembersAlive counts the speakers this node sees alive, itself included.
	MembersAlive int32 `json:"membersAlive"`
	// MembersExpected counts the speakers this node should see: those the
	// API server shows running (a fresh Lease), those it sees, and itself.
	// It takes over Layer 2 addresses only while it sees a strict majority.
	// +optional
	MembersExpected int32 `json:"membersExpected,omitempty"`
	// AnnouncedIPs counts the addresses this node answers ARP/NDP for.
	AnnouncedIPs int32 `json:"announcedIPs"`
	// SessionsEstablished counts the BGP sessions in state Established.
	SessionsEstablished int32 `json:"sessionsEstablished"`
	// Sessions counts the BGP sessions this node should have.
	Sessions int32 `json:"sessions"`
	// L2Announcements lists the addresses this node announces (at most 500;
	// AnnouncedIPs has the full count).
	// +listType=atomic
	// +optional
	L2Announcements []L2Announcement `json:"l2Announcements,omitempty"`
	// L2Skipped lists Layer 2 addresses this node does not announce, with the
	// reason (at most 500; L2SkippedCount has the full count).
	// +listType=atomic
	// +optional
	L2Skipped []L2Skip `json:"l2Skipped,omitempty"`
	// +optional
	L2SkippedCount int32 `json:"l2SkippedCount,omitempty"`
	// BGPSessions lists this node's BGP sessions.
	// +listType=atomic
	// +optional
	BGPSessions []BGPSession `json:"bgpSessions,omitempty"`
	// UpdatedAt is when the speaker last wrote this status.
	// +optional
	UpdatedAt *metav1.Time `json:"updatedAt,omitempty"`
	// Conditions: Ready (the speaker may take over Layer 2 addresses: its
	// memberlist member runs, it sees a majority of the speakers and has
	// settled), MemberlistKey (the Secret's key is in use, or being
	// rotated to, or why not) and Excluded (true while the node announces
	// nothing: drained, excluded from external load balancers, or its
	// network unavailable; the message says how far the withdrawal is).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SpeakerStatus reports what the speaker on one node does: which addresses
// it announces on the LAN and why it leaves others alone, and its BGP
// sessions. Its name is the node's name; only that node's speaker writes it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=spk,categories=herald
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.membersAlive`
// +kubebuilder:printcolumn:name="Expected",type=integer,JSONPath=`.status.membersExpected`
// +kubebuilder:printcolumn:name="L2 IPs",type=integer,JSONPath=`.status.announcedIPs`
// +kubebuilder:printcolumn:name="BGP Up",type=integer,JSONPath=`.status.sessionsEstablished`
// +kubebuilder:printcolumn:name="BGP Sessions",type=integer,JSONPath=`.status.sessions`
// +kubebuilder:printcolumn:name="Announcing",type=string,JSONPath=`.status.l2Announcements[*].ip`,priority=1
// +kubebuilder:printcolumn:name="Why",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Excluded",type=string,JSONPath=`.status.conditions[?(@.type=="Excluded")].reason`,priority=1
// +kubebuilder:printcolumn:name="Updated",type=date,JSONPath=`.status.updatedAt`
type SpeakerStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Status SpeakerStatusStatus `json:"status,omitempty"`
}

// SpeakerStatusList is a list of SpeakerStatuses.
//
// +kubebuilder:object:root=true
type SpeakerStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpeakerStatus `json:"items"`
}

func init() {
	register(&SpeakerStatus{}, &SpeakerStatusList{})
}
