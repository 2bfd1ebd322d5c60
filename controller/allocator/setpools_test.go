package allocator

import (
	"math"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

type setPoolsCase struct {
	name        string
	before      []Pool
	held        []held // all with ips set
	after       []Pool
	wantEvicted []string
	wantPools   map[string]string // Service -> pool it holds its same IPs from afterwards
	next        *Request          // then allocate this...
	wantNext    string            // ...and expect this address
}

func setPoolsCases() []setPoolsCase {
	a1 := held{req: Request{Service: "default/a", Families: v4}, ips: []string{"198.51.100.1"}}
	b200 := held{req: Request{Service: "default/b", Families: v4}, ips: []string{"198.51.100.200"}}
	return []setPoolsCase{
		{
			name:        "shrinking a range evicts only the holders outside it",
			before:      []Pool{web},
			held:        []held{a1, b200},
			after:       []Pool{{Name: "web", Ranges: []Range{cidr("198.51.100.0/25")}, AutoAssign: true}},
			wantEvicted: []string{"default/b"},
			wantPools:   map[string]string{"default/a": "web"},
		},
		{
			name:        "removing a pool evicts its holders and nobody else",
			before:      []Pool{web, manual},
			held:        []held{a1, {req: Request{Service: "default/m", Families: v4}, ips: []string{"203.0.113.1"}}},
			after:       []Pool{web},
			wantEvicted: []string{"default/m"},
			wantPools:   map[string]string{"default/a": "web"},
		},
		{
			name:   "restricting allocateTo to a namespace evicts the other namespaces' holders",
			before: []Pool{web},
			held: []held{
				{req: Request{Service: "dev/a", Families: v4}, ips: []string{"198.51.100.1"}},
				{req: Request{Service: "prod/b", Families: v4}, ips: []string{"198.51.100.2"}},
			},
			after:       []Pool{inNamespaces(web, "prod")},
			wantEvicted: []string{"dev/a"},
			wantPools:   map[string]string{"prod/b": "web"},
		},
		{
			name:   "a service selector added later evicts Services without the label",
			before: []Pool{web},
			held: []held{
				a1,
				{req: Request{Service: "default/pub", Families: v4, ServiceLabels: map[string]string{"exposure": "public"}}, ips: []string{"198.51.100.2"}},
			},
			after: []Pool{{Name: "web", Ranges: web.Ranges, AutoAssign: true,
				AllocateTo: AllocateTo{ServiceSelectors: []labels.Selector{sel("exposure=public")}}}},
			wantEvicted: []string{"default/a"},
			wantPools:   map[string]string{"default/pub": "web"},
		},
		{
			name:   "turning avoidBuggyIPs on evicts the holder of x.x.x.0",
			before: []Pool{web},
			held:   []held{a1, {req: Request{Service: "default/zero", Families: v4}, ips: []string{"198.51.100.0"}}},
			after:  []Pool{buggy},
			// The pool is renamed too: a keeps its address in the new pool.
			wantEvicted: []string{"default/zero"},
			wantPools:   map[string]string{"default/a": "buggy"},
		},
		{
			name:      "turning autoAssign off and changing priority keep every holder",
			before:    []Pool{web},
			held:      []held{a1, b200},
			after:     []Pool{{Name: "web", Ranges: web.Ranges, AllocateTo: AllocateTo{Priority: 7}}},
			wantPools: map[string]string{"default/a": "web", "default/b": "web"},
		},
		{
			name:      "renaming a pool keeps its holders' addresses",
			before:    []Pool{web},
			held:      []held{a1, b200},
			after:     []Pool{{Name: "web-v2", Ranges: web.Ranges, AutoAssign: true}},
			wantPools: map[string]string{"default/a": "web-v2", "default/b": "web-v2"},
		},
		{
			name:        "a Service that named a removed pool is evicted even if another pool has its address",
			before:      []Pool{web},
			held:        []held{{req: Request{Service: "default/a", Families: v4, Pool: "web"}, ips: []string{"198.51.100.1"}}},
			after:       []Pool{{Name: "web-v2", Ranges: web.Ranges, AutoAssign: true}},
			wantEvicted: []string{"default/a"},
		},
		{
			name:   "growing a range keeps everyone and the new range knows what is in use",
			before: []Pool{small},
			held: []held{
				{req: Request{Service: "default/a", Families: v4}, ips: []string{"198.51.100.0"}},
				{req: Request{Service: "default/b", Families: v4}, ips: []string{"198.51.100.1"}},
				{req: Request{Service: "default/c", Families: v4}, ips: []string{"198.51.100.2"}},
			},
			after:     []Pool{{Name: "small", Ranges: []Range{cidr("198.51.100.0/29")}, AutoAssign: true}},
			wantPools: map[string]string{"default/a": "small", "default/b": "small", "default/c": "small"},
			next:      &Request{Service: "default/d", Families: v4},
			wantNext:  "198.51.100.3",
		},
		{
			name:      "holders move to another pool that has their addresses when theirs stops serving them",
			before:    []Pool{web},
			held:      []held{a1, b200},
			after:     []Pool{inNamespaces(web, "prod"), {Name: "all", Ranges: web.Ranges, AutoAssign: true}},
			wantPools: map[string]string{"default/a": "all", "default/b": "all"},
		},
		{
			name:   "evicted addresses are free again",
			before: []Pool{small},
			held: []held{
				{req: Request{Service: "default/a", Families: v4}, ips: []string{"198.51.100.0"}},
				{req: Request{Service: "default/b", Families: v4}, ips: []string{"198.51.100.1"}},
			},
			after:       []Pool{inNamespaces(small, "prod")},
			wantEvicted: []string{"default/a", "default/b"},
			next:        &Request{Service: "prod/x", Families: v4},
			wantNext:    "198.51.100.0",
		},
	}
}

func TestSetPools(t *testing.T) {
	for _, tc := range setPoolsCases() {
		t.Run(tc.name, func(t *testing.T) {
			a := New()
			a.SetPools(tc.before)
			setUp(t, a, tc.held)
			before := map[string]Assignment{}
			for _, h := range tc.held {
				before[h.req.Service], _ = a.Lookup(h.req.Service)
			}
			evicted := a.SetPools(tc.after)
			if !slices.Equal(evicted, tc.wantEvicted) {
				t.Errorf("evicted %v, want %v", evicted, tc.wantEvicted)
			}
			for _, s := range evicted {
				if got, ok := a.Lookup(s); ok {
					t.Errorf("evicted %s still holds %v", s, got)
				}
			}
			for s, pool := range tc.wantPools {
				got, ok := a.Lookup(s)
				if !ok || got.Pool != pool || !slices.Equal(got.IPs, before[s].IPs) {
					t.Errorf("%s holds %v %v, want %v from %q", s, got.Pool, strs(got.IPs), strs(before[s].IPs), pool)
				}
			}
			checkInvariants(t, a)
			if tc.next != nil {
				got, err := a.Allocate(*tc.next)
				if err != nil || len(got.IPs) != 1 || got.IPs[0].String() != tc.wantNext {
					t.Errorf("next allocation = %v, %v; want %s", got, err, tc.wantNext)
				}
			}
		})
	}
}

type statsCase struct {
	name  string
	pools []Pool
	held  []held
	want  []PoolStats
}

func statsCases() []statsCase {
	const maxInt = math.MaxInt64
	three := []held{{ips: []string{"198.51.100.1"}}, {ips: []string{"198.51.100.2"}}, {ips: []string{"198.51.100.3"}}}
	return []statsCase{
		{
			name:  "an IPv4 /24 counts exactly",
			pools: []Pool{web},
			held:  three,
			want:  []PoolStats{{Pool: "web", Family: IPv4, Total: 256, Assigned: 3, Available: 253}},
		},
		{
			name:  "avoidBuggyIPs leaves .0 and .255 out of the total",
			pools: []Pool{{Name: "b", Ranges: []Range{cidr("198.51.100.0/23")}, AvoidBuggyIPs: true}},
			held:  three,
			want:  []PoolStats{{Pool: "b", Family: IPv4, Total: 508, Assigned: 3, Available: 505}},
		},
		{
			name:  "an IPv6 /64 saturates total and available",
			pools: []Pool{{Name: "v6", Ranges: []Range{cidr("2001:db8::/64")}}},
			held:  []held{{ips: []string{"2001:db8::1"}}},
			want:  []PoolStats{{Pool: "v6", Family: IPv6, Total: maxInt, Assigned: 1, Available: maxInt}},
		},
		{
			name:  "an IPv6 /48 saturates too",
			pools: []Pool{{Name: "v6", Ranges: []Range{cidr("2001:db8::/48")}}},
			want:  []PoolStats{{Pool: "v6", Family: IPv6, Total: maxInt, Assigned: 0, Available: maxInt}},
		},
		{
			name:  "an IPv6 /66 is still exact",
			pools: []Pool{{Name: "v6", Ranges: []Range{cidr("2001:db8::/66")}}},
			held:  []held{{ips: []string{"2001:db8::1"}}, {ips: []string{"2001:db8::2"}}},
			want:  []PoolStats{{Pool: "v6", Family: IPv6, Total: 1 << 62, Assigned: 2, Available: 1<<62 - 2}},
		},
		{
			name:  "a dual pool has one row per family, IPv4 first, pools by name",
			pools: []Pool{web, dualPool},
			held:  []held{{ips: []string{"2001:db8::1"}}},
			want: []PoolStats{
				{Pool: "dual", Family: IPv4, Total: 256, Assigned: 0, Available: 256},
				{Pool: "dual", Family: IPv6, Total: 256, Assigned: 1, Available: 255},
				{Pool: "web", Family: IPv4, Total: 256, Assigned: 0, Available: 256},
			},
		},
		{
			name:  "a shared address counts once",
			pools: []Pool{small},
			held: []held{
				{req: Request{Service: "default/a", Families: v4, SharingKey: "k", Ports: tcp(80)}, ips: []string{"198.51.100.1"}},
				{req: Request{Service: "default/b", Families: v4, SharingKey: "k", Ports: tcp(443)}, ips: []string{"198.51.100.1"}},
			},
			want: []PoolStats{{Pool: "small", Family: IPv4, Total: 4, Assigned: 1, Available: 3}},
		},
		{
			name:  "overlapping ranges of one pool count once",
			pools: []Pool{{Name: "o", Ranges: []Range{cidr("198.51.100.0/25"), iprange("198.51.100.100", "198.51.100.199")}}},
			want:  []PoolStats{{Pool: "o", Family: IPv4, Total: 200, Assigned: 0, Available: 200}},
		},
	}
}

func TestStats(t *testing.T) {
	for _, tc := range statsCases() {
		t.Run(tc.name, func(t *testing.T) {
			a := New()
			a.SetPools(tc.pools)
			setUp(t, a, tc.held)
			if got := a.Stats(); !slices.Equal(got, tc.want) {
				t.Errorf("Stats =\n  %+v\nwant\n  %+v", got, tc.want)
			}
		})
	}
}
