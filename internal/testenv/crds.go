package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

var metav1GetOptions = metav1.GetOptions{}

// InstallCRDs creates (or updates) every CustomResourceDefinition found in the
// YAML files under dir, waits until each is Established and its API is
// served, and returns their names. A missing or empty dir installs nothing.
func InstallCRDs(ctx context.Context, cfg *rest.Config, dir string) ([]string, error) {
	crds, err := readCRDs(dir)
	if err != nil || len(crds) == 0 {
		return nil, err
	}
	cs, err := apiextensions.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	api := cs.ApiextensionsV1().CustomResourceDefinitions()
	var names []string
	for _, crd := range crds {
		_, err := api.Create(ctx, crd, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			var cur *apiextensionsv1.CustomResourceDefinition
			if cur, err = api.Get(ctx, crd.Name, metav1.GetOptions{}); err == nil {
				crd.ResourceVersion = cur.ResourceVersion
				_, err = api.Update(ctx, crd, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("testenv: install CRD %s: %w", crd.Name, err)
		}
		names = append(names, crd.Name)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	for _, crd := range crds {
		if err := waitCRD(ctx, api, disc, crd); err != nil {
			return nil, err
		}
	}
	return names, nil
}

func waitCRD(ctx context.Context, api interface {
	Get(context.Context, string, metav1.GetOptions) (*apiextensionsv1.CustomResourceDefinition, error)
}, disc discovery.DiscoveryInterface, crd *apiextensionsv1.CustomResourceDefinition) error {
	var last error
	for {
		last = crdReady(ctx, api, disc, crd)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: CRD %s: %w (%w)", crd.Name, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func crdReady(ctx context.Context, api interface {
	Get(context.Context, string, metav1.GetOptions) (*apiextensionsv1.CustomResourceDefinition, error)
}, disc discovery.DiscoveryInterface, crd *apiextensionsv1.CustomResourceDefinition) error {
	cur, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	established := false
	for _, c := range cur.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			established = true
		}
	}
	if !established {
		return errNotEstablished
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		list, err := disc.ServerResourcesForGroupVersion(crd.Spec.Group + "/" + v.Name)
		if err != nil {
			return err
		}
		found := false
		for _, r := range list.APIResources {
			found = found || r.Name == crd.Spec.Names.Plural
		}
		if !found {
			return fmt.Errorf("%s/%s %s not in discovery yet", crd.Spec.Group, v.Name, crd.Spec.Names.Plural)
		}
	}
	return nil
}

// readCRDs parses every YAML document of kind CustomResourceDefinition in the
// .yaml/.yml files under dir; other documents (a kustomization, say) are skipped.
func readCRDs(dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var crds []*apiextensionsv1.CustomResourceDefinition
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("testenv: %s: %w", path, err)
			}
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &meta); err != nil || meta.Kind != "CustomResourceDefinition" {
				continue
			}
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := yaml.Unmarshal(doc, crd); err != nil {
				return fmt.Errorf("testenv: %s: %w", path, err)
			}
			crds = append(crds, crd)
		}
	})
	return crds, err
}
