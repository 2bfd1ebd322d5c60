package reconcilers

import (
	"errors"

	"github.com/heraldlb/herald/controller/allocator"
	"github.com/heraldlb/herald/internal/k8s"
)

// failure names one kind of allocation failure: the condition reason and
// the short word of the failures metric.
type failure struct {
	sentinel error
	reason   string
	word     string
}

var failures = []failure{
	{allocator.ErrNoPool, "NoPool", "nopool"},
	{allocator.ErrPoolNotFound, "PoolNotFound", "notfound"},
	{allocator.ErrPoolExhausted, "PoolExhausted", "exhausted"},
	{allocator.ErrNotInPool, "NotInPool", "notinpool"},
	{allocator.ErrIPInUse, "IPInUse", "inuse"},
	{allocator.ErrSharingConflict, "SharingConflict", "sharing"},
	{allocator.ErrFamilyUnavailable, "FamilyUnavailable", "family"},
	{allocator.ErrInvalidRequest, "InvalidRequest", "invalid"},
	{k8s.ErrBadAnnotation, "InvalidRequest", "invalid"},
}

// failureOf classifies an allocation error; unknown errors count as invalid.
func failureOf(err error) failure {
	for _, f := range failures {
		if errors.Is(err, f.sentinel) {
			return f
		}
	}
	return failure{sentinel: err, reason: "InvalidRequest", word: "invalid"}
}

// freedAddressHelps reports whether a Service refused with err may succeed
// once some other Service releases an address. The other failures need a
// pool change or a change of the Service itself.
func freedAddressHelps(err error) bool {
	return errors.Is(err, allocator.ErrPoolExhausted) ||
		errors.Is(err, allocator.ErrIPInUse) ||
		errors.Is(err, allocator.ErrSharingConflict)
}
