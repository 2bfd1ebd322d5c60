package members

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
)

// Kind says what a Message asks of its receiver.
type Kind string

// The speakers' message kinds.
const (
	// KindHandover: From is stopping; the receiver should announce IPs at
	// once (it is their successor), without waiting for failure detection.
	// An empty hand-over tells a member that From left rather than failed.
	KindHandover Kind = "handover/v1"
	// KindRelease: From saw the receiver (re)join and stopped announcing
	// IPs, which the receiver now ranks first for (possibly none).
	KindRelease Kind = "release/v1"
)

// Message is what one speaker sends another with Send: a small JSON object
// {"kind":"handover/v1","from":"node-a","ips":["198.51.100.5"]}.
type Message struct {
	Kind Kind         `json:"kind"`
	From string       `json:"from"`
	IPs  []netip.Addr `json:"ips,omitempty"`
}

// maxMessageIPs bounds what one message may carry (a node owning more
// sends several); ParseMessage refuses more, so a hostile peer cannot make
// a speaker allocate without bound.
const maxMessageIPs = 100_000

// ErrBadMessage is returned by ParseMessage for data that is not a
// well-formed message.
var ErrBadMessage = errors.New("members: not a speaker message")

// Marshal encodes m for Send.
func (m Message) Marshal() []byte {
	b, _ := json.Marshal(m) // cannot fail: plain strings and addresses
	return b
}

// ParseMessage decodes a message received through Options.OnMessage and
// checks it: a known kind, a sender, valid addresses.
func ParseMessage(b []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	switch {
	case m.Kind != KindHandover && m.Kind != KindRelease:
		return Message{}, fmt.Errorf("%w: kind %q", ErrBadMessage, m.Kind)
	case m.From == "":
		return Message{}, fmt.Errorf("%w: no sender", ErrBadMessage)
	case len(m.IPs) > maxMessageIPs:
		return Message{}, fmt.Errorf("%w: %d addresses", ErrBadMessage, len(m.IPs))
	}
	for i, ip := range m.IPs {
		if !ip.IsValid() || ip.Zone() != "" {
			return Message{}, fmt.Errorf("%w: address %q", ErrBadMessage, ip)
		}
		m.IPs[i] = ip.Unmap()
	}
	return m, nil
}
