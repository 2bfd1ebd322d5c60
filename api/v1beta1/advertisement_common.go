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

// LabelSelector selects objects by their labels. It is written exactly as
// metav1.LabelSelector (matchLabels and matchExpressions, all ANDed; an
// empty selector selects everything), so MetalLB's selectors paste as they
// are, but the API server checks it: operators, values and label syntax,
// within bounds it can afford to check.
type LabelSelector struct {
	// MatchLabels are label key and value pairs an object must have.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",message="matchLabels keys must be label keys: a name of up to 63 letters, digits, '-', '_' or '.', optionally prefixed by a DNS subdomain and '/'"
	// +optional
	MatchLabels map[string]LabelValue `json:"matchLabels,omitempty"`

	// MatchExpressions are requirements on labels an object must meet.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one requirement of a LabelSelector, as
// metav1.LabelSelectorRequirement.
//
// +kubebuilder:validation:XValidation:rule="self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",message="values must be set for the operators In and NotIn, and left empty for Exists and DoesNotExist",fieldPath=".values"
type LabelSelectorRequirement struct {
	// Key is the label key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`
	Key string `json:"key"`
	// Operator is In, NotIn, Exists or DoesNotExist.
	// +kubebuilder:validation:Enum=In;NotIn;Exists;DoesNotExist
	Operator metav1.LabelSelectorOperator `json:"operator"`
	// Values for In and NotIn.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Values []LabelValue `json:"values,omitempty"`
}

// LabelValue is a label value: up to 63 letters, digits, '-', '_' or '.',
// starting and ending with a letter or digit, or empty.
//
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
type LabelValue string

// Meta returns the selector as a metav1.LabelSelector.
func (s LabelSelector) Meta() metav1.LabelSelector {
	out := metav1.LabelSelector{}
	if len(s.MatchLabels) > 0 {
		out.MatchLabels = make(map[string]string, len(s.MatchLabels))
		for k, v := range s.MatchLabels {
			out.MatchLabels[k] = string(v)
		}
	}
	for _, e := range s.MatchExpressions {
		r := metav1.LabelSelectorRequirement{Key: e.Key, Operator: e.Operator}
		for _, v := range e.Values {
			r.Values = append(r.Values, string(v))
		}
		out.MatchExpressions = append(out.MatchExpressions, r)
	}
	return out
}

// SelectorFrom converts a metav1.LabelSelector (MetalLB's selectors, say).
func SelectorFrom(m metav1.LabelSelector) LabelSelector {
	out := LabelSelector{}
	if len(m.MatchLabels) > 0 {
		out.MatchLabels = make(map[string]LabelValue, len(m.MatchLabels))
		for k, v := range m.MatchLabels {
			out.MatchLabels[k] = LabelValue(v)
		}
	}
	for _, e := range m.MatchExpressions {
		r := LabelSelectorRequirement{Key: e.Key, Operator: e.Operator}
		for _, v := range e.Values {
			r.Values = append(r.Values, LabelValue(v))
		}
		out.MatchExpressions = append(out.MatchExpressions, r)
	}
	return out
}
