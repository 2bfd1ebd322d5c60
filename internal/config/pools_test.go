package config

import (
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

func TestPools(t *testing.T) {
	cases := []struct {
		name      string
		pools     []v1beta1.IPPool
		wantPools []string
		problem   *Problem // expected problem (message substring)
	}{
		{
			name:      "CIDR and range of both families make one pool",
			pools:     []v1beta1.IPPool{pool("a", 0, "198.51.100.0/24", "2001:db8::10 - 2001:db8::1f")},
			wantPools: []string{"a"},
		},
		{
			name:      "host bits set",
			pools:     []v1beta1.IPPool{pool("a", 0, "198.51.100.7/24")},
			problem:   &Problem{Object: Ref{KindIPPool, "a"}, Effect: Skipped, Message: "write 198.51.100.0/24"},
			wantPools: nil,
		},
		{
			name:    "IPv4-mapped CIDR",
			pools:   []v1beta1.IPPool{pool("a", 0, "::ffff:198.51.100.0/120")},
			problem: &Problem{Object: Ref{KindIPPool, "a"}, Effect: Skipped, Message: "IPv4-mapped"},
		},
		{
			name:    "range upside down",
			pools:   []v1beta1.IPPool{pool("a", 0, "198.51.100.9-198.51.100.1")},
			problem: &Problem{Object: Ref{KindIPPool, "a"}, Effect: Skipped, Message: "starts above its end"},
		},
		{
			name:    "range mixing families",
			pools:   []v1beta1.IPPool{pool("a", 0, "198.51.100.1-2001:db8::1")},
			problem: &Problem{Object: Ref{KindIPPool, "a"}, Effect: Skipped, Message: "mixes IPv4 and IPv6"},
		},
		{
			name:    "blocks of one pool overlap",
			pools:   []v1beta1.IPPool{pool("a", 0, "198.51.100.0/24", "198.51.100.128-198.51.101.5")},
			problem: &Problem{Object: Ref{KindIPPool, "a"}, Effect: Skipped, Message: "overlap"},
		},
		{
			name:      "two pools overlap: the newer one is at fault, the older keeps working",
			pools:     []v1beta1.IPPool{pool("new", 5, "198.51.100.128/25"), pool("old", 1, "198.51.100.0/24")},
			wantPools: []string{"old"},
			problem:   &Problem{Object: Ref{KindIPPool, "new"}, Effect: Skipped, Message: `overlap IPPool "old"`},
		},
		{
			name:      "adjacent pools do not overlap",
			pools:     []v1beta1.IPPool{pool("a", 0, "198.51.100.0/25"), pool("b", 0, "198.51.100.128/25")},
			wantPools: []string{"a", "b"},
		},
		{
			name: "bad namespace selector",
			pools: []v1beta1.IPPool{func() v1beta1.IPPool {
				p := pool("a", 0, "198.51.100.0/24")
				p.Spec.AllocateTo = &v1beta1.AllocateTo{NamespaceSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Bogus"}}}}}
				return p
			}()},
			problem: &Problem{Object: Ref{KindIPPool, "a"}, Effect: Skipped, Message: "allocateTo.namespaceSelectors"},
		},
		{
			name:      "one bad pool does not take down a good one",
			pools:     []v1beta1.IPPool{pool("bad", 0, "nonsense"), pool("good", 0, "203.0.113.0/24")},
			wantPools: []string{"good"},
			problem:   &Problem{Object: Ref{KindIPPool, "bad"}, Effect: Skipped, Message: "addresses[0]"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := Build(Input{Pools: tc.pools}, nil)
			var got []string
			for _, p := range m.SortedPools() {
				got = append(got, p.Name)
			}
			if len(got) != len(tc.wantPools) || (len(got) > 0 && !equal(got, tc.wantPools)) {
				t.Errorf("valid pools = %v, want %v", got, tc.wantPools)
			}
			if tc.problem == nil {
				wantNoProblems(t, m)
				return
			}
			wantProblem(t, m, tc.problem.Object, tc.problem.Effect, tc.problem.Message)
			if c := m.ConditionFor(tc.problem.Object); c.Ready {
				t.Errorf("condition of %s is Ready, want not ready: %+v", tc.problem.Object, c)
			}
		})
	}
}

func TestPoolDefaultsAndLookup(t *testing.T) {
	p := pool("a", 0, "198.51.100.0/28", "2001:db8::/126")
	p.Spec.AutoAssign = ptr(false)
	p.Labels = map[string]string{"tier": "web"}
	m := Build(Input{Pools: []v1beta1.IPPool{p, pool("b", 0, "203.0.113.0/24")}}, nil)
	a := m.Pools["a"]
	if a.AutoAssign {
		t.Error("autoAssign false was not kept")
	}
	if !m.Pools["b"].AutoAssign {
		t.Error("autoAssign must default to true")
	}
	if !a.HasFamily(4) || !a.HasFamily(6) {
		t.Error("pool a has both families")
	}
	for ip, want := range map[string]string{"198.51.100.15": "a", "198.51.100.16": "", "2001:db8::3": "a", "2001:db8::4": "", "203.0.113.255": "b"} {
		got := ""
		if p := m.PoolFor(netip.MustParseAddr(ip)); p != nil {
			got = p.Name
		}
		if got != want {
			t.Errorf("PoolFor(%s) = %q, want %q", ip, got, want)
		}
	}
	if c := m.ConditionFor(Ref{KindIPPool, "a"}); !c.Ready || c.Reason != v1beta1.ReasonValid {
		t.Errorf("condition = %+v, want Ready Valid", c)
	}
}

func TestRangePrefixes(t *testing.T) {
	cases := map[string][]string{
		"198.51.100.0/24":             {"198.51.100.0/24"},
		"198.51.100.1-198.51.100.6":   {"198.51.100.1/32", "198.51.100.2/31", "198.51.100.4/31", "198.51.100.6/32"},
		"198.51.100.0-198.51.101.255": {"198.51.100.0/23"},
		"2001:db8::-2001:db8::ff":     {"2001:db8::/120"},
		"0.0.0.0-255.255.255.255":     {"0.0.0.0/0"},
	}
	for in, want := range cases {
		r, err := ParseRange(in)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range r.Prefixes() {
			got = append(got, p.String())
		}
		if !equal(got, want) {
			t.Errorf("Prefixes(%s) = %v, want %v", in, got, want)
		}
	}
}

// The IPv4-mapped block ::ffff:0:0/96 holds no Service IP: a range that
// overlaps it is refused, whether its ends lie in it or not.
func TestRangeRefusesTheIPv4MappedBlock(t *testing.T) {
	for _, in := range []string{"::/80", "::/64", "::fffe:ffff:ffff-::1:0:0:0", "::ffff:0:0/96"} {
		if r, err := ParseRange(in); err == nil || !strings.Contains(err.Error(), "IPv4-mapped") {
			t.Errorf("ParseRange(%q) = %v, %v; want the IPv4-mapped block refused", in, r, err)
		}
	}
	for _, in := range []string{"::/97", "::1:0:0:0/96", "::fffe:ffff:ffff-::fffe:ffff:ffff"} {
		if _, err := ParseRange(in); err != nil {
			t.Errorf("ParseRange(%q): %v", in, err)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
