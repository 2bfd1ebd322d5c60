package migrate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
	defer f.Close()
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
		{"L2Advertisement metallb-system/by-service", "spec.serviceSelectors", "select pools, not Services"},
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
