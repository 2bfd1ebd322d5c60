package v1beta1_test

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
)

// Each object is wrong in one way; the API server itself must refuse it
// with a message that names the field and says what is wrong.
var invalidObjects = []struct {
	name    string
	object  string
	message string // substring of the API server's answer
}{
	// IPPool
	{"pool without addresses", `kind: IPPool
spec: {addresses: []}`, "spec.addresses: Invalid value"},
	{"address that is no CIDR or range", `kind: IPPool
spec: {addresses: ["198.51.100.0"]}`, "must be a CIDR such as"},
	{"CIDR with host bits", `kind: IPPool
spec: {addresses: ["198.51.100.7/24"]}`, "network address"},
	{"malformed CIDR", `kind: IPPool
spec: {addresses: ["198.51.100.0/33"]}`, "must be a CIDR such as"},
	{"range upside down v4", `kind: IPPool
spec: {addresses: ["198.51.100.20-198.51.100.10"]}`, "must start at or below its end"},
	{"range upside down v6", `kind: IPPool
spec: {addresses: ["2001:db8::ff - 2001:db8::1"]}`, "must start at or below its end"},
	{"range upside down across v6 groups", `kind: IPPool
spec: {addresses: ["2001:db8:1::-2001:db8::ffff"]}`, "must start at or below its end"},
	{"range mixing families", `kind: IPPool
spec: {addresses: ["198.51.100.1-2001:db8::1"]}`, "must not mix IPv4 and IPv6"},
	{"range with three ends", `kind: IPPool
spec: {addresses: ["198.51.100.1-198.51.100.2-198.51.100.3"]}`, "must be a CIDR such as"},
	{"namespaces and namespaceSelectors together", `kind: IPPool
spec: {addresses: ["198.51.100.0/24"], allocateTo: {namespaces: [a], namespaceSelectors: [{matchLabels: {team: pay}}]}}`, "spec.allocateTo.namespaceSelectors: Invalid value: set namespaces or namespaceSelectors, not both"},
	{"negative priority", `kind: IPPool
spec: {addresses: ["198.51.100.0/24"], allocateTo: {priority: -1}}`, "spec.allocateTo.priority"},
	{"namespace name with capitals", `kind: IPPool
spec: {addresses: ["198.51.100.0/24"], allocateTo: {namespaces: [Prod]}}`, "spec.allocateTo.namespaces[0]"},
	// L2Advertisement
	{"interface name too long", `kind: L2Advertisement
spec: {interfaces: ["a-very-long-interface-name"]}`, "spec.interfaces[0]"},
	{"interface name with a slash", `kind: L2Advertisement
spec: {interfaces: ["eth0/1"]}`, "spec.interfaces[0]"},
	{"serviceSelectors with an unknown operator", `kind: L2Advertisement
spec: {serviceSelectors: [{matchExpressions: [{key: tier, operator: Equals, values: [gold]}]}]}`, "spec.serviceSelectors[0].matchExpressions[0].operator: Unsupported value: \"Equals\""},
	{"serviceSelectors: In without values", `kind: L2Advertisement
spec: {serviceSelectors: [{matchExpressions: [{key: tier, operator: In}]}]}`, "spec.serviceSelectors[0].matchExpressions[0].values: Invalid value: values must be set for the operators In and NotIn"},
	{"serviceSelectors: Exists with values", `kind: L2Advertisement
spec: {serviceSelectors: [{matchExpressions: [{key: tier, operator: Exists, values: [gold]}]}]}`, "spec.serviceSelectors[0].matchExpressions[0].values: Invalid value: values must be set for the operators In and NotIn, and left empty for Exists and DoesNotExist"},
	{"serviceSelectors: a key that is no label key", `kind: L2Advertisement
spec: {serviceSelectors: [{matchExpressions: [{key: "tier level", operator: Exists}]}]}`, "spec.serviceSelectors[0].matchExpressions[0].key"},
	{"serviceSelectors: a matchLabels key that is no label key", `kind: L2Advertisement
spec: {serviceSelectors: [{matchLabels: {"bad key": x}}]}`, "spec.serviceSelectors[0].matchLabels: Invalid value: matchLabels keys must be label keys"},
	{"serviceSelectors: a matchLabels value that is no label value", `kind: L2Advertisement
spec: {serviceSelectors: [{matchLabels: {tier: "gold!"}}]}`, "spec.serviceSelectors[0].matchLabels.tier: Invalid value: \"gold!\""},
	{"serviceSelectors: a value longer than 63", `kind: L2Advertisement
spec: {serviceSelectors: [{matchExpressions: [{key: tier, operator: In, values: ["` + strings.Repeat("a", 64) + `"]}]}]}`, "spec.serviceSelectors[0].matchExpressions[0].values[0]"},
	{"preferredNodeSelectors with an empty selector", `kind: L2Advertisement
spec: {preferredNodeSelectors: [{matchLabels: {zone: a}}, {}]}`, "spec.preferredNodeSelectors: Invalid value: preferredNodeSelectors must not hold an empty selector"},
	{"preferredNodeSelectors: NotIn without values", `kind: L2Advertisement
spec: {preferredNodeSelectors: [{matchExpressions: [{key: zone, operator: NotIn, values: []}]}]}`, "spec.preferredNodeSelectors[0].matchExpressions[0].values: Invalid value: values must be set"},
	{"more than 8 preferredNodeSelectors", `kind: L2Advertisement
spec: {preferredNodeSelectors: [` + strings.Repeat("{matchLabels: {zone: a}}, ", 8) + `{matchLabels: {zone: b}}]}`, "spec.preferredNodeSelectors: Too many: 9: must have at most 8 items"},
	{"withdrawWithoutEndpoints that is no boolean", `kind: L2Advertisement
spec: {withdrawWithoutEndpoints: "yes"}`, "spec.withdrawWithoutEndpoints: Invalid value: \"string\""},
	// BGPAdvertisement
	{"BGP serviceSelectors with an unknown operator", `kind: BGPAdvertisement
spec: {serviceSelectors: [{matchExpressions: [{key: tier, operator: Gt, values: ["1"]}]}]}`, "spec.serviceSelectors[0].matchExpressions[0].operator: Unsupported value: \"Gt\""},
	{"BGP serviceSelectors: DoesNotExist with values", `kind: BGPAdvertisement
spec: {serviceSelectors: [{matchExpressions: [{key: tier, operator: DoesNotExist, values: [x]}]}]}`, "spec.serviceSelectors[0].matchExpressions[0].values: Invalid value: values must be set for the operators In and NotIn, and left empty for Exists and DoesNotExist"},
	{"BGP withdrawWithoutEndpoints that is no boolean", `kind: BGPAdvertisement
spec: {withdrawWithoutEndpoints: 1}`, "spec.withdrawWithoutEndpoints: Invalid value: \"integer\""},
	{"IPv4 aggregation too long", `kind: BGPAdvertisement
spec: {aggregationLength: 33}`, "spec.aggregationLength"},
	{"IPv6 aggregation too long", `kind: BGPAdvertisement
spec: {aggregationLengthV6: 129}`, "spec.aggregationLengthV6"},
	{"community part above 65535", `kind: BGPAdvertisement
spec: {communities: ["65536:1"]}`, "community 65536:1 must be two numbers"},
	{"unknown community name", `kind: BGPAdvertisement
spec: {communities: ["no-such-thing"]}`, "spec.communities[0]"},
	{"large community with two parts", `kind: BGPAdvertisement
spec: {largeCommunities: ["1:2"]}`, "large community 1:2 must be three numbers"},
	{"large community part above 2^32-1", `kind: BGPAdvertisement
spec: {largeCommunities: ["1:2:4294967296"]}`, "spec.largeCommunities[0]"},
	{"localPref above 2^32-1", `kind: BGPAdvertisement
spec: {localPref: 4294967296}`, "spec.localPref"},
	// BGPPeer
	{"ASN zero", `kind: BGPPeer
spec: {myASN: 0, peerASN: 64501, peerAddress: 10.0.0.1}`, "spec.myASN"},
	{"ASN above 2^32-1", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 4294967296, peerAddress: 10.0.0.1}`, "spec.peerASN"},
	{"peerASN and dynamicASN together", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, dynamicASN: internal, peerAddress: 10.0.0.1}`, "set exactly one of peerASN and dynamicASN"},
	{"neither peerASN nor dynamicASN", `kind: BGPPeer
spec: {myASN: 64500, peerAddress: 10.0.0.1}`, "set exactly one of peerASN and dynamicASN"},
	{"peer address not an IP", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: router.example}`, "spec.peerAddress: Invalid value: \"router.example\": must be an IPv4 or IPv6 address"},
	{"port zero", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, peerPort: 0}`, "spec.peerPort"},
	{"port above 65535", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, peerPort: 70000}`, "spec.peerPort"},
	{"hold time below 3s", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: 2s}`, "spec.holdTime: Invalid value: holdTime must be between 3s and 65535s"},
	{"keepalive not below hold", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: 9s, keepaliveTime: 9s}`, "spec.keepaliveTime: Invalid value: keepaliveTime must be at least 1s and less than holdTime"},
	{"hold time 0 (no keepalives: unsupported)", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: 0s}`, "spec.holdTime: Invalid value: holdTime must be between 3s and 65535s"},
	{"keepalive below 1s", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, keepaliveTime: 500ms}`, "spec.keepaliveTime: Invalid value: keepaliveTime must be at least 1s"},
	{"duration that is not one", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: soon}`, "spec.holdTime"},
	{"password and passwordSecret together", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, password: x, passwordSecret: {name: s}}`, "spec.passwordSecret: Invalid value: password and passwordSecret are mutually exclusive"},
	{"password longer than TCP MD5 allows", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, password: "` + strings.Repeat("x", 81) + `"}`, "spec.password"},
	{"multihop on iBGP", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64500, peerAddress: 10.0.0.1, ebgpMultiHop: true}`, "spec.ebgpMultiHop: Invalid value: ebgpMultiHop applies to eBGP peers only"},
	{"source address of the other family", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, sourceAddress: "fd00::1"}`, "spec.sourceAddress: Invalid value: sourceAddress and peerAddress must be of the same IP family"},
	{"router ID that is IPv6", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, routerID: "fd00::1"}`, "spec.routerID: Invalid value: \"fd00::1\": must be an IPv4 address"},
	{"neither peerAddress nor interface", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501}`, "set peerAddress, interface, or both"},
	{"link-local peerAddress without interface", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: "fe80::1"}`, "spec.peerAddress: Invalid value: a link-local peerAddress needs interface"},
	{"global peerAddress with interface", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: "2001:db8::1", interface: eth1}`, "spec.peerAddress: Invalid value: with interface, peerAddress must be an IPv6 link-local address"},
	{"IPv4 peerAddress with interface", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, interface: eth1}`, "with interface, peerAddress must be an IPv6 link-local address"},
	{"interface name with a slash", `kind: BGPPeer
