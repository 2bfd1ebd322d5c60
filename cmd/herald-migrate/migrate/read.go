package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// Finding is something about one object: a field that has no Herald
// equivalent (a refusal), or a difference or step the user should know of
// (a note).
type Finding struct {
	// Object is "Kind namespace/name".
	Object string
	// Field is the path in the object, "spec.vrf"; empty for the whole object.
	Field   string
	Message string
}

func (f Finding) String() string {
	if f.Field == "" {
		return f.Object + ": " + f.Message
	}
	return f.Object + ": " + f.Field + ": " + f.Message
}

// Reader collects MetalLB objects of one namespace from YAML documents or
// from a cluster, and refuses what it cannot read.
type Reader struct {
	// Namespace is MetalLB's: MetalLB reads its configuration from that
	// namespace only. Objects without a namespace are taken as in it.
	Namespace string

	Config   Config
	Refusals []Finding
	seen     map[string]bool
}

// statusKinds are MetalLB kinds that hold state, not configuration.
var statusKinds = map[string]bool{"ServiceL2Status": true, "ServiceBGPStatus": true, "ConfigurationState": true}

// document is one object as read, its spec still raw.
type document struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
	Items      []json.RawMessage `json:"items"`
}

// ReadYAML reads every document of r (YAML or JSON, "---" separated, List
// kinds unpacked). Objects of other API groups are skipped: a file may hold
// MetalLB's whole installation. The error is for input that is not YAML.
func (rd *Reader) ReadYAML(r io.Reader, source string) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for i := 1; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		if err := rd.add(raw); err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i, err)
		}
	}
}

// add reads one object, or the items of a List.
func (rd *Reader) add(raw []byte) error {
	var d document
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	if strings.HasSuffix(d.Kind, "List") && d.Items != nil {
		for _, item := range d.Items {
			if err := rd.add(item); err != nil {
				return err
			}
		}
		return nil
	}
	gv, err := schema.ParseGroupVersion(d.APIVersion)
	if err != nil || gv.Group != Group || statusKinds[d.Kind] {
		return nil
	}
	obj := Object{APIVersion: d.APIVersion, Kind: d.Kind, Metadata: d.Metadata}
	if obj.Metadata.Namespace == "" {
		obj.Metadata.Namespace = rd.Namespace
	}
	id := describe(obj)
	if obj.Metadata.Namespace != rd.Namespace {
		rd.refuse(id, "", fmt.Sprintf("in namespace %s, which MetalLB does not read (it reads %s; see --namespace)", obj.Metadata.Namespace, rd.Namespace))
		return nil
	}
	if rd.seen == nil {
		rd.seen = map[string]bool{}
	}
	if rd.seen[d.Kind+"/"+obj.Metadata.Name] {
		rd.refuse(id, "", "listed twice")
		return nil
	}
	rd.seen[d.Kind+"/"+obj.Metadata.Name] = true
	spec := d.Spec
	if len(spec) == 0 {
		spec = []byte("{}")
	}
	var specErr error
	switch {
	case d.Kind == KindIPAddressPool && gv.Version == "v1beta1":
		o := IPAddressPool{Object: obj}
		if specErr = strict(spec, &o.Spec); specErr == nil {
			rd.Config.Pools = append(rd.Config.Pools, o)
		}
	case d.Kind == KindL2Advertisement && gv.Version == "v1beta1":
		o := L2Advertisement{Object: obj}
		if specErr = strict(spec, &o.Spec); specErr == nil {
			rd.Config.L2Advertisements = append(rd.Config.L2Advertisements, o)
		}
	case d.Kind == KindBGPAdvertisement && gv.Version == "v1beta1":
		o := BGPAdvertisement{Object: obj}
		if specErr = strict(spec, &o.Spec); specErr == nil {
			rd.Config.BGPAdvertisements = append(rd.Config.BGPAdvertisements, o)
		}
	case d.Kind == KindBGPPeer && gv.Version == "v1beta2":
		o := BGPPeer{Object: obj}
		if specErr = strict(spec, &o.Spec); specErr == nil {
			rd.Config.Peers = append(rd.Config.Peers, o)
		}
	case d.Kind == KindBGPPeer && gv.Version == "v1beta1":
		var s bgpPeerSpecV1beta1
		if specErr = strict(spec, &s); specErr == nil {
			rd.Config.Peers = append(rd.Config.Peers, BGPPeer{Object: obj, Spec: s.v1beta2()})
		}
	case d.Kind == KindBFDProfile && gv.Version == "v1beta1":
		o := BFDProfile{Object: obj}
		if specErr = strict(spec, &o.Spec); specErr == nil {
			rd.Config.BFDProfiles = append(rd.Config.BFDProfiles, o)
		}
	case d.Kind == KindCommunity && gv.Version == "v1beta1":
		o := Community{Object: obj}
		if specErr = strict(spec, &o.Spec); specErr == nil {
			rd.Config.Communities = append(rd.Config.Communities, o)
		}
	default:
		rd.refuse(id, "", fmt.Sprintf("%s %s is not a kind herald-migrate reads (IPAddressPool, L2Advertisement, BGPAdvertisement, BFDProfile and Community of metallb.io/v1beta1, BGPPeer of v1beta1 and v1beta2)", d.APIVersion, d.Kind))
		return nil
	}
	if specErr != nil {
		rd.refuse(id, "spec", specErr.Error())
	}
	return nil
}

