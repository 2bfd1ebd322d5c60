package k8s

// The Secret that holds the memberlist encryption key. The controller creates
// it in v1beta1.Namespace with a random 32-byte key (AES-256) when it is
// missing and never overwrites it; the speakers read it to encrypt gossip.
const (
	MemberlistSecretName = "herald-memberlist"
	MemberlistSecretKey  = "key"
	MemberlistKeySize    = 32
)
