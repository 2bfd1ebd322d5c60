package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/k8s"
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
	*lab.Lab
	c client.Client
	// w follows FRR's kernel routing table.
	w *routers.RouteWatcher
}

var (
	heraldOnce sync.Once
	shared     *env
	sharedErr  error
)

// herald returns the lab with FRR reconfigured for these tests, the
// controller, a speaker per node and the base configuration, started on
// first use. Speakers a previous test stopped or paused run again and every
// session is up when it returns.
func herald(t *testing.T) *env {
	t.Helper()
	l := labtest.Lab(t)
	heraldOnce.Do(func() { shared, sharedErr = startHerald(l) })
	if sharedErr != nil {
		t.Fatalf("starting Herald in the lab: %v", sharedErr)
	}
	e := shared
	for _, n := range e.Nodes {
		c := e.Component("speaker-" + n.Name)
		if c.Running() {
			_ = c.Resume() // a test may have left it paused
			continue
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.waitSessions(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

// frrConfig is the lab's FRR with explicit neighbors for the nodes.
func frrConfig(nodes []*lab.Node) routers.FRRConfig {
	cfg := lab.FRRConfig() // AS 64512, BFD profile "lab" (100 ms x 3), ECMP
	cfg.PeerGroups = nil
	timers := routers.SessionOptions{Keepalive: 3 * time.Second, Hold: 9 * time.Second, ConnectRetry: time.Second, Passive: true}
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
	scheme, err := k8s.Scheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(l.Env.Config, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	w, err := routers.WatchRoutes(l.FRR.NS)
	if err != nil {
		return nil, err
	}
	e := &env{Lab: l, c: c, w: w}
	if _, err := l.StartController(bin.ControllerSpec()); err != nil {
		return nil, err
	}
	if _, err := l.StartSpeakers(bin.SpeakerSpec()); err != nil {
		return nil, err
	}
	if err := e.createAll(ctx, baseObjects()...); err != nil {
		return nil, err
	}
	return e, e.waitSessions(ctx)
}

func asn(n int64) *int64 { return &n }

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// bgpPeer is a BGPPeer of every node with 9 s hold time and fast retries.
func bgpPeer(name string, addr netip.Addr, myASN, peerASN int64) *v1beta1.BGPPeer {
	return &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.BGPPeerSpec{
		MyASN: myASN, PeerASN: asn(peerASN), PeerAddress: addr.String(),
		HoldTime: duration(9 * time.Second), KeepaliveTime: duration(3 * time.Second), ConnectTime: duration(time.Second),
	}}
}

func pool(name string, ranges ...v1beta1.AddressRange) *v1beta1.IPPool {
	return &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPPoolSpec{Addresses: ranges, AutoAssign: ptr.To(false)}}
}

func baseObjects() []client.Object {
	frr4 := bgpPeer(peerFRR4, netip.MustParseAddr("10.0.0.1"), lab.NodeASN, lab.FRRASN)
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
		bgpPeer(peerFRR6, netip.MustParseAddr("fd00:10::1"), lab.FRRASN, lab.FRRASN),
		bgpPeer(peerBIRD4, netip.MustParseAddr("10.0.0.2"), lab.NodeASN, lab.BIRDASN),
		bgpPeer(peerBIRD6, netip.MustParseAddr("fd00:10::2"), lab.NodeASN, lab.BIRDASN),
		pool(poolBGP, "203.0.113.0/26", "2001:db8:200::/122"),
		pool(poolIBGP, "203.0.113.64/26", "2001:db8:200::40/122"),
		pool(poolAgg, "203.0.113.128/25", "2001:db8:200::100/120"),
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

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }

func (e *env) createAll(ctx context.Context, objs ...client.Object) error {
	for _, o := range objs {
		if err := e.c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// update reads obj, applies change and writes it back, retrying conflicts.
func update[T client.Object](ctx context.Context, e *env, obj T, change func(T)) error {
	return poll(ctx, 100*time.Millisecond, func() error {
		if err := e.c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change(obj)
		return e.c.Update(ctx, obj)
	})
}

// poll checks cond every interval until it returns nil or ctx ends.
func poll(ctx context.Context, interval time.Duration, cond func() error) error {
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// within runs poll with its own deadline and fails the test on timeout.
func within(t *testing.T, d time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	if err := poll(ctx, 50*time.Millisecond, cond); err != nil {
		t.Fatalf("%s: not within %v: %v", what, d, err)
	}
	return time.Since(start)
}

// holds checks cond every 100 ms for d and fails at the first error: for
// things that must not happen.
func holds(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}
