package k8s

import (
	"testing"

	"github.com/hashicorp/memberlist"
)

// The controller and the speakers accept exactly the keys memberlist does.
func TestCheckMemberlistKeyAgreesWithMemberlist(t *testing.T) {
	for n := range 65 {
		key := make([]byte, n)
		ours, theirs := CheckMemberlistKey(key), memberlist.ValidateKey(key)
		if (ours == nil) != (theirs == nil) {
			t.Errorf("%d bytes: we say %v, memberlist says %v", n, ours, theirs)
		}
	}
}
