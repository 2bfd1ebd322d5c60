package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// meta names an object created `age` minutes after the epoch.
func meta(name string, age int) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Minute))}
}

func pool(name string, age int, addrs ...string) v1beta1.IPPool {
	p := v1beta1.IPPool{ObjectMeta: meta(name, age)}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1beta1.AddressRange(a))
	}
	return p
}

func ptr[T any](v T) *T { return &v }

// wantProblem asserts that ref has exactly one problem containing msg with the effect.
func wantProblem(t *testing.T, m *Model, ref Ref, effect Effect, msg string) {
	t.Helper()
	for _, p := range m.Problems {
		if p.Object == ref && strings.Contains(p.Message, msg) {
			if p.Effect != effect {
				t.Errorf("%s: problem %q has effect %d, want %d", ref, p.Message, p.Effect, effect)
			}
			return
		}
	}
	t.Errorf("%s: no problem containing %q; problems: %+v", ref, msg, m.Problems)
}

func wantNoProblems(t *testing.T, m *Model) {
	t.Helper()
	if len(m.Problems) > 0 {
		t.Errorf("unexpected problems: %+v", m.Problems)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
