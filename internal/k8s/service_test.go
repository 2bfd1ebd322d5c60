package k8s

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func svcWith(annotations map[string]string, lbIP string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Annotations: annotations},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: lbIP},
	}
}

func TestRequestedIPs(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		lbIP        string
		want        []string
		bad         bool
	}{
		{name: "none"},
		{name: "herald", annotations: map[string]string{"herald.dev/load-balancer-ips": "198.51.100.1"}, want: []string{"198.51.100.1"}},
		{name: "two families with spaces", annotations: map[string]string{"herald.dev/load-balancer-ips": " 2001:db8::1 , 198.51.100.1,"}, want: []string{"2001:db8::1", "198.51.100.1"}},
		{name: "metallb.io alias", annotations: map[string]string{"metallb.io/loadBalancerIPs": "198.51.100.2"}, want: []string{"198.51.100.2"}},
		{name: "metallb.universe.tf alias", annotations: map[string]string{"metallb.universe.tf/loadBalancerIPs": "198.51.100.3"}, want: []string{"198.51.100.3"}},
		{name: "herald wins over aliases", annotations: map[string]string{"herald.dev/load-balancer-ips": "198.51.100.1", "metallb.io/loadBalancerIPs": "198.51.100.2"}, want: []string{"198.51.100.1"}},
		{name: "metallb.io wins over universe", annotations: map[string]string{"metallb.universe.tf/loadBalancerIPs": "198.51.100.3", "metallb.io/loadBalancerIPs": "198.51.100.2"}, want: []string{"198.51.100.2"}},
		{name: "spec only", lbIP: "198.51.100.4", want: []string{"198.51.100.4"}},
		{name: "spec agrees with annotation", annotations: map[string]string{"herald.dev/load-balancer-ips": "198.51.100.1,2001:db8::1"}, lbIP: "198.51.100.1", want: []string{"198.51.100.1", "2001:db8::1"}},
		{name: "spec disagrees with annotation", annotations: map[string]string{"herald.dev/load-balancer-ips": "198.51.100.1"}, lbIP: "198.51.100.4", bad: true},
		{name: "duplicate collapses", annotations: map[string]string{"herald.dev/load-balancer-ips": "198.51.100.1,198.51.100.1"}, want: []string{"198.51.100.1"}},
		{name: "mapped IPv4", annotations: map[string]string{"herald.dev/load-balancer-ips": "::ffff:198.51.100.1"}, want: []string{"198.51.100.1"}},
		{name: "garbage", annotations: map[string]string{"herald.dev/load-balancer-ips": "198.51.100.300"}, bad: true},
		{name: "zone", annotations: map[string]string{"herald.dev/load-balancer-ips": "fe80::1%eth0"}, bad: true},
		{name: "bad spec", lbIP: "nope", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RequestedIPs(svcWith(tc.annotations, tc.lbIP))
			if tc.bad {
				if !errors.Is(err, ErrBadAnnotation) {
					t.Fatalf("err = %v, want ErrBadAnnotation", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []netip.Addr
			for _, s := range tc.want {
				want = append(want, netip.MustParseAddr(s))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func TestPoolAndSharingAnnotations(t *testing.T) {
	for _, tc := range []struct {
		annotations    map[string]string
		pool, shareKey string
	}{
		{map[string]string{}, "", ""},
		{map[string]string{"herald.dev/ip-pool": " lan ", "herald.dev/allow-shared-ip": "k"}, "lan", "k"},
		{map[string]string{"metallb.io/address-pool": "a", "metallb.io/allow-shared-ip": "m"}, "a", "m"},
		{map[string]string{"metallb.universe.tf/address-pool": "u", "metallb.universe.tf/allow-shared-ip": "u"}, "u", "u"},
		{map[string]string{"herald.dev/ip-pool": "h", "metallb.io/address-pool": "a", "metallb.universe.tf/address-pool": "u"}, "h", ""},
	} {
		svc := svcWith(tc.annotations, "")
		if got := RequestedPool(svc); got != tc.pool {
			t.Errorf("%v: pool %q, want %q", tc.annotations, got, tc.pool)
		}
		if got := SharingKey(svc); got != tc.shareKey {
			t.Errorf("%v: sharing key %q, want %q", tc.annotations, got, tc.shareKey)
		}
	}
}

func TestSharingNamespaces(t *testing.T) {
	for _, tc := range []struct {
		value string
		set   bool
		want  []string
		bad   bool
	}{
		{set: false},
		{value: "", set: true},
		{value: "*", set: true, want: []string{"*"}},
		{value: " team-b , team-a,team-b,", set: true, want: []string{"team-a", "team-b"}},
		{value: "Team-A", set: true, bad: true},
		{value: "a/b", set: true, bad: true},
		{value: "**", set: true, bad: true},
	} {
		ann := map[string]string{}
		if tc.set {
			ann["herald.dev/sharing-cross-namespace"] = tc.value
		}
		got, err := SharingNamespaces(svcWith(ann, ""))
		if tc.bad {
			if !errors.Is(err, ErrBadAnnotation) {
				t.Errorf("%q: err = %v, want ErrBadAnnotation", tc.value, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %v %v, want %v", tc.value, got, err, tc.want)
		}
	}
}

func TestHasClass(t *testing.T) {
	other := "example.com/other"
	for _, tc := range []struct {
		svcClass *string
		served   string
		want     bool
	}{
		{nil, "", true},
		{nil, "herald.dev/lb", false},
		{&other, "", false},
		{&other, "example.com/other", true},
		{&other, "herald.dev/lb", false},
	} {
		svc := svcWith(nil, "")
		svc.Spec.LoadBalancerClass = tc.svcClass
		if got := HasClass(svc, tc.served); got != tc.want {
			t.Errorf("class %v served %q: %v, want %v", tc.svcClass, tc.served, got, tc.want)
		}
	}
}

func TestLocalTrafficSelector(t *testing.T) {
	svc := svcWith(nil, "")
	svc.Spec.Selector = map[string]string{"b": "2", "a": "1"}
	if got := LocalTrafficSelector(svc); got != "" {
		t.Errorf("Cluster policy: %q, want empty", got)
	}
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	if got := LocalTrafficSelector(svc); got != "a=1,b=2" {
		t.Errorf("Local policy: %q, want a=1,b=2 (sorted)", got)
	}
	svc.Spec.Selector = nil
	if got := LocalTrafficSelector(svc); got != NoSelector {
		t.Errorf("Local without selector: %q, want %q", got, NoSelector)
	}
}

func TestIngressIPs(t *testing.T) {
	lb := corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "2001:db8::1"}, {Hostname: "lb.example.com"}, {IP: "198.51.100.1"}}}
	got := IngressIPs(lb)
	want := []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("198.51.100.1")}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
