package takeover

import "fmt"

// Published is what each speaker tells the others about itself through
// memberlist metadata: whether it sees a majority of the speakers and
// whether it is settling (it is a candidate for addresses only once it has
// said it sees a majority and has settled since it appeared, see the
// package doc), which addresses it cannot announce, and whether it is
// excluded from load balancing (it then announces nothing).
type Published struct {
	Quorum, Settling bool
	Blocked          Blocked
	// Excluded: the node announces nothing (drained, excluded from
	// external load balancers, network unavailable); it is no candidate.
	Excluded bool
}

// Encoding: version 1, a flags byte (1: Quorum, 2: Settling, 4:
// Excluded), then the Blocked set. A speaker that does not know a flag
// takes the member for not ready (no candidate): for Excluded, the
// meaning it has anyway.
const (
	publishedVersion = 1
	flagQuorum       = 1
	flagSettling     = 2
	flagExcluded     = 4
	knownFlags       = flagQuorum | flagSettling | flagExcluded
)

// MarshalBinary encodes p for ParsePublished.
func (p Published) MarshalBinary() ([]byte, error) {
	b, err := p.Blocked.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var flags byte
	if p.Quorum {
		flags |= flagQuorum
	}
	if p.Settling {
		flags |= flagSettling
	}
	if p.Excluded {
		flags |= flagExcluded
	}
	return append([]byte{publishedVersion, flags}, b...), nil
}

// ParsePublished decodes what MarshalBinary wrote. Empty data (a member
// that publishes nothing) is the zero value: no quorum, nothing blocked.
// It never panics on hostile input.
func ParsePublished(data []byte) (Published, error) {
	if len(data) == 0 {
		return Published{}, nil
	}
	if len(data) < 2 || data[0] != publishedVersion || data[1]&^knownFlags != 0 {
		return Published{}, fmt.Errorf("%w: unknown published state", ErrBadBlocked)
	}
	b, err := ParseBlocked(data[2:])
	if err != nil {
		return Published{}, err
	}
	return Published{Quorum: data[1]&flagQuorum != 0, Settling: data[1]&flagSettling != 0, Excluded: data[1]&flagExcluded != 0, Blocked: b}, nil
}

// Equal reports whether p and o say the same.
func (p Published) Equal(o Published) bool {
	return p.Quorum == o.Quorum && p.Settling == o.Settling && p.Excluded == o.Excluded && p.Blocked.Equal(o.Blocked)
}
