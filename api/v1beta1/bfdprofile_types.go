package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BFDProfileSpec holds the BFD timers of the sessions that use the profile.
// Herald runs single-hop asynchronous BFD (RFC 5880/5881) in the speaker.
type BFDProfileSpec struct {
	// ReceiveInterval is the minimum interval, in milliseconds, at which
	// this node can receive control packets. Default 300.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:default=300
	// +optional
	ReceiveInterval *int32 `json:"receiveInterval,omitempty"`

	// TransmitInterval is the minimum interval, in milliseconds, at which
	// this node sends control packets. Default 300.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:default=300
	// +optional
	TransmitInterval *int32 `json:"transmitInterval,omitempty"`

	// DetectMultiplier is how many control packets may be missed before the
	// session is declared down. Default 3.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	// +kubebuilder:default=3
	// +optional
	DetectMultiplier *int32 `json:"detectMultiplier,omitempty"`
}

// BFDProfile is a set of BFD timers that BGPPeers refer to by name.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bfdp,categories=herald
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Receive ms",type=integer,JSONPath=`.spec.receiveInterval`
// +kubebuilder:printcolumn:name="Transmit ms",type=integer,JSONPath=`.spec.transmitInterval`
// +kubebuilder:printcolumn:name="Multiplier",type=integer,JSONPath=`.spec.detectMultiplier`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BFDProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec   BFDProfileSpec `json:"spec,omitempty"`
	Status ConfigStatus   `json:"status,omitempty"`
}

// BFDProfileList is a list of BFDProfiles.
//
// +kubebuilder:object:root=true
type BFDProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BFDProfile `json:"items"`
}

func init() {
	register(&BFDProfile{}, &BFDProfileList{})
}
