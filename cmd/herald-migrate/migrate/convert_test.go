package migrate

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.herald.yaml files from the conversion")

// readFixture reads one MetalLB fixture of testdata.
func readFixture(t *testing.T, name string) *Reader {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() //nolint:errcheck // read only
	rd := &Reader{Namespace: "metallb-system"}
	if err := rd.ReadYAML(f, name); err != nil {
		t.Fatal(err)
	}
	return rd
}

// TestConvertFixtures: each MetalLB fixture converts without refusal to
// the Herald objects of its .herald.yaml file (notes included as
// comments). Regenerate with -update and read the diff.
func TestConvertFixtures(t *testing.T) {
	for _, name := range []string{"layer2", "allocation", "bgp"} {
		t.Run(name, func(t *testing.T) {
			rd := readFixture(t, name)
			res := Convert(rd.Config)
			if len(rd.Refusals)+len(res.Refusals) > 0 {
				t.Fatalf("refused: %v %v", rd.Refusals, res.Refusals)
			}
			var got bytes.Buffer
			if err := WriteYAML(&got, res); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".herald.yaml")
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("conversion of %s differs from %s (-update rewrites it):\n%s", name, golden, got.String())
			}
		})
	}
}

// TestConvertKeepsMetalLBsPoolOrder: a pool with a serviceAllocation and
// no priority comes before pools without one in MetalLB; Herald orders by
// priority, so it gets one past every priority set.
func TestConvertKeepsMetalLBsPoolOrder(t *testing.T) {
	res := Convert(readFixture(t, "allocation").Config)
	prio := map[string]int32{}
	for _, o := range res.Objects {
		if p, ok := o.(*v1beta1.IPPool); ok && p.Spec.AllocateTo != nil {
			prio[p.Name] = p.Spec.AllocateTo.Priority
		}
	}
	if prio["tenant"] != 50 || prio["team"] != 51 {
		t.Errorf("priorities %v, want tenant 50 (set) and team 51 (past every set one)", prio)
	}
	if !hasNote(res.Notes, "IPAddressPool metallb-system/team", "spec.serviceAllocation.priority", "set to 51") {
		t.Errorf("no note on team's priority: %v", res.Notes)
	}
}

// TestRefusals: every setting without an equivalent is refused by object
// and field, and nothing else of those objects is written.
func TestRefusals(t *testing.T) {
	rd := readFixture(t, "refused")
	res := Convert(rd.Config)
	all := append(slices.Clone(rd.Refusals), res.Refusals...)
	want := []struct{ object, field, text string }{
		{"BGPPeer metallb-system/in-vrf", "spec.vrf", "default VRF only"},
		{"BGPPeer metallb-system/in-vrf", "spec.localASN", "no local-as"},
		{"BGPPeer metallb-system/no-keepalives", "spec.holdTime", "always send keepalives"},
		{"BFDProfile metallb-system/echo", "spec.echoMode", "no echo mode"},
		{"BFDProfile metallb-system/echo", "spec.minimumTtl", "single-hop BFD only"},
		{"L2Advertisement metallb-system/overlapping-preferences", "spec.preferredNodeSelectors", "preferences 0 and 1 may match the same node"},
		{"L2Advertisement metallb-system/equal-weights", "spec.preferredNodeSelectors", "preferences 0 and 1 have the same weight 50"},
		{"L2Advertisement metallb-system/equal-weights", "spec.serviceSelectors[0]", `"Equals" is not a valid label selector operator`},
		{"BGPAdvertisement metallb-system/unknown-alias", "spec.communities[0]", `community "nope" is neither a value`},
		{"IPAddressPool metallb-system/future", "spec", `unknown field "futureField"`},
		{"IPAddressPool metallb-system/upside-down", "spec.addresses[0]", "starts after its end"},
		{"IPAddressPool other/elsewhere", "", "namespace other, which MetalLB does not read"},
		{"AddressPool metallb-system/legacy", "", "not a kind herald-migrate reads"},
	}
	for _, w := range want {
		if !slices.ContainsFunc(all, func(f Finding) bool {
			return f.Object == w.object && f.Field == w.field && strings.Contains(f.Message, w.text)
		}) {
			t.Errorf("no refusal of %s %s containing %q", w.object, w.field, w.text)
		}
	}
	if len(all) != len(want) {
		t.Errorf("%d refusals, want %d:\n%s", len(all), len(want), findings(all))
	}
	if len(res.Objects) != 0 {
		t.Errorf("refused objects written: %d", len(res.Objects))
	}
}

