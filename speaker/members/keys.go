package members

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// CheckKey returns ErrKeySize unless memberlist accepts key (16, 24 or 32
// bytes: AES-128, -192 or -256).
func CheckKey(key []byte) error {
	if memberlist.ValidateKey(key) != nil {
		return fmt.Errorf("%w (it holds %d)", ErrKeySize, len(key))
	}
	return nil
}

// KeyID names a key in metadata without revealing it: the first 8 bytes of
// its SHA-256 (gossip, metadata included, is encrypted anyway).
type KeyID uint64

// IDOf returns key's KeyID.
func IDOf(key []byte) KeyID {
	sum := sha256.Sum256(key)
	return KeyID(binary.BigEndian.Uint64(sum[:8]))
}

func (id KeyID) String() string { return fmt.Sprintf("%016x", uint64(id)) }

// Node metadata: what every member publishes to the others, encrypted with
// the gossip. Layout, version 1:
//
//	1 byte  version
//	1 byte  n, the number of keys installed (1 or 2)
//	n×8     their KeyIDs, the primary (the one it encrypts with) first
//	rest    the application's payload (SetMeta)
const metaVersion = 1

// metaSize is memberlist's limit on node metadata.
const metaSize = 512

// MaxAppMeta is the most an application payload may hold.
const MaxAppMeta = metaSize - 2 - 2*8

// ErrBadMeta is returned for metadata that cannot be read.
var ErrBadMeta = errors.New("members: bad node metadata")

// nodeMeta is one member's metadata.
type nodeMeta struct {
	keys []KeyID // the primary first
	app  []byte
}

func (m nodeMeta) marshal() []byte {
	out := make([]byte, 0, 2+8*len(m.keys)+len(m.app))
	out = append(out, metaVersion, byte(len(m.keys)))
	for _, k := range m.keys {
		out = binary.BigEndian.AppendUint64(out, uint64(k))
	}
	return append(out, m.app...)
}

func parseMeta(b []byte) (nodeMeta, error) {
	if len(b) == 0 {
		return nodeMeta{}, nil // a member that publishes nothing
	}
	if len(b) < 2 || b[0] != metaVersion {
		return nodeMeta{}, fmt.Errorf("%w: unknown version", ErrBadMeta)
	}
	n := int(b[1])
	if n > 8 || len(b) < 2+8*n {
		return nodeMeta{}, fmt.Errorf("%w: %d keys in %d bytes", ErrBadMeta, n, len(b))
	}
	m := nodeMeta{keys: make([]KeyID, n)}
	for i := range n {
		m.keys[i] = KeyID(binary.BigEndian.Uint64(b[2+8*i:]))
	}
	m.app = bytes.Clone(b[2+8*n:])
	return m, nil
}

// Key rotation without an outage. Memberlist encrypts with one key (the
// primary) and decrypts with any installed one. When the Secret's key
// changes, every member (1) installs the new key beside the old one, (2)
// encrypts with it once every live member has it installed, and (3) drops
// the old one once every live member encrypts with the new one. Each member
// publishes its installed keys in its metadata, so each step waits for the
// others; a member that never catches up (cut off, stuck) is waited for at
// most KeyStepTimeout. At no moment does one member send what another
// cannot decrypt, so nobody is suspected and no address moves.

// KeyStepTimeout is how long a step of a key rotation waits for a member
// that does not catch up.
const KeyStepTimeout = 30 * time.Second

// keyAction is what to do with the keyring next.
type keyAction struct {
	op  keyOp
	key []byte
	// waitingFor names the live members the rotation waits for.
	waitingFor []string
}

type keyOp int

const (
	keyNone keyOp = iota
	keyAdd
	keyUse
	keyRemove
)

// nextKeyStep decides the next rotation step: keys are this member's
// installed keys (the primary first, at most two), target the key it should
// end with, peers the other live members' published keys (nil for a member
// that publishes none), since when the current step began. It is pure.
func nextKeyStep(keys [][]byte, target []byte, peers map[string][]KeyID, since, now time.Time) keyAction {
	if target == nil {
		return keyAction{}
	}
	tid := IDOf(target)
	installed := slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, target) })
	timedOut := now.Sub(since) >= KeyStepTimeout
	var waiting []string
	switch {
	case !installed && len(keys) > 1:
		// A rotation in flight: drop the key that is not the primary first
		// (the keyring holds at most two).
		return keyAction{op: keyRemove, key: keys[1]}
	case !installed:
		return keyAction{op: keyAdd, key: target}
	case !bytes.Equal(keys[0], target):
		for n, ids := range peers {
			if !slices.Contains(ids, tid) {
				waiting = append(waiting, n)
			}
		}
		slices.Sort(waiting)
		if len(waiting) == 0 || timedOut {
			return keyAction{op: keyUse, key: target, waitingFor: waiting}
		}
	case len(keys) > 1:
		for n, ids := range peers {
			if len(ids) == 0 || ids[0] != tid {
				waiting = append(waiting, n)
			}
		}
		slices.Sort(waiting)
		if len(waiting) == 0 || timedOut {
			return keyAction{op: keyRemove, key: keys[1], waitingFor: waiting}
		}
	}
	return keyAction{waitingFor: waiting}
}
