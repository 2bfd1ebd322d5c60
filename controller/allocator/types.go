package allocator

import (
	"net/netip"

	"k8s.io/apimachinery/pkg/labels"
)

// Family is an IP address family.
type Family uint8

// The families, numbered as the IP versions.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "unknown family"
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// FamilyPolicy mirrors a Service's spec.ipFamilyPolicy. The zero value is SingleStack.
type FamilyPolicy uint8

// The policies, named as in spec.ipFamilyPolicy.
const (
	SingleStack FamilyPolicy = iota
	PreferDualStack
	RequireDualStack
)

func (p FamilyPolicy) String() string {
	switch p {
	case SingleStack:
		return "SingleStack"
	case PreferDualStack:
		return "PreferDualStack"
	case RequireDualStack:
		return "RequireDualStack"
	}
	return "unknown policy"
}

// Range is an inclusive block of addresses of one family.
type Range struct{ First, Last netip.Addr }

// Pool is an IP pool as the allocator sees it.
type Pool struct {
	Name   string
	Ranges []Range // IPv4 and/or IPv6; overlapping or adjacent ranges are merged
	// AutoAssign false: the pool serves only Services that name it or request
	// one of its IPs. Turning it off does not move Services that already hold
	// addresses from the pool.
	AutoAssign bool
	// AvoidBuggyIPs: never hand out x.x.x.0 or x.x.x.255 of any IPv4 /24.
	AvoidBuggyIPs bool
	AllocateTo    AllocateTo
}

// AllocateTo restricts which Services a pool serves. The zero value serves all.
type AllocateTo struct {
	// Priority orders automatic pool choice: lower first; 0 means unset and
	// comes after every set priority. Ties go by pool name.
	Priority int
	// Namespaces and NamespaceSelectors: the Service's namespace must be listed
	// or match one selector; no restriction when both are empty.
	Namespaces         []string
	NamespaceSelectors []labels.Selector
	// ServiceSelectors: the Service's labels must match one; none: no restriction.
	ServiceSelectors []labels.Selector
}

// Port is one port of a Service, for the sharing rules.
type Port struct {
	Protocol string // "TCP", "UDP", "SCTP"; "" means TCP
	Port     int32
}

// Request describes a Service asking for addresses.
type Request struct {
	Service         string // "namespace/name": the identity of the holder
	Namespace       string // taken from Service when empty
	NamespaceLabels map[string]string
	ServiceLabels   map[string]string
	// Families is spec.ipFamilies in order; the first is the primary family.
	// When empty, the families of IPs are used.
	Families     []Family
	FamilyPolicy FamilyPolicy
	Pool         string       // pool requested by annotation; "" means any
	IPs          []netip.Addr // requested IPs, at most one per family
	SharingKey   string       // allow-shared-ip key; "" means no sharing
	// SharingNamespaces are the other namespaces whose Services may share
	// an IP with this one ("*": any); Services of two namespaces share only
	// when each lists the other's. Empty: its own namespace only.
	SharingNamespaces []string
	Ports             []Port
	// LocalTrafficSelector is non-empty iff externalTrafficPolicy is Local: the
	// canonical selector of the Service's pods. Services sharing an IP must
	// agree on it, since one node answers for the IP.
	LocalTrafficSelector string
}

// Assignment is what a Service holds: IPs in the order of its families.
type Assignment struct {
	Pool string
	IPs  []netip.Addr
}

// PoolStats counts one family of one pool. Total excludes addresses that
// AvoidBuggyIPs withholds. Counts saturate at math.MaxInt64.
type PoolStats struct {
	Pool      string
	Family    Family
	Total     int64
	Assigned  int64 // addresses of the pool held by any Service
	Available int64
}
