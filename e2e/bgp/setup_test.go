package bgp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

// The sessions every node opens (BGPPeers selecting every node):
//
//	frr4   eBGP  10.0.0.1    AS 64500 -> 64512  TCP MD5 (Secret frr-md5), BFD profile "fast"
//	frr6   iBGP  fd00:10::1  AS 64512 -> 64512
//	bird4  eBGP  10.0.0.2    AS 64500 -> 64513
//	bird6  eBGP  fd00:10::2  AS 64500 -> 64513
//
// FRR is configured with one explicit neighbor per node address (passive),
// so its per-neighbor counters (connectionsEstablished) survive a session
// drop; BIRD keeps the lab's dynamic protocols for AS 64500.
const (
	peerFRR4, peerFRR6, peerBIRD4, peerBIRD6 = "frr4", "frr6", "bird4", "bird6"
	md5Secret                                = "frr-md5"
	md5Password                              = "lab-md5-secret"
	bfdFast                                  = "fast"
)

var allPeers = []string{peerBIRD4, peerBIRD6, peerFRR4, peerFRR6}

// Pools and their advertisements.
const (
	// poolBGP: one /32 or /128 per IP to frr4, bird4 and bird6, with
	// communities (one well-known) and a large community.
	poolBGP = "bgp"
	// poolIBGP: to frr6 (iBGP) and bird4 (eBGP), with localPref 150.
	poolIBGP = "ibgp"
	// poolAgg: aggregated to /25 and /120, to frr4, bird4 and bird6.
	poolAgg = "agg"
)

var (
	bgpCommunities      = []string{"64500:100", "no-export"}
	bgpLargeCommunities = []string{"64500:1:2"}
)

// env is the shared lab with Herald running in BGP mode.
type env struct {
	*lab.Herald
	// w follows FRR's kernel routing table.
	w *routers.RouteWatcher
}

var shared labtest.Shared[*env]

// herald returns the lab with FRR reconfigured for these tests, the
// controller, a speaker per node and the base configuration, started on
// first use. Speakers a previous test stopped or paused run again and every
// session is up when it returns.
func herald(t *testing.T) *env {
	t.Helper()
	e := shared.Get(t, startHerald)
	if err := e.ReviveSpeakers(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.waitSessions(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

// gracefulShutdownPolicy is what RFC 8326 asks of a router that receives
// routes with the GRACEFUL_SHUTDOWN community: lower their LOCAL_PREF to 0
// so that other paths win (docs/maintenance.md gives it to users).
var gracefulShutdownPolicy = []string{
	"bgp community-list standard GRACEFUL-SHUTDOWN seq 5 permit graceful-shutdown",
	"route-map FROM-NODES permit 10",
	" match community GRACEFUL-SHUTDOWN",
	" set local-preference 0",
	"exit",
	"route-map FROM-NODES permit 20",
	"exit",
}

// frrConfig is the lab's FRR with explicit neighbors for the nodes, whose
// routes carrying GRACEFUL_SHUTDOWN it prefers least.
func frrConfig(nodes []*lab.Node) routers.FRRConfig {
	cfg := lab.FRRConfig() // AS 64512, BFD profile "lab" (100 ms x 3), ECMP
	cfg.PeerGroups = nil
	cfg.Policy = gracefulShutdownPolicy
	timers := routers.SessionOptions{Keepalive: 3 * time.Second, Hold: 9 * time.Second, ConnectRetry: time.Second, Passive: true, RouteMapIn: "FROM-NODES"}
	for _, n := range nodes {
		v4, v6 := timers, timers
		v4.RemoteAS, v4.Password, v4.BFDProfile = routers.ASN(lab.NodeASN), md5Password, "lab"
		v6.RemoteAS = routers.Internal
		cfg.Neighbors = append(cfg.Neighbors, routers.Neighbor{Address: n.IPv4, SessionOptions: v4}, routers.Neighbor{Address: n.IPv6, SessionOptions: v6})
	}
	return cfg
}

func startHerald(l *lab.Lab) (*env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.StartFRR(ctx, frrConfig(l.Nodes)); err != nil {
		return nil, err
	}
	w, err := routers.WatchRoutes(l.FRR.NS)
	if err != nil {
		return nil, err
	}
	h, err := labtest.StartHerald(l)
	if err != nil {
		return nil, err
	}
	e := &env{Herald: h, w: w}
	if err := e.Create(ctx, baseObjects()...); err != nil {
		return nil, err
	}
	return e, e.waitSessions(ctx)
}

func baseObjects() []client.Object {
	frr4 := lab.BGPPeer(peerFRR4, netip.MustParseAddr("10.0.0.1"), lab.NodeASN, lab.FRRASN)
	frr4.Spec.PasswordSecret = &v1beta1.SecretRef{Name: md5Secret}
	frr4.Spec.BFDProfile = bfdFast
	communities := func(s []string) (out []v1beta1.Community) {
		for _, c := range s {
			out = append(out, v1beta1.Community(c))
		}
		return out
	}
	return []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: v1beta1.Namespace, Name: md5Secret}, StringData: map[string]string{"password": md5Password}},
		&v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: bfdFast}, Spec: v1beta1.BFDProfileSpec{
			ReceiveInterval: ptr.To[int32](100), TransmitInterval: ptr.To[int32](100), DetectMultiplier: ptr.To[int32](3)}},
		frr4,
		lab.BGPPeer(peerFRR6, netip.MustParseAddr("fd00:10::1"), lab.FRRASN, lab.FRRASN),
		lab.BGPPeer(peerBIRD4, netip.MustParseAddr("10.0.0.2"), lab.NodeASN, lab.BIRDASN),
		lab.BGPPeer(peerBIRD6, netip.MustParseAddr("fd00:10::2"), lab.NodeASN, lab.BIRDASN),
		objects.Pool(poolBGP, false, "203.0.113.0/26", "2001:db8:200::/122"),
		objects.Pool(poolIBGP, false, "203.0.113.64/26", "2001:db8:200::40/122"),
		objects.Pool(poolAgg, false, "203.0.113.128/25", "2001:db8:200::100/120"),
		&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: poolBGP}, Spec: v1beta1.BGPAdvertisementSpec{
			PoolSelection: v1beta1.PoolSelection{IPPools: []string{poolBGP}}, Peers: []string{peerFRR4, peerBIRD4, peerBIRD6},
			Communities: communities(bgpCommunities), LargeCommunities: []v1beta1.LargeCommunity{v1beta1.LargeCommunity(bgpLargeCommunities[0])},
		}},
		&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: poolIBGP}, Spec: v1beta1.BGPAdvertisementSpec{
			PoolSelection: v1beta1.PoolSelection{IPPools: []string{poolIBGP}}, Peers: []string{peerFRR6, peerBIRD4},
			LocalPref: ptr.To[int64](150), Communities: []v1beta1.Community{"64512:200"},
		}},
		&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: poolAgg}, Spec: v1beta1.BGPAdvertisementSpec{
			PoolSelection: v1beta1.PoolSelection{IPPools: []string{poolAgg}}, Peers: []string{peerFRR4, peerBIRD4, peerBIRD6},
			AggregationLength: ptr.To[int32](25), AggregationLengthV6: ptr.To[int32](120),
		}},
	}
}
