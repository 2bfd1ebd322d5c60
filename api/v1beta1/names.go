package v1beta1

// Service annotations Herald reads. MetalLB's spellings are accepted as aliases
// (see the *Aliases lists) so MetalLB users can switch without edits.
const (
	// AnnotationIPPool names the IPPool a Service's IP must come from.
	AnnotationIPPool = "herald.dev/ip-pool"
	// AnnotationLoadBalancerIPs requests specific IPs, comma-separated, one per family.
	AnnotationLoadBalancerIPs = "herald.dev/load-balancer-ips"
	// AnnotationAllowSharedIP is the sharing key: Services with the same key
	// and no overlapping ports may share one IP.
	AnnotationAllowSharedIP = "herald.dev/allow-shared-ip"
	// AnnotationSharingCrossNamespace lets a Service share its IP with
	// Services of other namespaces: a comma-separated list of namespaces, or
	// "*" for any. Services of two namespaces share only when both have the
	// same sharing key and each lists the other's namespace; without it,
	// sharing stays inside the namespace.
	AnnotationSharingCrossNamespace = "herald.dev/sharing-cross-namespace"
)

// Aliases, in order of precedence after Herald's own annotation.
var (
	IPPoolAliases          = []string{"metallb.io/address-pool", "metallb.universe.tf/address-pool"}
	LoadBalancerIPsAliases = []string{"metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"}
	AllowSharedIPAliases   = []string{"metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"}
)

// AnnotationDrain on a Node, set to "true", takes the node out of load
// balancing before maintenance: its speaker hands its Layer 2 addresses to
// the next nodes and withdraws its BGP routes gracefully (first marked
// with the GRACEFUL_SHUTDOWN community, then withdrawn). Remove it to bring
// the node back. The node's speaker keeps running meanwhile.
const AnnotationDrain = "herald.dev/drain"

// Namespace is where Herald runs and where the Secrets it reads (BGP
// passwords, the memberlist key) live.
const Namespace = "herald-system"

// Condition types and reasons shared by the controller and the speaker.
const (
	// ConditionReady is true on a config object (pool, advertisement, peer,
	// profile) that is valid and in use; false with a reason when Herald
	// skips it.
	ConditionReady = "Ready"

	// ConditionServiceIPAllocated is the condition Herald puts on a Service:
	// true when its IP request is satisfied, false with the reason otherwise.
	ConditionServiceIPAllocated = "herald.dev/IPAllocated"

	ReasonValid    = "Valid"
	ReasonInvalid  = "Invalid"
	ReasonConflict = "Conflict"
	ReasonMissing  = "MissingReference"
	// ReasonPartiallyApplied: the object is in use for everything it can
	// resolve; the message says what is left out and why.
	ReasonPartiallyApplied = "PartiallyApplied"
)

// FieldManager is the name Herald's components write with.
const (
	FieldManagerController = "herald-controller"
	FieldManagerSpeaker    = "herald-speaker"
)
