package config

import (
	"errors"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// Input is everything a Model is built from.
type Input struct {
	Pools             []v1beta1.IPPool
	L2Advertisements  []v1beta1.L2Advertisement
	BGPAdvertisements []v1beta1.BGPAdvertisement
	Peers             []v1beta1.BGPPeer
	BFDProfiles       []v1beta1.BFDProfile
	// Secrets in herald-system; only those peers reference are read.
	Secrets []corev1.Secret
	// Nodes by name with their labels, to find two peers for one node.
	Nodes map[string]map[string]string
}

// Build validates the input and returns the model. prev is the previous
// model (nil at start): objects that turn invalid keep their version from
// prev, and on a conflict the object that changed since prev is the one at
// fault.
func Build(in Input, prev *Model) *Model {
	if prev == nil {
		prev = &Model{}
	}
	b := &builder{in: in, prev: prev, m: &Model{
		Pools:       map[string]*Pool{},
		Peers:       map[string]*Peer{},
		BFDProfiles: map[string]*BFDProfile{},
		inputs:      map[Ref]any{},
	}}
	b.pools()
	b.bfdProfiles()
	b.peers()
	b.l2Advertisements()
	b.bgpAdvertisements()
	b.m.Problems = b.problems.sorted()
	return b.m
}

type builder struct {
	in       Input
	prev     *Model
	m        *Model
	problems problems
}

// prevInput returns the spec an object had in the previous model, if it was used.
func (b *builder) prevInput(ref Ref) (any, bool) {
	v, ok := b.prev.inputs[ref]
	return v, ok
}

// sameInput compares two inputs of an object. Nil and empty lists and maps
// are equal: an input read back from an object's status has been through
// JSON, which drops empty ones.
func sameInput(a, b any) bool { return equality.Semantic.DeepEqual(a, b) }

// appliedPerStatus reports whether an object's status says its current
// generation is in use (Ready true, observed at that generation): for
// conflicts after a restart, when no previous model knows the object.
func appliedPerStatus(meta *metav1.ObjectMeta, conds []metav1.Condition) bool {
	c := apimeta.FindStatusCondition(conds, v1beta1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == meta.Generation
}

// selectors converts label selectors; the error names the first bad one.
func selectors(in []metav1.LabelSelector) ([]labels.Selector, error) {
	out := make([]labels.Selector, 0, len(in))
	for i := range in {
		s, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// olderFirst orders objects for conflict resolution: unchanged since the
// previous model first, then by creation time, then by name.
func olderFirst[T any](items []T, unchanged func(T) bool, meta func(T) *metav1.ObjectMeta) {
	sort.SliceStable(items, func(i, j int) bool {
		ui, uj := unchanged(items[i]), unchanged(items[j])
		if ui != uj {
			return ui
		}
		mi, mj := meta(items[i]), meta(items[j])
		if !mi.CreationTimestamp.Equal(&mj.CreationTimestamp) {
			return mi.CreationTimestamp.Before(&mj.CreationTimestamp)
		}
		return mi.Name < mj.Name
	})
}

// lastValid parses an object's current spec; when that fails it reports the
// problem and falls back to the spec the previous model used, if any. ok is
// false when the object cannot be used at all.
func lastValid[S, T any](b *builder, ref Ref, cur S, parse func(S) (T, error)) (out T, used S, ok bool) {
	out, err := parse(cur)
	if err == nil {
		return out, cur, true
	}
	prevIn, had := b.prevInput(ref)
	if !had {
		b.problems.add(ref, Skipped, reasonOf(err), "%v", err)
		return out, cur, false
	}
	b.problems.add(ref, KeptLastValid, reasonOf(err), "%v", err)
	prevSpec := prevIn.(S)
	out, err = parse(prevSpec)
	return out, prevSpec, err == nil
}

func reasonOf(err error) string {
	if errors.As(err, new(missingRefError)) {
		return v1beta1.ReasonMissing
	}
	return v1beta1.ReasonInvalid
}

// Refs names every config object of the input, so a caller can write the
// status of each one, including those the model skipped.
func (in Input) Refs() []Ref {
	var refs []Ref
	for _, o := range in.Pools {
		refs = append(refs, Ref{KindIPPool, o.Name})
	}
	for _, o := range in.L2Advertisements {
		refs = append(refs, Ref{KindL2Advertisement, o.Name})
	}
	for _, o := range in.BGPAdvertisements {
		refs = append(refs, Ref{KindBGPAdvertisement, o.Name})
	}
	for _, o := range in.Peers {
		refs = append(refs, Ref{KindBGPPeer, o.Name})
	}
	for _, o := range in.BFDProfiles {
		refs = append(refs, Ref{KindBFDProfile, o.Name})
	}
	return refs
}
