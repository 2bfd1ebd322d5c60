// Package v1beta1 holds Herald's API: the pool and advertisement kinds a user
// writes, and the status kinds Herald writes back. Group herald.dev, all kinds
// cluster-scoped.
//
// Every rule that one object can check on its own is written here as an
// OpenAPI constraint or a CEL rule, so the API server refuses a bad object
// with a message that names the field. Rules that need several objects live
// in internal/config.
//
// +kubebuilder:object:generate=true
// +groupName=herald.dev
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every Herald kind.
	GroupVersion = schema.GroupVersion{Group: "herald.dev", Version: "v1beta1"}

	// SchemeBuilder registers the Herald kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the Herald kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme

	// knownTypes are the kinds, registered by each type's file.
	knownTypes []runtime.Object
)

// register records kinds for addKnownTypes. The API package depends on
// apimachinery only, not on a controller framework.
func register(objects ...runtime.Object) { knownTypes = append(knownTypes, objects...) }

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, knownTypes...)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
