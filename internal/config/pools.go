package config

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// poolInput is what a pool is built from: its spec and labels.
type poolInput struct {
	Spec   v1beta1.IPPoolSpec
	Labels map[string]string
}

func (b *builder) pools() {
	type candidate struct {
		obj  *v1beta1.IPPool
		in   poolInput
		pool *Pool
		// fallback is the pool's last valid version when its current spec is
		// invalid or conflicts.
		fallback *Pool
		fbIn     poolInput
	}
	var cands []*candidate
	for i := range b.in.Pools {
		obj := &b.in.Pools[i]
		ref := Ref{KindIPPool, obj.Name}
		c := &candidate{obj: obj, in: poolInput{Spec: *obj.Spec.DeepCopy(), Labels: obj.Labels}}
		pool, err := parsePool(obj.Name, c.in)
		if last, ok := b.lastPoolInput(obj); ok && !sameInput(last, c.in) {
			if fb, ferr := parsePool(obj.Name, last); ferr == nil {
				c.fallback, c.fbIn = fb, last
			}
		}
		switch {
		case err == nil:
			c.pool = pool
		case c.fallback != nil:
			b.problems.add(ref, KeptLastValid, v1beta1.ReasonInvalid, "%v", err)
			c.pool, c.in, c.fallback = c.fallback, c.fbIn, nil
		default:
			b.problems.add(ref, Skipped, v1beta1.ReasonInvalid, "%v", err)
			continue
		}
		cands = append(cands, c)
	}

	// Accept pools oldest first; a pool that overlaps an accepted one is at
	// fault (or falls back to its last valid version if that fits).
	olderFirst(cands, func(c *candidate) bool {
		last, ok := b.lastPoolInput(c.obj)
		return ok && sameInput(last, c.in)
	}, func(c *candidate) *metav1.ObjectMeta { return &c.obj.ObjectMeta })

	var accepted []poolRange
	overlap := func(p *Pool) (string, Range, Range, bool) {
		for _, r := range p.Ranges {
			for _, a := range accepted {
				if r.Overlaps(a.Range) {
					return a.pool.Name, r, a.Range, true
				}
			}
		}
		return "", Range{}, Range{}, false
	}
	for _, c := range cands {
		ref := Ref{KindIPPool, c.obj.Name}
		use, in := c.pool, c.in
		if other, r, o, ok := overlap(use); ok {
			msg := fmt.Sprintf("addresses %s overlap IPPool %q (%s)", rangeString(r), other, rangeString(o))
			if c.fallback != nil {
				if _, _, _, bad := overlap(c.fallback); !bad {
					b.problems.add(ref, KeptLastValid, v1beta1.ReasonConflict, "%s", msg)
					use, in = c.fallback, c.fbIn
				} else {
					b.problems.add(ref, Skipped, v1beta1.ReasonConflict, "%s", msg)
					continue
				}
			} else {
				b.problems.add(ref, Skipped, v1beta1.ReasonConflict, "%s", msg)
				continue
			}
		}
		b.m.Pools[use.Name] = use
		b.m.inputs[ref] = in
		for _, r := range use.Ranges {
			accepted = append(accepted, poolRange{Range: r, pool: use})
		}
	}
	sort.Slice(accepted, func(i, j int) bool { return accepted[i].First.Less(accepted[j].First) })
	b.m.ranges = accepted
}

// lastPoolInput is what the pool last served with: its input in the
// previous model or, when this process has no previous model of it (the
// controller or a speaker just started), the spec the controller recorded
// in the pool's status (with the pool's current labels). So after a
// restart the same pool wins an overlap, and an edited pool keeps its
// last valid addresses, as before the restart.
func (b *builder) lastPoolInput(obj *v1beta1.IPPool) (poolInput, bool) {
	if v, ok := b.prevInput(Ref{KindIPPool, obj.Name}); ok {
		return v.(poolInput), true
	}
	if obj.Status.LastApplied == nil {
		return poolInput{}, false
	}
	return poolInput{Spec: *obj.Status.LastApplied.DeepCopy(), Labels: obj.Labels}, true
}

// AppliedPool returns the spec the model uses for the pool, nil if it does
// not use the pool: what the controller records as the pool's
// status.lastApplied.
func (m *Model) AppliedPool(name string) *v1beta1.IPPoolSpec {
	in, ok := m.inputs[Ref{KindIPPool, name}].(poolInput)
	if !ok {
		return nil
	}
	return in.Spec.DeepCopy()
}

func parsePool(name string, in poolInput) (*Pool, error) {
	p := &Pool{
		Name:          name,
		Labels:        labels.Set(in.Labels),
		AutoAssign:    in.Spec.AutoAssign == nil || *in.Spec.AutoAssign,
		AvoidBuggyIPs: in.Spec.AvoidBuggyIPs,
	}
	if len(in.Spec.Addresses) == 0 {
		return nil, fmt.Errorf("addresses: the pool has no addresses")
	}
	for i, a := range in.Spec.Addresses {
		r, err := ParseRange(string(a))
		if err != nil {
			return nil, fmt.Errorf("addresses[%d]: %w", i, err)
		}
		p.Ranges = append(p.Ranges, r)
	}
	sort.Slice(p.Ranges, func(i, j int) bool { return p.Ranges[i].First.Less(p.Ranges[j].First) })
	for i := 1; i < len(p.Ranges); i++ {
		if p.Ranges[i-1].Overlaps(p.Ranges[i]) {
			return nil, fmt.Errorf("addresses: %s and %s overlap", rangeString(p.Ranges[i-1]), rangeString(p.Ranges[i]))
		}
	}
	if at := in.Spec.AllocateTo; at != nil {
		p.AllocateTo.Priority = int(at.Priority)
		p.AllocateTo.Namespaces = append([]string(nil), at.Namespaces...)
		sort.Strings(p.AllocateTo.Namespaces)
		var err error
		if p.AllocateTo.NamespaceSelectors, err = selectors(at.NamespaceSelectors); err != nil {
			return nil, fmt.Errorf("allocateTo.namespaceSelectors: %w", err)
		}
		if p.AllocateTo.ServiceSelectors, err = selectors(at.ServiceSelectors); err != nil {
			return nil, fmt.Errorf("allocateTo.serviceSelectors: %w", err)
		}
	}
	return p, nil
}

func rangeString(r Range) string {
	if ps := r.Prefixes(); len(ps) == 1 {
		return ps[0].String()
	}
	return r.First.String() + "-" + r.Last.String()
}