func TestAddressRange(t *testing.T) {
	for _, c := range []struct {
		in, out string
		changed bool
		err     string
	}{
		{"198.51.100.0/24", "198.51.100.0/24", false, ""},
		{"198.51.100.7/24", "198.51.100.0/24", true, ""},
		{" 198.51.100.1 - 198.51.100.9 ", "198.51.100.1-198.51.100.9", true, ""},
		{"2001:DB8::1-2001:db8::0:ff", "2001:db8::1-2001:db8::ff", true, ""},
		{"::ffff:198.51.100.1-::ffff:198.51.100.2", "198.51.100.1-198.51.100.2", true, ""},
		{"198.51.100.9-198.51.100.1", "", false, "starts after its end"},
		{"198.51.100.1-2001:db8::1", "", false, "mixes IPv4 and IPv6"},
		{"198.51.100.1", "", false, "neither a CIDR nor a range"},
	} {
		out, changed, err := addressRange(c.in)
		if out != c.out || changed != c.changed || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: got %q %v %v, want %q %v %q", c.in, out, changed, err, c.out, c.changed, c.err)
		}
	}
}

func hasNote(notes []Finding, object, field, text string) bool {
	return slices.ContainsFunc(notes, func(f Finding) bool {
		return f.Object == object && f.Field == field && strings.Contains(f.Message, text)
	})
}

func findings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

// MetalLB's weighted preferences become Herald's ordered places only where
// both rank nodes alike: heaviest first, selectors that never match one
// node together, no other advertisement of the pools with preferences.
func TestPreferencesTranslation(t *testing.T) {
	zone := func(v string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{"zone": v}}
	}
	in := func(key string, vals ...string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpIn, Values: vals}}}
	}
	pref := func(w int32, s metav1.LabelSelector) PreferredNodeSelector {
		return PreferredNodeSelector{Weight: w, Preference: s}
	}
	adv := func(name string, pools []string, p ...PreferredNodeSelector) L2Advertisement {
		a := L2Advertisement{Spec: L2AdvertisementSpec{IPAddressPools: pools, PreferredNodeSelectors: p}}
		a.Kind, a.Metadata.Name, a.Metadata.Namespace = "L2Advertisement", name, "metallb-system"
		return a
	}
	for _, tc := range []struct {
		name    string
		advs    []L2Advertisement
		want    string // zone values in order, or the refusal
		refusal string
	}{
		{"one preference", []L2Advertisement{adv("a", []string{"p"}, pref(10, zone("a")))}, "[a]", ""},
		{"heaviest first", []L2Advertisement{adv("a", []string{"p"}, pref(10, zone("c")), pref(90, zone("a")), pref(50, zone("b")))}, "[a b c]", ""},
		{"In sets that do not meet are disjoint", []L2Advertisement{adv("a", []string{"p"}, pref(90, in("zone", "a", "b")), pref(50, in("zone", "c")))}, "", ""},
		{"In sets that meet may match one node", []L2Advertisement{adv("a", []string{"p"}, pref(90, in("zone", "a", "b")), pref(50, in("zone", "b")))}, "", "may match the same node"},
		{"different labels may match one node", []L2Advertisement{adv("a", []string{"p"}, pref(90, zone("a")), pref(50, metav1.LabelSelector{MatchLabels: map[string]string{"gpu": "true"}}))}, "", "may match the same node"},
		{"equal weights", []L2Advertisement{adv("a", []string{"p"}, pref(50, zone("a")), pref(50, zone("b")))}, "", "same weight 50"},
		{"an empty preference", []L2Advertisement{adv("a", []string{"p"}, pref(50, metav1.LabelSelector{}))}, "", "empty preference"},
		{"another advertisement of the pool prefers too", []L2Advertisement{adv("a", []string{"p"}, pref(50, zone("a"))), adv("b", []string{"p", "q"}, pref(50, zone("b")))}, "", "put the preferences in one advertisement"},
		{"another advertisement of other pools", []L2Advertisement{adv("a", []string{"p"}, pref(50, zone("a"))), adv("b", []string{"q"}, pref(50, zone("b")))}, "[a]", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &converter{in: Config{L2Advertisements: tc.advs}, communities: map[string]string{}}
			got, ok := c.preferences(tc.advs[0])
			if tc.refusal != "" {
				if ok || !slices.ContainsFunc(c.out.Refusals, func(f Finding) bool { return strings.Contains(f.Message, tc.refusal) }) {
					t.Fatalf("translated %v (refusals %v), want a refusal saying %q", got, c.out.Refusals, tc.refusal)
				}
				return
			}
			if !ok {
				t.Fatalf("refused: %v", c.out.Refusals)
			}
			var zones []string
			for _, s := range got {
				if v, found := s.MatchLabels["zone"]; found {
					zones = append(zones, string(v))
				}
			}
			if tc.want != "" && fmt.Sprint(zones) != tc.want {
				t.Fatalf("places %v, want %s", zones, tc.want)
			}
		})
	}
}
