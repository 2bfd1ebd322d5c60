package allocator

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the allocator returns wraps exactly one of them
// and reads as a plain sentence fit for an Event or a Service condition.
var (
	ErrNoPool            = errors.New("no pool may serve this Service")
	ErrPoolNotFound      = errors.New("requested pool does not exist")
	ErrPoolExhausted     = errors.New("pool has no free address")
	ErrNotInPool         = errors.New("requested IP is outside every pool the Service may use")
	ErrIPInUse           = errors.New("IP is used by another Service")
	ErrSharingConflict   = errors.New("IP sharing conflict")
	ErrFamilyUnavailable = errors.New("no pool provides the IP families the Service needs")
	ErrInvalidRequest    = errors.New("invalid request")
)

// reasonError carries a specific message and unwraps to its sentinel.
type reasonError struct {
	kind error
	msg  string
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.kind }

func fail(kind error, format string, args ...any) error {
	return &reasonError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
