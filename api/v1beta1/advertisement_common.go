package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// PoolSelection picks the pools an advertisement applies to. With neither
// names nor selectors it applies to every pool.
type PoolSelection struct {
	// IPPools by name.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	IPPools []string `json:"ipPools,omitempty"`

	// IPPoolSelectors select pools by label. A pool matched by name or by
	// any selector is selected.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	IPPoolSelectors []metav1.LabelSelector `json:"ipPoolSelectors,omitempty"`
}

// ConfigStatus is the status of a configuration object (advertisement, peer,
// profile), written by the controller: Ready false with the reason when the
// object names something that does not exist or conflicts with another one.
type ConfigStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
