package config

import (
	"fmt"
	"sort"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// Kinds of the objects a Problem can be attributed to.
const (
	KindIPPool           = "IPPool"
	KindL2Advertisement  = "L2Advertisement"
	KindBGPAdvertisement = "BGPAdvertisement"
	KindBGPPeer          = "BGPPeer"
	KindBFDProfile       = "BFDProfile"
)

// Ref names one configuration object.
type Ref struct {
	Kind string
	Name string
}

func (r Ref) String() string { return r.Kind + "/" + r.Name }

// Effect says what Herald does with an object that has a problem.
type Effect int

const (
	// Skipped means the object is not used at all.
	Skipped Effect = iota
	// KeptLastValid means the object's current spec is not used; its last valid
	// version keeps serving.
	KeptLastValid
	// Degraded means the object is used for everything it can resolve.
	Degraded
)

// Problem is one thing wrong with one object.
type Problem struct {
	Object Ref
	// Reason is a CamelCase word for conditions: Invalid, Conflict, MissingReference.
	Reason  string
	Message string
	Effect  Effect
}

// Condition is what the object's Ready condition should say.
type Condition struct {
	Ready   bool
	Reason  string
	Message string
}

// ConditionFor summarises the problems of one object into its Ready
// condition. An object with no problem is Ready with reason Valid; one used
// for only part of what it asks is Ready with reason PartiallyApplied; one
// not used (or used in its last valid version) is not Ready, with the
// reason of its first problem.
func (m *Model) ConditionFor(ref Ref) Condition {
	var probs []Problem
	for _, p := range m.Problems {
		if p.Object == ref {
			probs = append(probs, p)
		}
	}
	if len(probs) == 0 {
		return Condition{Ready: true, Reason: v1beta1.ReasonValid, Message: "in use"}
	}
	c := Condition{Ready: true, Reason: probs[0].Reason}
	for i, p := range probs {
		if p.Effect != Degraded {
			c.Ready = false
		}
		if i > 0 {
			c.Message += "; "
		}
		c.Message += p.Message
	}
	switch {
	case c.Ready:
		c.Reason = v1beta1.ReasonPartiallyApplied
	case probs[0].Effect == KeptLastValid:
		c.Message += " (its last valid version is still in use)"
	default:
		c.Message += " (not in use)"
	}
	return c
}

// problems collects problems during a build.
type problems []Problem

func (ps *problems) add(ref Ref, effect Effect, reason, format string, args ...any) {
	*ps = append(*ps, Problem{Object: ref, Reason: reason, Message: fmt.Sprintf(format, args...), Effect: effect})
}

func (ps problems) sorted() []Problem {
	out := append([]Problem(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Object.Kind != out[j].Object.Kind {
			return out[i].Object.Kind < out[j].Object.Kind
		}
		return out[i].Object.Name < out[j].Object.Name
	})
	return out
}
