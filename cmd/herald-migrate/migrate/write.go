package migrate

import (
	"context"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// FieldManager owns the fields herald-migrate applies.
const FieldManager = "herald-migrate"

// unstructuredOf is obj as the API server takes it: no status and no
// empty creation time.
func unstructuredOf(obj client.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	return &unstructured.Unstructured{Object: m}, nil
}

// WriteYAML writes the notes as comments, then the objects as a YAML stream.
func WriteYAML(w io.Writer, r Result) error {
	var b strings.Builder
	b.WriteString("# Herald configuration written by herald-migrate from MetalLB's.\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "# note: %s\n", strings.ReplaceAll(n.String(), "\n", " "))
	}
	for _, o := range r.Objects {
		u, err := unstructuredOf(o)
		if err != nil {
			return err
		}
		doc, err := yaml.Marshal(u.Object)
		if err != nil {
			return err
		}
		b.WriteString("---\n")
		b.Write(doc)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// resource is the API resource of a Herald kind.
func resource(kind string) schema.GroupVersionResource {
	return v1beta1.GroupVersion.WithResource(strings.ToLower(kind) + "s")
}

// Apply writes the objects to the cluster with server-side apply. Every
// object is first applied as a dry run, so that one the API server
// refuses leaves the cluster as it was; the error names it and quotes
// the API server.
func Apply(ctx context.Context, dyn dynamic.Interface, objs []client.Object) error {
	us := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		u, err := unstructuredOf(o)
		if err != nil {
			return err
		}
		us = append(us, u)
	}
	for _, dryRun := range []bool{true, false} {
		opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		for _, u := range us {
			if _, err := dyn.Resource(resource(u.GetKind())).Apply(ctx, u.GetName(), u, opts); err != nil {
				if dryRun {
					return fmt.Errorf("%s %s refused, nothing written: %w", u.GetKind(), u.GetName(), err)
				}
				return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
			}
		}
	}
	return nil
}