spec: {myASN: 64500, dynamicASN: external, interface: "eth0/1"}`, "spec.interface"},
	{"interface name too long", `kind: BGPPeer
spec: {myASN: 64500, dynamicASN: external, interface: "a-very-long-interface-name"}`, "spec.interface"},
	{"sourceAddress on an interface session", `kind: BGPPeer
spec: {myASN: 64500, dynamicASN: external, interface: eth1, sourceAddress: "fe80::2"}`, "spec.sourceAddress: Invalid value: sourceAddress does not apply to an interface session"},
	{"multihop on an interface session", `kind: BGPPeer
spec: {myASN: 64500, dynamicASN: external, interface: eth1, ebgpMultiHop: true}`, "spec.ebgpMultiHop: Invalid value: ebgpMultiHop does not apply to an interface session"},
	{"dynamicASN of another kind", `kind: BGPPeer
spec: {myASN: 64500, dynamicASN: any, peerAddress: 10.0.0.1}`, "spec.dynamicASN: Unsupported value: \"any\""},
	{"multihop with dynamicASN internal", `kind: BGPPeer
spec: {myASN: 64500, dynamicASN: internal, peerAddress: 10.0.0.1, ebgpMultiHop: true}`, "spec.ebgpMultiHop: Invalid value: ebgpMultiHop applies to eBGP peers only"},
	{"listenPort without passive", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, listenPort: 1790}`, "spec.listenPort: Invalid value: listenPort applies to passive sessions only"},
	{"listenPort above 65535", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, passive: true, listenPort: 65536}`, "spec.listenPort"},
	{"gracefulRestartTime without gracefulRestart", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, gracefulRestartTime: 30s}`, "spec.gracefulRestartTime: Invalid value: gracefulRestartTime needs gracefulRestart: true"},
	{"gracefulRestartTime above 4095s", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, gracefulRestart: true, gracefulRestartTime: 2h}`, "spec.gracefulRestartTime: Invalid value: gracefulRestartTime must be between 1s and 4095s"},
	{"gracefulRestartTime below 1s", `kind: BGPPeer
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, gracefulRestart: true, gracefulRestartTime: 500ms}`, "gracefulRestartTime must be between 1s and 4095s"},
	// BFDProfile
	{"BFD interval too short", `kind: BFDProfile
