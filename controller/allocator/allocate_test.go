package allocator

import (
	"errors"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

// held is a Service that holds IPs before the call under test: imported with
// Assign when ips is set, else allocated.
type held struct {
	req Request
	ips []string
}

type allocateCase struct {
	name     string
	pools    []Pool
	held     []held
	released []string // Services released after held, before the call
	req      Request
	assign   []string // set: call Assign(req, assign) instead of Allocate(req)
	wantIPs  []string
	wantPool string
	wantErr  error
	wantMsg  string // the exact error text, when set
}

var (
	small    = Pool{Name: "small", Ranges: []Range{cidr("198.51.100.0/30")}, AutoAssign: true}
	web      = Pool{Name: "web", Ranges: []Range{cidr("198.51.100.0/24")}, AutoAssign: true}
	manual   = Pool{Name: "manual", Ranges: []Range{cidr("203.0.113.0/24")}}
	buggy    = Pool{Name: "buggy", Ranges: []Range{cidr("198.51.100.0/24")}, AutoAssign: true, AvoidBuggyIPs: true}
	dualPool = Pool{Name: "dual", Ranges: []Range{cidr("198.51.100.0/24"), cidr("2001:db8::/120")}, AutoAssign: true}
	v6Pool   = Pool{Name: "v6", Ranges: []Range{cidr("2001:db8:1::/120")}, AutoAssign: true}
)

func allocateCases() []allocateCase {
	return []allocateCase{
		// Plain allocation and exhaustion.
		{
			name:    "first Service gets the pool's lowest address",
			pools:   []Pool{small},
			req:     Request{Service: "default/a", Families: v4},
			wantIPs: []string{"198.51.100.0"}, wantPool: "small",
		},
		{
			name:    "next Service gets the next address",
			pools:   []Pool{small},
			held:    []held{{req: Request{Service: "default/a", Families: v4}}},
			req:     Request{Service: "default/b", Families: v4},
			wantIPs: []string{"198.51.100.1"}, wantPool: "small",
		},
		{
			name:     "a released address is handed out again first",
			pools:    []Pool{small},
			held:     []held{{req: Request{Service: "default/a", Families: v4}}, {req: Request{Service: "default/b", Families: v4}}},
			released: []string{"default/a"},
			req:      Request{Service: "default/c", Families: v4},
			wantIPs:  []string{"198.51.100.0"}, wantPool: "small",
		},
		{
			name:  "a full pool refuses with ErrPoolExhausted",
			pools: []Pool{small},
			held: []held{
				{req: Request{Service: "default/a", Families: v4}}, {req: Request{Service: "default/b", Families: v4}},
				{req: Request{Service: "default/c", Families: v4}}, {req: Request{Service: "default/d", Families: v4}},
			},
			req:     Request{Service: "default/e", Families: v4},
			wantErr: ErrPoolExhausted,
			wantMsg: `no address for Service default/e (SingleStack, IPv4 only): pool "small" has no free IPv4 address`,
		},
		{
			name:    "a full preferred pool falls through to the next pool",
			pools:   []Pool{withPriority(small, 1), withPriority(manualAuto(), 2)},
			held:    []held{{ips: []string{"198.51.100.0"}}, {ips: []string{"198.51.100.1"}}, {ips: []string{"198.51.100.2"}}, {ips: []string{"198.51.100.3"}}},
			req:     Request{Service: "default/e", Families: v4},
			wantIPs: []string{"203.0.113.0"}, wantPool: "manual",
		},
		{
			name:    "no pool configured at all",
			req:     Request{Service: "default/a", Families: v4},
			wantErr: ErrNoPool, wantMsg: "no IP pool is configured",
		},

		// avoidBuggyIPs.
		{
			name:    "avoidBuggyIPs skips x.x.x.0",
			pools:   []Pool{buggy},
			req:     Request{Service: "default/a", Families: v4},
			wantIPs: []string{"198.51.100.1"}, wantPool: "buggy",
		},
		{
			name:    "avoidBuggyIPs skips .255 and the next .0 across a /24 boundary",
			pools:   []Pool{{Name: "b", Ranges: []Range{iprange("198.51.100.254", "198.51.101.2")}, AutoAssign: true, AvoidBuggyIPs: true}},
			held:    []held{{req: Request{Service: "default/a", Families: v4}}},
			req:     Request{Service: "default/b", Families: v4},
			wantIPs: []string{"198.51.101.1"}, wantPool: "b",
		},
		{
			name:    "avoidBuggyIPs pool holding only .255 and .0 is exhausted",
			pools:   []Pool{{Name: "b", Ranges: []Range{iprange("198.51.100.255", "198.51.101.0")}, AutoAssign: true, AvoidBuggyIPs: true}},
			req:     Request{Service: "default/a", Families: v4},
			wantErr: ErrPoolExhausted,
		},
		{
			name:    "avoidBuggyIPs does not apply to IPv6",
			pools:   []Pool{{Name: "b", Ranges: []Range{cidr("2001:db8::/120")}, AutoAssign: true, AvoidBuggyIPs: true}},
			req:     Request{Service: "default/a", Families: v6},
			wantIPs: []string{"2001:db8::"}, wantPool: "b",
		},

		// autoAssign and pool by annotation.
		{
			name:    "an autoAssign false pool is never picked automatically",
			pools:   []Pool{manual},
			req:     Request{Service: "default/a", Families: v4},
			wantErr: ErrNoPool,
			wantMsg: "no pool has autoAssign enabled; Service default/a must name a pool or request an IP",
		},
		{
			name:    "an autoAssign false pool is skipped for an autoAssign one",
			pools:   []Pool{withPriority(manual, 1), web},
			req:     Request{Service: "default/a", Families: v4},
			wantIPs: []string{"198.51.100.0"}, wantPool: "web",
		},
		{
			name:    "a pool named by annotation is used even with autoAssign false",
			pools:   []Pool{web, manual},
			req:     Request{Service: "default/a", Families: v4, Pool: "manual"},
			wantIPs: []string{"203.0.113.0"}, wantPool: "manual",
		},
		{
			name:    "a pool named by annotation that does not exist",
			pools:   []Pool{web},
			req:     Request{Service: "default/a", Families: v4, Pool: "nope"},
			wantErr: ErrPoolNotFound,
			wantMsg: `pool "nope" requested by Service default/a does not exist`,
		},
		{
			name:    "a pool named by annotation must still serve the Service's namespace",
			pools:   []Pool{web, inNamespaces(manual, "prod")},
			req:     Request{Service: "dev/a", Families: v4, Pool: "manual"},
			wantErr: ErrNoPool,
			wantMsg: `pool "manual" requested by Service dev/a does not serve namespace "dev"`,
		},

		// allocateTo: namespaces, selectors, priority.
		{
			name:    "a pool restricted to other namespaces is passed over",
			pools:   []Pool{withPriority(inNamespaces(manualAuto(), "prod"), 1), web},
			req:     Request{Service: "dev/a", Families: v4},
			wantIPs: []string{"198.51.100.0"}, wantPool: "web",
		},
		{
			name:    "a pool restricted to the Service's namespace is used",
			pools:   []Pool{withPriority(inNamespaces(manualAuto(), "prod"), 1), web},
			req:     Request{Service: "prod/a", Families: v4},
			wantIPs: []string{"203.0.113.0"}, wantPool: "manual",
		},
		{
			name: "a namespace selector matches the namespace's labels",
			pools: []Pool{web, {Name: "teams", Ranges: []Range{cidr("203.0.113.0/24")}, AutoAssign: true,
				AllocateTo: AllocateTo{Priority: 1, NamespaceSelectors: []labels.Selector{sel("team=blue")}}}},
			req:     Request{Service: "blue-app/a", Families: v4, NamespaceLabels: map[string]string{"team": "blue"}},
			wantIPs: []string{"203.0.113.0"}, wantPool: "teams",
		},
		{
			name:    "a service selector steers labelled Services to its pool",
			pools:   []Pool{web, {Name: "public", Ranges: []Range{cidr("203.0.113.0/24")}, AutoAssign: true, AllocateTo: AllocateTo{Priority: 1, ServiceSelectors: []labels.Selector{sel("exposure=public")}}}},
			req:     Request{Service: "default/a", Families: v4, ServiceLabels: map[string]string{"exposure": "public"}},
			wantIPs: []string{"203.0.113.0"}, wantPool: "public",
		},
		{
			name:    "a service selector refuses an unlabelled Service when no other pool exists",
			pools:   []Pool{{Name: "public", Ranges: []Range{cidr("203.0.113.0/24")}, AutoAssign: true, AllocateTo: AllocateTo{ServiceSelectors: []labels.Selector{sel("exposure=public")}}}},
			req:     Request{Service: "default/a", Families: v4},
			wantErr: ErrNoPool,
			wantMsg: `no autoAssign pool serves Service default/a: pool "public" does not serve Services with labels {}`,
		},
		{
			name:    "the lower priority number wins over name order",
			pools:   []Pool{withPriority(web, 5), withPriority(manualAuto(), 2)},
			req:     Request{Service: "default/a", Families: v4},
			wantIPs: []string{"203.0.113.0"}, wantPool: "manual",
		},
		{
			name:    "an unset priority comes after every set priority",
			pools:   []Pool{web, withPriority(manualAuto(), 10)},
			req:     Request{Service: "default/a", Families: v4},
			wantIPs: []string{"203.0.113.0"}, wantPool: "manual",
		},
		{
			name:    "equal priorities go by pool name",
			pools:   []Pool{withPriority(web, 3), withPriority(manualAuto(), 3)},
			req:     Request{Service: "default/a", Families: v4},
			wantIPs: []string{"203.0.113.0"}, wantPool: "manual",
		},

		// Requested IPs.
		{
			name:    "a requested IP inside a pool is given even if lower ones are free",
			pools:   []Pool{web},
			req:     Request{Service: "default/a", Families: v4, IPs: addrs("198.51.100.7")},
			wantIPs: []string{"198.51.100.7"}, wantPool: "web",
		},
		{
			name:    "a requested IP outside every pool is refused",
			pools:   []Pool{web},
			req:     Request{Service: "default/a", Families: v4, IPs: addrs("203.0.113.9")},
			wantErr: ErrNotInPool, wantMsg: "requested IP 203.0.113.9 is not in any pool",
		},
		{
			name:    "a requested IP held by a Service without a sharing key is refused",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "default/web", Families: v4}, ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "default/a", Families: v4, IPs: addrs("198.51.100.7")},
			wantErr: ErrIPInUse, wantMsg: "requested IP 198.51.100.7 is already used by default/web (no shared key)",
		},
		{
			name:    "a requested IP held by a compatible sharer is shared",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "default/web", Families: v4, SharingKey: "k", Ports: tcp(80)}, ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "default/a", Families: v4, IPs: addrs("198.51.100.7"), SharingKey: "k", Ports: tcp(443)},
			wantIPs: []string{"198.51.100.7"}, wantPool: "web",
		},
		{
			name:    "a requested IP of a family the Service does not use is refused",
			pools:   []Pool{dualPool},
			req:     Request{Service: "default/a", Families: v4, IPs: addrs("2001:db8::5")},
			wantErr: ErrInvalidRequest, wantMsg: "requested IP 2001:db8::5 is IPv6, but Service default/a uses IPv4 only",
		},
		{
			name:    "a requested IP in a pool the Service's namespace may not use is refused",
			pools:   []Pool{web, inNamespaces(manual, "prod")},
			req:     Request{Service: "dev/a", Families: v4, IPs: addrs("203.0.113.9")},
			wantErr: ErrNotInPool, wantMsg: `requested IP 203.0.113.9 is in pool "manual", which does not serve namespace "dev"`,
		},
		{
			name:    "a requested IP in an autoAssign false pool is fine",
			pools:   []Pool{web, manual},
			req:     Request{Service: "default/a", Families: v4, IPs: addrs("203.0.113.9")},
			wantIPs: []string{"203.0.113.9"}, wantPool: "manual",
		},
		{
			name:    "a requested IP must lie in the requested pool",
			pools:   []Pool{web, manual},
			req:     Request{Service: "default/a", Families: v4, Pool: "manual", IPs: addrs("198.51.100.9")},
			wantErr: ErrNotInPool, wantMsg: `requested IP 198.51.100.9 is not in pool "manual"`,
		},
		{
			name:    "a requested x.x.x.0 in an avoidBuggyIPs pool is refused",
			pools:   []Pool{buggy},
			req:     Request{Service: "default/a", Families: v4, IPs: addrs("198.51.100.0")},
			wantErr: ErrNotInPool, wantMsg: `requested IP 198.51.100.0 is not in any pool (pool "buggy" avoids addresses ending in .0 and .255)`,
		},
		{
			name:    "two requested IPs of one family are refused",
			pools:   []Pool{web},
			req:     Request{Service: "default/a", Families: v4, IPs: addrs("198.51.100.1", "198.51.100.2")},
			wantErr: ErrInvalidRequest,
		},
		{
			name:    "a request without a Service name is refused",
			pools:   []Pool{web},
			req:     Request{Families: v4},
			wantErr: ErrInvalidRequest, wantMsg: "request has no Service name",
		},

		// Dual-stack.
		{
			name:    "SingleStack IPv6 gets an IPv6 address from a dual pool",
			pools:   []Pool{dualPool},
			req:     Request{Service: "default/a", Families: v6},
			wantIPs: []string{"2001:db8::"}, wantPool: "dual",
		},
		{
			name:    "SingleStack IPv6 with only IPv4 pools is refused",
			pools:   []Pool{web},
			req:     Request{Service: "default/a", Families: v6},
			wantErr: ErrFamilyUnavailable,
			wantMsg: `no address for Service default/a (SingleStack, IPv6 only): pool "web" has no IPv6 range`,
		},
		{
			name:    "SingleStack with two families uses only the first",
			pools:   []Pool{dualPool},
			req:     Request{Service: "default/a", Families: dualV6v4},
			wantIPs: []string{"2001:db8::"}, wantPool: "dual",
		},
		{
			name:    "PreferDualStack gets one address per family, primary family first",
			pools:   []Pool{dualPool},
			req:     Request{Service: "default/a", Families: dualV6v4, FamilyPolicy: PreferDualStack},
			wantIPs: []string{"2001:db8::", "198.51.100.0"}, wantPool: "dual",
		},
		{
			name:    "PreferDualStack prefers a dual pool over a higher-priority single-family pool",
			pools:   []Pool{withPriority(web, 1), withPriority(renamed(dualPool, "dual", "203.0.113.0/24"), 2)},
			req:     Request{Service: "default/a", Families: dual, FamilyPolicy: PreferDualStack},
			wantIPs: []string{"203.0.113.0", "2001:db8::"}, wantPool: "dual",
		},
		{
			name:    "PreferDualStack settles for one family when no pool has both",
			pools:   []Pool{v6Pool, withPriority(web, 1)},
			req:     Request{Service: "default/a", Families: dual, FamilyPolicy: PreferDualStack},
			wantIPs: []string{"198.51.100.0"}, wantPool: "web",
		},
		{
			name:    "PreferDualStack on a single-stack cluster asks for one family only",
			pools:   []Pool{dualPool},
			req:     Request{Service: "default/a", Families: v4, FamilyPolicy: PreferDualStack},
			wantIPs: []string{"198.51.100.0"}, wantPool: "dual",
		},
		{
			name:    "RequireDualStack gets both families from one pool",
			pools:   []Pool{dualPool},
			req:     Request{Service: "default/a", Families: dual, FamilyPolicy: RequireDualStack},
			wantIPs: []string{"198.51.100.0", "2001:db8::"}, wantPool: "dual",
		},
		{
			name:    "RequireDualStack never combines two single-family pools",
			pools:   []Pool{web, v6Pool},
			req:     Request{Service: "default/a", Families: dual, FamilyPolicy: RequireDualStack},
			wantErr: ErrFamilyUnavailable,
			wantMsg: `no address for Service default/a (RequireDualStack, IPv4 and IPv6): pool "v6" has no IPv4 range; pool "web" has no IPv6 range`,
		},
		{
			name:    "RequireDualStack with IPv6 exhausted in the dual pool is refused",
			pools:   []Pool{{Name: "dual", Ranges: []Range{cidr("198.51.100.0/24"), cidr("2001:db8::/128")}, AutoAssign: true}},
			held:    []held{{req: Request{Service: "default/x", Families: v6}}},
			req:     Request{Service: "default/a", Families: dual, FamilyPolicy: RequireDualStack},
			wantErr: ErrPoolExhausted,
			wantMsg: `no address for Service default/a (RequireDualStack, IPv4 and IPv6): pool "dual" has no free IPv6 address`,
		},
		{
			name:    "RequireDualStack with a requested IPv4 gets its IPv6 from the same pool",
			pools:   []Pool{withPriority(v6Pool, 1), dualPool},
			req:     Request{Service: "default/a", Families: dual, FamilyPolicy: RequireDualStack, IPs: addrs("198.51.100.9")},
			wantIPs: []string{"198.51.100.9", "2001:db8::"}, wantPool: "dual",
		},

		// Sharing.
		{
			name:  "same key and different ports share the lowest address",
			pools: []Pool{web},
			held: []held{
				{req: Request{Service: "default/x", Families: v4}},
				{req: Request{Service: "default/dns-tcp", Families: v4, SharingKey: "dns", Ports: []Port{{"TCP", 53}}}},
			},
			released: []string{"default/x"},
			req:      Request{Service: "default/dns-udp", Families: v4, SharingKey: "dns", Ports: []Port{{"UDP", 53}}},
			wantIPs:  []string{"198.51.100.0"}, wantPool: "web", // free .0 is below the shared .1
		},
		{
			name:    "same key and different ports join the sharer's address",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "default/dns-tcp", Families: v4, SharingKey: "dns", Ports: []Port{{"TCP", 53}}}, ips: []string{"198.51.100.0"}}},
			req:     Request{Service: "default/dns-udp", Families: v4, SharingKey: "dns", Ports: []Port{{"UDP", 53}}},
			wantIPs: []string{"198.51.100.0"}, wantPool: "web",
		},
		{
			name:    "same key with an overlapping port takes the next free address",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "default/a", Families: v4, SharingKey: "k", Ports: tcp(80)}}},
			req:     Request{Service: "default/b", Families: v4, SharingKey: "k", Ports: tcp(80, 443)},
			wantIPs: []string{"198.51.100.1"}, wantPool: "web",
		},
		{
			name:    "a requested IP with the same key but an overlapping port is a sharing conflict",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "default/a", Families: v4, SharingKey: "k", Ports: tcp(80)}, ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "default/b", Families: v4, SharingKey: "k", Ports: []Port{{"", 80}}, IPs: addrs("198.51.100.7")},
			wantErr: ErrSharingConflict,
			wantMsg: `requested IP 198.51.100.7 is shared with default/a under key "k", but both use port TCP/80`,
		},
		{
			name:    "a requested IP held under a different key is in use",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "default/a", Families: v4, SharingKey: "k1"}, ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "default/b", Families: v4, SharingKey: "k2", IPs: addrs("198.51.100.7")},
			wantErr: ErrIPInUse,
			wantMsg: `requested IP 198.51.100.7 is already used by default/a (shared key "k1", not "k2")`,
		},
		{
			name:  "Local Services with different pod selectors cannot share",
			pools: []Pool{web},
			held: []held{{req: Request{Service: "default/a", Families: v4, SharingKey: "k", Ports: tcp(80), LocalTrafficSelector: "app=a"},
				ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "default/b", Families: v4, SharingKey: "k", Ports: tcp(443), LocalTrafficSelector: "app=b", IPs: addrs("198.51.100.7")},
			wantErr: ErrSharingConflict,
			wantMsg: `requested IP 198.51.100.7 is shared with default/a under key "k", but both have externalTrafficPolicy Local with different pod selectors ("app=a" and "app=b")`,
		},
		{
			name:    "a Local Service cannot share with a Cluster one",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "default/a", Families: v4, SharingKey: "k", Ports: tcp(80)}, ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "default/b", Families: v4, SharingKey: "k", Ports: tcp(443), LocalTrafficSelector: "app=b", IPs: addrs("198.51.100.7")},
			wantErr: ErrSharingConflict,
			wantMsg: `requested IP 198.51.100.7 is shared with default/a under key "k", but default/a has externalTrafficPolicy Cluster and default/b has Local`,
		},
		{
			name:    "Local Services with the same pod selector share",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "default/a", Families: v4, SharingKey: "k", Ports: tcp(80), LocalTrafficSelector: "app=x"}}},
			req:     Request{Service: "default/b", Families: v4, SharingKey: "k", Ports: tcp(443), LocalTrafficSelector: "app=x"},
			wantIPs: []string{"198.51.100.0"}, wantPool: "web",
		},

		// Sharing across namespaces: opt-in on both sides, and a refusal
		// tells another tenant nothing about the holder.
		{
			name:    "same key in another namespace without opt-in is refused without naming the holder or its key",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "team-a/web", Families: v4, SharingKey: "k", Ports: tcp(80)}, ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "team-b/probe", Families: v4, SharingKey: "k", Ports: tcp(443), IPs: addrs("198.51.100.7")},
			wantErr: ErrIPInUse,
			wantMsg: crossNamespaceRefusal,
		},
		{
			name:  "a wrong key in another namespace reads the same as a right one without opt-in",
			pools: []Pool{web},
			held: []held{{req: Request{Service: "team-a/web", Families: v4, SharingKey: "secret", Ports: tcp(80), SharingNamespaces: []string{"*"}},
				ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "team-b/probe", Families: v4, SharingKey: "guess", Ports: tcp(443), SharingNamespaces: []string{"*"}, IPs: addrs("198.51.100.7")},
			wantErr: ErrIPInUse,
			wantMsg: crossNamespaceRefusal,
		},
		{
			name:    "a holder without a key in another namespace is not named",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "team-a/web", Families: v4}, ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "team-b/probe", Families: v4, IPs: addrs("198.51.100.7")},
			wantErr: ErrIPInUse,
			wantMsg: crossNamespaceRefusal,
		},
		{
			name:  "only one side opting in is not enough",
			pools: []Pool{web},
			held: []held{{req: Request{Service: "team-a/web", Families: v4, SharingKey: "k", Ports: tcp(80)},
				ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "team-b/api", Families: v4, SharingKey: "k", Ports: tcp(443), SharingNamespaces: []string{"team-a"}, IPs: addrs("198.51.100.7")},
			wantErr: ErrIPInUse,
			wantMsg: crossNamespaceRefusal,
		},
		{
			name:  "both sides listing each other's namespace share",
			pools: []Pool{web},
			held: []held{{req: Request{Service: "team-a/web", Families: v4, SharingKey: "k", Ports: tcp(80), SharingNamespaces: []string{"team-b"}},
				ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "team-b/api", Families: v4, SharingKey: "k", Ports: tcp(443), SharingNamespaces: []string{"team-a"}, IPs: addrs("198.51.100.7")},
			wantIPs: []string{"198.51.100.7"}, wantPool: "web",
		},
		{
			name:  "* on both sides shares, and a port clash names no Service",
			pools: []Pool{web},
			held: []held{{req: Request{Service: "team-a/web", Families: v4, SharingKey: "k", Ports: tcp(80), SharingNamespaces: []string{"*"}},
				ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "team-b/api", Families: v4, SharingKey: "k", Ports: tcp(80), SharingNamespaces: []string{"*"}, IPs: addrs("198.51.100.7")},
			wantErr: ErrSharingConflict,
			wantMsg: `requested IP 198.51.100.7 is shared with a Service in another namespace under key "k", but both use port TCP/80`,
		},
		{
			name:    "an automatic choice does not join a sharer of another namespace without opt-in",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "team-a/web", Families: v4, SharingKey: "k", Ports: tcp(80)}}},
			req:     Request{Service: "team-b/api", Families: v4, SharingKey: "k", Ports: tcp(443)},
			wantIPs: []string{"198.51.100.1"}, wantPool: "web",
		},
		{
			name:  "an automatic choice joins a sharer of another namespace with opt-in",
			pools: []Pool{web},
			held: []held{{req: Request{Service: "team-a/web", Families: v4, SharingKey: "k", Ports: tcp(80), SharingNamespaces: []string{"team-b"}},
				ips: []string{"198.51.100.0"}}},
			req:     Request{Service: "team-b/api", Families: v4, SharingKey: "k", Ports: tcp(443), SharingNamespaces: []string{"*"}},
			wantIPs: []string{"198.51.100.0"}, wantPool: "web",
		},

		// Idempotent re-allocation.
		{
			name:     "allocating again returns the same address even when a lower one is free",
			pools:    []Pool{web},
			held:     []held{{req: Request{Service: "default/a", Families: v4}}, {req: Request{Service: "default/b", Families: v4}}},
			released: []string{"default/a"},
			req:      Request{Service: "default/b", Families: v4},
			wantIPs:  []string{"198.51.100.1"}, wantPool: "web",
		},
		{
			name:    "allocating again keeps an autoAssign pool choice after a higher-priority pool appears",
			pools:   []Pool{web, withPriority(manualAuto(), 1)},
			held:    []held{{req: Request{Service: "default/a", Families: v4}, ips: []string{"198.51.100.3"}}},
			req:     Request{Service: "default/a", Families: v4},
			wantIPs: []string{"198.51.100.3"}, wantPool: "web",
		},
		{
			name:    "SingleStack turned RequireDualStack keeps its IPv4 and adds IPv6",
			pools:   []Pool{dualPool},
			held:    []held{{req: Request{Service: "default/a", Families: v4}, ips: []string{"198.51.100.5"}}},
			req:     Request{Service: "default/a", Families: dual, FamilyPolicy: RequireDualStack},
			wantIPs: []string{"198.51.100.5", "2001:db8::"}, wantPool: "dual",
		},
		{
			name:    "naming another pool moves the Service",
			pools:   []Pool{web, manual},
			held:    []held{{req: Request{Service: "default/a", Families: v4}, ips: []string{"198.51.100.5"}}},
			req:     Request{Service: "default/a", Families: v4, Pool: "manual"},
			wantIPs: []string{"203.0.113.0"}, wantPool: "manual",
		},
		{
			name:  "a port that now overlaps its sharer moves the Service to the next free address",
			pools: []Pool{web},
			held: []held{
				{req: Request{Service: "default/a", Families: v4, SharingKey: "k", Ports: tcp(80)}},
				{req: Request{Service: "default/b", Families: v4, SharingKey: "k", Ports: tcp(443)}},
			},
			req:     Request{Service: "default/b", Families: v4, SharingKey: "k", Ports: tcp(443, 80)},
			wantIPs: []string{"198.51.100.1"}, wantPool: "web",
		},

		// Assign: importing existing assignments.
		{
			name:    "Assign imports an address from the Service's status",
			pools:   []Pool{web},
			req:     Request{Service: "default/a", Families: v4},
			assign:  []string{"198.51.100.42"},
			wantIPs: []string{"198.51.100.42"}, wantPool: "web",
		},
		{
			name:    "Assign imports into an autoAssign false pool",
			pools:   []Pool{web, manual},
			req:     Request{Service: "default/a", Families: v4},
			assign:  []string{"203.0.113.42"},
			wantIPs: []string{"203.0.113.42"}, wantPool: "manual",
		},
		{
			name:    "Assign refuses an address held by a Service without a sharing key",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "default/web", Families: v4}, ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "default/a", Families: v4, SharingKey: "k"},
			assign:  []string{"198.51.100.7"},
			wantErr: ErrIPInUse, wantMsg: "IP 198.51.100.7 is already used by default/web (no shared key)",
		},
		{
			name:    "Assign refuses an address outside every pool",
			pools:   []Pool{web},
			req:     Request{Service: "default/a", Families: v4},
			assign:  []string{"203.0.113.1"},
			wantErr: ErrNotInPool, wantMsg: "IP 203.0.113.1 is not in any pool",
		},
		{
			name:    "Assign refuses an address of a family the Service does not use",
			pools:   []Pool{dualPool},
			req:     Request{Service: "default/a", Families: v4},
			assign:  []string{"2001:db8::1"},
			wantErr: ErrInvalidRequest, wantMsg: "IP 2001:db8::1 is IPv6, but Service default/a uses IPv4 only",
		},
		{
			name:    "Assign refuses an address other than the requested one",
			pools:   []Pool{web},
			req:     Request{Service: "default/a", Families: v4, IPs: addrs("198.51.100.8")},
			assign:  []string{"198.51.100.9"},
			wantErr: ErrInvalidRequest, wantMsg: "Service default/a requests IP 198.51.100.8, not 198.51.100.9",
		},
		{
			name:    "Assign refuses addresses from two pools",
			pools:   []Pool{web, v6Pool},
			req:     Request{Service: "default/a", Families: dual, FamilyPolicy: RequireDualStack},
			assign:  []string{"198.51.100.1", "2001:db8:1::1"},
			wantErr: ErrNotInPool, wantMsg: "IPs 198.51.100.1 and 2001:db8:1::1 are not in one pool; all IPs of a Service come from one pool",
		},
		{
			name:    "Assign refuses a sharer whose ports overlap",
			pools:   []Pool{web},
			held:    []held{{req: Request{Service: "default/a", Families: v4, SharingKey: "k", Ports: tcp(80)}, ips: []string{"198.51.100.7"}}},
			req:     Request{Service: "default/b", Families: v4, SharingKey: "k", Ports: tcp(80)},
			assign:  []string{"198.51.100.7"},
			wantErr: ErrSharingConflict,
		},
		{
			name:    "Assign of dual-stack addresses orders them by the Service's families",
			pools:   []Pool{dualPool},
			req:     Request{Service: "default/a", Families: dualV6v4, FamilyPolicy: RequireDualStack},
			assign:  []string{"198.51.100.1", "2001:db8::1"},
			wantIPs: []string{"2001:db8::1", "198.51.100.1"}, wantPool: "dual",
		},
	}
}

