package v1beta1_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
)

// The peering variants of docs/bgp.md, as users write them: the API server
// must accept each one.
var validPeers = map[string]string{
	"unnumbered, AS from the OPEN":        `{myASN: 64500, dynamicASN: external, interface: eth1}`,
	"link-local address on an interface":  `{myASN: 64500, peerASN: 64512, interface: eth1, peerAddress: "fe80::1"}`,
	"passive on port 1790":                `{myASN: 64500, peerASN: 64512, peerAddress: 10.0.0.1, passive: true, listenPort: 1790}`,
	"passive unnumbered":                  `{myASN: 64500, dynamicASN: external, interface: eth1, passive: true}`,
	"graceful restart time":               `{myASN: 64500, peerASN: 64512, peerAddress: 10.0.0.1, gracefulRestart: true, gracefulRestartTime: 300s}`,
	"external multihop with a dynamic AS": `{myASN: 64500, dynamicASN: external, peerAddress: 10.0.0.1, ebgpMultiHop: true}`,
	"source address of an IPv6 session":   `{myASN: 64500, peerASN: 64512, peerAddress: "2001:db8::1", sourceAddress: "2001:db8::2"}`,
}

func TestAPIServerAcceptsPeeringVariants(t *testing.T) {
	docs := map[string]string{}
	for name, spec := range validPeers {
		docs[name] = "kind: BGPPeer\nspec: " + spec
	}
	acceptsAll(t, docs)
}

// acceptsAll creates each object (dry run) with the real API server and
// fails for every one it refuses.
func acceptsAll(t *testing.T, docs map[string]string) {
	t.Helper()
	if err := netns.RequireRoot(); err != nil {
		t.Skip(err)
	}
	env := testenv.Start(t, testenv.WithoutControllerManager())
	dyn := dynamic.NewForConfigOrDie(env.Config)
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			obj := parse(t, "apiVersion: herald.dev/v1beta1\nmetadata: {name: ok}\n"+doc)
			if _, err := dyn.Resource(resourceOf(obj)).Create(context.Background(), obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}
