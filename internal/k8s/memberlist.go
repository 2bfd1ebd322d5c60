package k8s

import (
	"fmt"
	"slices"
)

// The Secret that holds the memberlist encryption key. The controller creates
// it in v1beta1.Namespace with a random 32-byte key (AES-256) when it is
// missing and never overwrites it; the speakers read it to encrypt gossip,
// and rotate to a new key written there without a restart.
const (
	MemberlistSecretName = "herald-memberlist"
	MemberlistSecretKey  = "key"
	MemberlistKeySize    = 32
)

// MemberlistKeySizes are the key lengths the speakers accept (AES-128,
// -192, -256): memberlist's own rule, which a test holds them to.
var MemberlistKeySizes = []int{16, 24, 32}

// CheckMemberlistKey says what is wrong with a memberlist key, nil if
// nothing. The controller and the speakers use this one rule.
func CheckMemberlistKey(key []byte) error {
	if !slices.Contains(MemberlistKeySizes, len(key)) {
		return fmt.Errorf("the key must be 16, 24 or 32 bytes (AES-128, -192 or -256), it holds %d", len(key))
	}
	return nil
}