func TestAllocateAndAssign(t *testing.T) {
	for _, tc := range allocateCases() {
		t.Run(tc.name, func(t *testing.T) {
			a := New()
			a.SetPools(tc.pools)
			setUp(t, a, tc.held)
			for _, s := range tc.released {
				if !a.Release(s) {
					t.Fatalf("release %s: held nothing", s)
				}
			}
			before, _ := a.Lookup(tc.req.Service)

			var got Assignment
			var err error
			if tc.assign != nil {
				err = a.Assign(tc.req, addrs(tc.assign...))
				got, _ = a.Lookup(tc.req.Service)
			} else {
				got, err = a.Allocate(tc.req)
			}

			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				if tc.wantMsg != "" && err.Error() != tc.wantMsg {
					t.Errorf("message =\n  %s\nwant\n  %s", err, tc.wantMsg)
				}
				after, _ := a.Lookup(tc.req.Service)
				if after.Pool != before.Pool || !slices.Equal(after.IPs, before.IPs) {
					t.Errorf("a refused call changed the holding from %v to %v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !slices.Equal(strs(got.IPs), tc.wantIPs) || got.Pool != tc.wantPool {
				t.Errorf("got %s %v, want %s %v", got.Pool, strs(got.IPs), tc.wantPool, tc.wantIPs)
			}
			if look, ok := a.Lookup(tc.req.Service); !ok || look.Pool != got.Pool || !slices.Equal(look.IPs, got.IPs) {
				t.Errorf("Lookup = %v %v, want %v", look, ok, got)
			}
			checkInvariants(t, a)
		})
	}
}

// setUp makes the held Services hold their IPs. One without a name is
// default/held-a, -b... with the family of its IP.
func setUp(t *testing.T, a *Allocator, hs []held) {
	t.Helper()
	for i, h := range hs {
		if h.req.Service == "" {
			h.req = Request{Service: "default/held-" + string(rune('a'+i)), Families: []Family{familyOf(addr(h.ips[0]))}}
		}
		var err error
		if h.ips != nil {
			err = a.Assign(h.req, addrs(h.ips...))
		} else {
			_, err = a.Allocate(h.req)
		}
		if err != nil {
			t.Fatalf("setting up %s: %v", h.req.Service, err)
		}
	}
}

const crossNamespaceRefusal = "requested IP 198.51.100.7 is used by a Service in another namespace; Services of two namespaces share an IP only " +
	"with the same sharing key and when each lists the other's namespace in herald.dev/sharing-cross-namespace"

func withPriority(p Pool, prio int) Pool {
	p.AllocateTo.Priority = prio
	return p
}

func inNamespaces(p Pool, ns ...string) Pool {
	p.AllocateTo.Namespaces = ns
	return p
}

// manualAuto is the manual pool's range with autoAssign on.
func manualAuto() Pool {
	p := manual
	p.AutoAssign = true
	return p
}

// renamed copies p under a new name with its IPv4 range replaced.
func renamed(p Pool, name, v4cidr string) Pool {
	p.Name = name
	p.Ranges = []Range{cidr(v4cidr), p.Ranges[1]}
	return p
}
