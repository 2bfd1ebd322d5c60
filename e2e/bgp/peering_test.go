package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

const (
	peerFRRLL, peerBIRDLL = "frr-ll", "bird-ll"
	poolLinkLocal         = "linklocal"
	llListenPort          = 1790
	llRestartTime         = 42 * time.Second
)

// TestLinkLocalPeers: every node peers with FRR and BIRD over the LAN's
// IPv6 link-local addresses, with BGPPeers on interface eth0:
//
//	frr-ll   the node dials FRR's link-local address; the AS comes from
//	         FRR's OPEN (dynamicASN external); graceful restart time 42 s
//	bird-ll  passive on port 1790: BIRD dials every node's link-local
//	         address (FRR 8.4 does not dial a link-local neighbor it has no
//	         Router Advertisement from: "Waiting for NHT")
//
// Both routers see the sessions (FRR with the 42 s restart time), route
// an IPv6 Service via the three nodes' link-local addresses (ECMP, in their
// BGP tables and kernels), and the external client reaches pods on several
// nodes through FRR. Deleting the BGPPeers ends the sessions, withdraws the
// routes, and the nodes stop listening.
func TestLinkLocalPeers(t *testing.T) {
	e := herald(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	frrLL, birdLL := lanLinkLocal(ctx, t, e.FRR.NS), lanLinkLocal(ctx, t, e.BIRD.NS)
	var nodeLLs []netip.Addr
	for _, n := range e.Nodes {
		nodeLLs = append(nodeLLs, lanLinkLocal(ctx, t, n.NS))
	}
	nodeLLs = sorted(nodeLLs)

	// FRR: a passive neighbor per node link-local address. BIRD: a protocol
	// per node link-local address that dials the node's port 1790.
	cmds := []string{fmt.Sprintf("router bgp %d", lab.FRRASN)}
	for _, a := range nodeLLs {
		cmds = append(cmds,
			fmt.Sprintf("neighbor %s remote-as %d", a, lab.NodeASN),
			fmt.Sprintf("neighbor %s interface eth0", a),
			fmt.Sprintf("neighbor %s passive", a),
			fmt.Sprintf("neighbor %s timers 3 9", a))
	}
	cmds = append(cmds, "address-family ipv6 unicast")
	for _, a := range nodeLLs {
		cmds = append(cmds, fmt.Sprintf("neighbor %s activate", a))
	}
	if err := e.FRR.FRR.Configure(ctx, cmds...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		undo := []string{fmt.Sprintf("router bgp %d", lab.FRRASN)}
		for _, a := range nodeLLs {
			undo = append(undo, "no neighbor "+a.String())
		}
		if err := e.FRR.FRR.Configure(context.Background(), undo...); err != nil {
			t.Errorf("FRR: %v", err)
		}
	})
	birdBase := e.BIRD.BIRD.Config
	birdCfg := birdBase
	birdCfg.Neighbors = slices.Clone(birdBase.Neighbors)
	for i, a := range nodeLLs {
		birdCfg.Neighbors = append(birdCfg.Neighbors, routers.BIRDNeighbor{Name: fmt.Sprintf("ll%d", i), Address: a.WithZone("eth0"),
			Port: llListenPort, ASN: lab.NodeASN, ConnectRetry: time.Second, Hold: 9 * time.Second, Keepalive: 3 * time.Second})
	}
	if err := e.BIRD.BIRD.Reconfigure(ctx, birdCfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.BIRD.BIRD.Reconfigure(context.Background(), birdBase); err != nil {
			t.Errorf("BIRD: %v", err)
		}
	})

	frrPeer := &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: peerFRRLL}, Spec: v1beta1.BGPPeerSpec{
		MyASN: lab.NodeASN, DynamicASN: v1beta1.DynamicASNExternal, Interface: "eth0", PeerAddress: frrLL.String(),
		HoldTime: &metav1.Duration{Duration: 9 * time.Second}, KeepaliveTime: &metav1.Duration{Duration: 3 * time.Second},
		ConnectTime:     &metav1.Duration{Duration: time.Second},
		GracefulRestart: true, GracefulRestartTime: &metav1.Duration{Duration: llRestartTime},
	}}
	birdPeer := &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: peerBIRDLL}, Spec: v1beta1.BGPPeerSpec{
		MyASN: lab.NodeASN, PeerASN: ptr.To[int64](lab.BIRDASN), Interface: "eth0", PeerAddress: birdLL.String(),
		Passive: true, ListenPort: ptr.To[int32](llListenPort),
		HoldTime: &metav1.Duration{Duration: 9 * time.Second}, KeepaliveTime: &metav1.Duration{Duration: 3 * time.Second},
	}}
	objs := []client.Object{
		objects.Pool(poolLinkLocal, false, "2001:db8:200::200/122"),
		&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: poolLinkLocal}, Spec: v1beta1.BGPAdvertisementSpec{
			PoolSelection: v1beta1.PoolSelection{IPPools: []string{poolLinkLocal}}, Peers: []string{peerFRRLL, peerBIRDLL}}},
		frrPeer, birdPeer,
	}
	if err := e.Create(ctx, objs...); err != nil {
		t.Fatal(err)
	}
	peersDeleted := false
	t.Cleanup(func() {
		for _, o := range objs {
			if peersDeleted && (o == client.Object(frrPeer) || o == client.Object(birdPeer)) {
				continue
			}
			if err := e.API.Delete(context.Background(), o); err != nil {
				t.Errorf("delete %s: %v", o.GetName(), err)
			}
		}
	})

	testkit.For(t, time.Minute, "link-local sessions established at FRR (with the restart time) and BIRD", func() error {
		ns, err := e.frrNeighbors(ctx)
		if err != nil {
			return err
		}
		bs, err := e.birdSessions(ctx)
		if err != nil {
			return err
		}
		for _, a := range nodeLLs {
			n := ns[a]
			if !n.Established() || n.GracefulRestart.Timers.ReceivedRestartTimer != int(llRestartTime/time.Second) {
				return fmt.Errorf("FRR neighbor %v: %q, restart time %d s (last reset: %s)", a, n.State, n.GracefulRestart.Timers.ReceivedRestartTimer, n.LastResetDueTo)
			}
			if b := bs[a.WithZone("eth0")]; !b.Established() {
				return fmt.Errorf("BIRD protocol for %v: %s %s", a, b.BGPState, b.LastError)
			}
		}
		return nil
	})
	for _, n := range e.Nodes {
		if !acceptedOn(ctx, t, n.NS, llListenPort, birdLL) {
			t.Errorf("%s: no session BIRD dialed to port %d", n.Name, llListenPort)
		}
	}

	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "ll", Nodes: e.NodeNames(), Pool: poolLinkLocal, Family: "IPv6"})
	prefix := hostPrefix(w.IPs[0])
	testkit.For(t, 20*time.Second, fmt.Sprintf("%v at FRR and BIRD via every node's link-local address", prefix), func() error {
		if err := e.frrHops(ctx, prefix, nodeLLs); err != nil {
			return err
		}
		return e.birdHops(ctx, prefix, nodeLLs)
	})
	var seen extAnswers
	testkit.For(t, 15*time.Second, fmt.Sprintf("30 requests to %s through FRR reach pods on several nodes", w.IPs[0]), func() error {
		var err error
		if seen, err = e.getFromExt(ctx, w.IPs[0], 30); err != nil {
			return err
		}
		if len(seen.nodes) < 2 {
			return fmt.Errorf("pods on %v only", seen)
		}
		return nil
	})
	t.Logf("%v via %v at FRR and BIRD; 30 requests from ext answered on %v", prefix, nodeLLs, seen)

	for _, p := range []client.Object{frrPeer, birdPeer} {
		if err := e.API.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	peersDeleted = true
	testkit.For(t, 30*time.Second, "route withdrawn at both routers, nodes no longer listening", func() error {
		if err := e.frrHops(ctx, prefix, nil); err != nil {
			return err
		}
		if err := e.birdHops(ctx, prefix, nil); err != nil {
			return err
		}
		for _, n := range e.Nodes {
			if listening(ctx, t, n.NS, llListenPort) {
				return fmt.Errorf("%s still listens on port %d", n.Name, llListenPort)
			}
		}
		return nil
	})
	// Closing the listener re-created every session of the nodes: leave
	// the lab as found, every session and FRR's BFD up.
	testkit.For(t, time.Minute, "the base sessions and BFD back up", func() error {
		if err := e.sessionsUp(ctx); err != nil {
			return err
		}
		return e.bfdUp(ctx)
	})
}

