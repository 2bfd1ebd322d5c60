package members

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
)

// Handover is the message a stopping speaker sends to each successor so it
// takes the IPs over at once instead of after failure detection or gossip:
// "From is going away; announce IPs now". The receiver should still check
// that it is the rightful owner (election over the members minus From).
type Handover struct {
	From string       `json:"from"`
	IPs  []netip.Addr `json:"ips"`
}

// handoverKind tags the message, so other kinds can share the channel later.
const handoverKind = "handover/v1"

// ErrNotHandover is returned by ParseHandover for other messages.
var ErrNotHandover = errors.New("members: not a hand-over message")

type envelope struct {
	Kind string `json:"kind"`
	Handover
}

// Marshal encodes h for Send: a small JSON object
// {"kind":"handover/v1","from":"node-a","ips":["198.51.100.5"]}.
func (h Handover) Marshal() []byte {
	b, _ := json.Marshal(envelope{Kind: handoverKind, Handover: h}) // cannot fail
	return b
}

// ParseHandover decodes a message received through Options.OnMessage.
func ParseHandover(b []byte) (Handover, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Handover{}, fmt.Errorf("%w: %w", ErrNotHandover, err)
	}
	if e.Kind != handoverKind {
		return Handover{}, fmt.Errorf("%w: kind %q", ErrNotHandover, e.Kind)
	}
	if e.From == "" {
		return Handover{}, fmt.Errorf("%w: no sender", ErrNotHandover)
	}
	return e.Handover, nil
}
