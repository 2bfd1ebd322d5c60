package v1beta1

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// The CEL rule that orders the two ends of an address range is too long to
// write by hand: CEL has no ordering on IPs, no hex parsing and no let
// bindings, and the API server's cost estimator refuses join() and format()
// on strings of unknown size. So the rule is generated here and the test
// fails, printing the marker to paste, when ippool_types.go disagrees.
//
// IPv4: each end as a number (a*2^24 + b*2^16 + c*2^8 + d).
// IPv6: each end as 32 hex digits: "::" expanded to the missing zero groups,
// every group left-padded to 4 digits, the 8 groups concatenated.
func rangeOrderRule() string {
	lo := "self.substring(0, self.indexOf('-')).trim().lowerAscii()"
	hi := "self.substring(self.indexOf('-') + 1).trim().lowerAscii()"
	v4 := func(e string) string {
		o := func(i int) string { return fmt.Sprintf("int(%s.split('.', 4)[%d])", e, i) }
		return fmt.Sprintf("%s * 16777216 + %s * 65536 + %s * 256 + %s", o(0), o(1), o(2), o(3))
	}
	v6 := func(e string) string {
		head := e + ".split('::', 2)[0]"
		tail := e + ".split('::', 2)[1]"
		groups := fmt.Sprintf("(%[1]s.contains('::') ? (size(%[2]s) == 0 ? [] : %[2]s.split(':', 8)) + "+
			"['0', '0', '0', '0', '0', '0', '0', '0'].slice(0, 8 - (size(%[2]s) == 0 ? 0 : %[2]s.split(':', 8).size()) - (size(%[3]s) == 0 ? 0 : %[3]s.split(':', 8).size())) + "+
			"(size(%[3]s) == 0 ? [] : %[3]s.split(':', 8)) : %[1]s.split(':', 8)).map(g, ('000' + g).substring(size(g) - 1))", e, head, tail)
		parts := make([]string, 8)
		for i := range parts {
			parts[i] = fmt.Sprintf("%s[%d]", groups, i)
		}
		return strings.Join(parts, " + ")
	}
	return fmt.Sprintf("isCIDR(self) || !self.contains('-') || !isIP(%[1]s) || !isIP(%[2]s) || ip(%[1]s).family() != ip(%[2]s).family() || "+
		"(ip(%[1]s).family() == 4 ? %[3]s <= %[4]s : self.contains('.') || %[5]s <= %[6]s)",
		lo, hi, v4(lo), v4(hi), v6(lo), v6(hi))
}

func TestRangeOrderRuleIsCurrent(t *testing.T) {
	src, err := os.ReadFile("ippool_types.go")
	if err != nil {
		t.Fatal(err)
	}
	want := `// +kubebuilder:validation:XValidation:rule="` + rangeOrderRule() + `",message="a range must start at or below its end"`
	if !strings.Contains(string(src), want) {
		t.Fatalf("the range-order rule in ippool_types.go is stale; replace its marker line with:\n%s", want)
	}
}