// lanLinkLocal is a host's link-local address on the LAN (eth0).
func lanLinkLocal(ctx context.Context, t *testing.T, ns *netns.NS) netip.Addr {
	t.Helper()
	out, err := ns.Run(ctx, "ip", "-6", "-j", "addr", "show", "dev", "eth0", "scope", "link")
	if err != nil {
		t.Fatal(err)
	}
	var ifs []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &ifs); err == nil && len(ifs) == 1 {
		for _, a := range ifs[0].AddrInfo { // ip -j lists an empty entry for filtered-out addresses
			if a.Local != "" {
				return netip.MustParseAddr(a.Local)
			}
		}
	}
	t.Fatalf("link-local address of eth0 in %s: %q", ns.Name, out)
	return netip.Addr{}
}

// acceptedOn reports whether ns has an established TCP session on its
// local port from the address from (ss prints link-local ones with %eth0).
func acceptedOn(ctx context.Context, t *testing.T, ns *netns.NS, port uint16, from netip.Addr) bool {
	t.Helper()
	out, err := ns.Run(ctx, "ss", "-Htn", "state", "established", "sport", fmt.Sprintf("= :%d", port))
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(strings.Split(out, "\n"), func(line string) bool { return strings.Contains(line, from.String()) })
}

// listening reports whether ns listens on a TCP port.
func listening(ctx context.Context, t *testing.T, ns *netns.NS, port uint16) bool {
	t.Helper()
	out, err := ns.Run(ctx, "ss", "-Htln", "sport", fmt.Sprintf("= :%d", port))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out) != ""
}