spec: {receiveInterval: 5}`, "spec.receiveInterval"},
	{"BFD multiplier too small", `kind: BFDProfile
spec: {detectMultiplier: 1}`, "spec.detectMultiplier"},
	// AnnouncementSlice (written by the speakers)
	{"announcement by an unknown protocol", `kind: AnnouncementSlice
node: node1
serviceCount: 1
layer2Count: 0
bgpCount: 0
services: [{service: demo/web, addresses: [{ip: 198.51.100.5, protocol: ARP}]}]`, "services[0].addresses[0].protocol: Unsupported value: \"ARP\""},
	{"announcement slice without its node", `kind: AnnouncementSlice
serviceCount: 0
layer2Count: 0
bgpCount: 0`, "node: Required value"},
}

func TestAPIServerRefusesInvalidObjects(t *testing.T) {
	if err := netns.RequireRoot(); err != nil {
		t.Skip(err)
	}
	env := testenv.Start(t, testenv.WithoutControllerManager())
	dyn := dynamic.NewForConfigOrDie(env.Config)
	if len(invalidObjects) < 25 {
		t.Fatalf("the table must hold at least 25 invalid objects, has %d", len(invalidObjects))
	}
	for _, tc := range invalidObjects {
		t.Run(tc.name, func(t *testing.T) {
			obj := parse(t, "apiVersion: herald.dev/v1beta1\nmetadata: {name: bad}\n"+tc.object)
			_, err := dyn.Resource(resourceOf(obj)).Create(context.Background(), obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil {
				t.Fatalf("the API server accepted the object; want it refused with %q", tc.message)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("refused with\n  %v\nwant a message containing\n  %s", err, tc.message)
			}
		})
	}
}

func parse(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("bad test object: %v", err)
	}
	return &unstructured.Unstructured{Object: m}
}

func resourceOf(u *unstructured.Unstructured) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "herald.dev", Version: "v1beta1", Resource: strings.ToLower(u.GetKind()) + "s"}
}
