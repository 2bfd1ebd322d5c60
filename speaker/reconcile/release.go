package reconcile

import (
	"encoding/json"
	"errors"
	"net/netip"
)

// release is the message a node sends a member it sees (re)join: "these
// addresses are yours now, I stopped announcing them" (possibly none). The
// receiver announces them at once, with a gratuitous burst even if it
// never stopped announcing them, so clients that followed the sender
// meanwhile come back. Receiving one from every live member also tells a
// (re)joining node that the others have seen it (see settle).
type release struct {
	From string       `json:"from"`
	IPs  []netip.Addr `json:"ips"`
}

// releaseKind tags the message on memberlist's channel, beside the
// members package's hand-over.
const releaseKind = "release/v1"

var errNotRelease = errors.New("not a release message")

func (r release) marshal() []byte {
	b, _ := json.Marshal(struct {
		Kind string `json:"kind"`
		release
	}{releaseKind, r}) // cannot fail
	return b
}

func parseRelease(b []byte) (release, error) {
	var e struct {
		Kind string `json:"kind"`
		release
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Kind != releaseKind || e.From == "" {
		return release{}, errNotRelease
	}
	return e.release, nil
}