// strict decodes a spec and refuses fields it does not know: a field
// MetalLB added after herald-migrate was written must not be dropped.
func strict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("unknown field %s: herald-migrate does not know what it does, so it cannot translate it", f)
		}
		return err
	}
	return nil
}

func (rd *Reader) refuse(object, field, msg string) {
	rd.Refusals = append(rd.Refusals, Finding{Object: object, Field: field, Message: msg})
}

func describe(o Object) string {
	return fmt.Sprintf("%s %s/%s", o.Kind, o.Metadata.Namespace, o.Metadata.Name)
}

// clusterResources are what ReadCluster lists, in MetalLB's versions;
// BGPPeer is read as v1beta2 (MetalLB's stored version), or v1beta1 from
// a MetalLB old enough not to serve v1beta2.
var clusterResources = []struct {
	resource string
	versions []string
}{
	{"ipaddresspools", []string{"v1beta1"}},
	{"l2advertisements", []string{"v1beta1"}},
	{"bgpadvertisements", []string{"v1beta1"}},
	{"bgppeers", []string{"v1beta2", "v1beta1"}},
	{"bfdprofiles", []string{"v1beta1"}},
	{"communities", []string{"v1beta1"}},
}

// ReadCluster lists MetalLB's objects in the namespace. A kind whose
// resource the cluster does not serve (MetalLB too old, or not installed)
// has no objects; it is an error only if no MetalLB kind is served.
func (rd *Reader) ReadCluster(ctx context.Context, dyn dynamic.Interface) error {
	served := 0
	for _, r := range clusterResources {
		for _, v := range r.versions {
			list, err := dyn.Resource(schema.GroupVersionResource{Group: Group, Version: v, Resource: r.resource}).
				Namespace(rd.Namespace).List(ctx, metav1.ListOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("list %s.%s/%s in %s: %w", r.resource, Group, v, rd.Namespace, err)
			}
			served++
			for _, item := range list.Items {
				raw, err := item.MarshalJSON()
				if err != nil {
					return err
				}
				if err := rd.add(raw); err != nil {
					return fmt.Errorf("%s %s: %w", r.resource, item.GetName(), err)
				}
			}
			break
		}
	}
	if served == 0 {
		return fmt.Errorf("the cluster serves none of MetalLB's kinds (%s): is MetalLB installed?", Group)
	}
	return nil
}
