package k8s

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// FuzzServiceAnnotations: the annotations and spec.loadBalancerIP of a
// Service, which any tenant who can create a Service writes. Reading them
// must never panic; what is accepted is clean (valid, unmapped IPs without
// zones and without duplicates, one of them the spec's when both are set;
// namespace names or "*", sorted and unique), and what is refused is
// refused with ErrBadAnnotation.
func FuzzServiceAnnotations(f *testing.F) {
	f.Add("198.51.100.1", "", "lan", "k", "")
	f.Add(" 2001:db8::1 , 198.51.100.1,", "198.51.100.1", "", "", "team-a, *")
	f.Add("::ffff:198.51.100.1", "", "", "", "team-b,team-a,team-b")
	f.Add("198.51.100.300", "nope", "", "", "Team-A")
	f.Add("fe80::1%eth0", "fe80::1%eth0", "", "", ",,,")
	f.Add("", "198.51.100.4", "", "", "a/b")
	f.Fuzz(func(t *testing.T, ips, lbIP, pool, key, namespaces string) {
		svc := svcWith(map[string]string{
			v1beta1.AnnotationLoadBalancerIPs:       ips,
			v1beta1.AnnotationIPPool:                pool,
			v1beta1.AnnotationAllowSharedIP:         key,
			v1beta1.AnnotationSharingCrossNamespace: namespaces,
		}, lbIP)
		got, err := RequestedIPs(svc)
		if err != nil {
			if !errors.Is(err, ErrBadAnnotation) || got != nil {
				t.Fatalf("RequestedIPs(%q, %q) = %v, %v", ips, lbIP, got, err)
			}
		} else {
			for i, ip := range got {
				if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() || slices.Contains(got[:i], ip) {
					t.Fatalf("RequestedIPs(%q, %q) = %v", ips, lbIP, got)
				}
			}
			if s := strings.TrimSpace(lbIP); s != "" {
				want, perr := netip.ParseAddr(s)
				if perr != nil || !slices.Contains(got, want.Unmap()) {
					t.Fatalf("RequestedIPs(%q, %q) = %v, without the spec's IP", ips, lbIP, got)
				}
			}
		}
		if RequestedPool(svc) != strings.TrimSpace(pool) || SharingKey(svc) != strings.TrimSpace(key) {
			t.Fatalf("pool %q key %q read as %q %q", pool, key, RequestedPool(svc), SharingKey(svc))
		}
		nss, err := SharingNamespaces(svc)
		if err != nil {
			if !errors.Is(err, ErrBadAnnotation) {
				t.Fatalf("SharingNamespaces(%q): %v", namespaces, err)
			}
			return
		}
		if !slices.IsSorted(nss) || len(slices.Compact(slices.Clone(nss))) != len(nss) {
			t.Fatalf("SharingNamespaces(%q) = %q", namespaces, nss)
		}
		for _, ns := range nss {
			if ns == "" || len(ns) > 63 || strings.Trim(ns, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" && ns != "*" {
				t.Fatalf("SharingNamespaces(%q) accepted %q", namespaces, ns)
			}
		}
	})
}
