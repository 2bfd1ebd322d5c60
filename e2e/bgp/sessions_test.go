package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testkit"
)

// Every node opens every session: eBGP to FRR over IPv4 (with TCP MD5 and
// BFD), iBGP to FRR over IPv6, eBGP to BIRD over both families. FRR and
// BIRD see them established with the right AS numbers and timers, every
// node's SpeakerStatus lists them (kubectl shows the counts), and each
// BGPPeer has a BGPSessionUp Event per node.
func TestSessionsEstablishFromEveryNode(t *testing.T) {
	e := herald(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	fn, err := e.frrNeighbors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes {
		v4, v6 := fn[n.IPv4], fn[n.IPv6]
		if v4.RemoteAS != lab.NodeASN || v4.LocalAS != lab.FRRASN || v4.AuthenticationEnabled != 1 || v4.HoldTimeMsecs != 9000 {
			t.Errorf("FRR's eBGP session with %s: remote AS %d, local AS %d, MD5 %d, hold %d ms; want 64500, 64512, MD5 on, 9000 ms",
				n.Name, v4.RemoteAS, v4.LocalAS, v4.AuthenticationEnabled, v4.HoldTimeMsecs)
		}
		if v4.BFD == nil || !strings.EqualFold(v4.BFD.Status, "up") {
			t.Errorf("FRR's BFD with %s: %+v, want up", n.Name, v4.BFD)
		}
		if v6.RemoteAS != lab.FRRASN || v6.LocalAS != lab.FRRASN {
			t.Errorf("FRR's iBGP session with %s: remote AS %d, local AS %d; want 64512 both", n.Name, v6.RemoteAS, v6.LocalAS)
		}
	}
	bs, err := e.birdSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes {
		for _, a := range []netip.Addr{n.IPv4, n.IPv6} {
			if p := bs[a]; !p.Established() || p.State != "up" {
				t.Errorf("BIRD's session with %s (%v): %+v", n.Name, a, p)
			}
		}
	}

	st, err := e.SpeakerStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes {
		s := st[n.Name]
		if len(s.BGPSessions) != len(allPeers) {
			t.Fatalf("%s lists sessions %+v, want %v", n.Name, s.BGPSessions, allPeers)
		}
		for i, sess := range s.BGPSessions {
			wantBFD := ""
			if sess.Peer == peerFRR4 {
				wantBFD = "Up"
			}
			if sess.Peer != allPeers[i] || sess.State != "Established" || sess.Since == nil || sess.BFD != wantBFD || sess.Message != "" {
				t.Errorf("%s's session %d: %+v (want %s Established, BFD %q)", n.Name, i, sess, allPeers[i], wantBFD)
			}
		}
	}
	out, err := e.Kubectl(ctx, "get", "speakerstatus")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get speakerstatus:\n%s", out)
	for _, n := range e.Nodes {
		if got := bgpColumns(out, n.Name); got != "4/4" {
			t.Errorf("kubectl shows no line for %s with 4 of 4 sessions up:\n%s", n.Name, out)
		}
	}

	for _, peer := range allPeers {
		err := poll.Until(ctx, 200*time.Millisecond, func() error {
			evs, err := e.peerEvents(ctx, peer, "BGPSessionUp")
			if err != nil {
				return err
			}
			for _, n := range e.Nodes {
				if !eventFrom(evs, n.Name) {
					return fmt.Errorf("no BGPSessionUp Event from %s on BGPPeer %s (have %d)", n.Name, peer, len(evs))
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
}

// bgpColumns returns the "BGP UP" and "BGP SESSIONS" columns of node's
// line in "kubectl get speakerstatus", found by the header (single-word
// columns before them; the header's two-word names count as one each).
func bgpColumns(table, node string) string {
	lines := strings.Split(table, "\n")
	if len(lines) == 0 {
		return ""
	}
	header := strings.Fields(strings.NewReplacer("BGP UP", "BGP_UP", "BGP SESSIONS", "BGP_SESSIONS", "L2 IPS", "L2_IPS").Replace(lines[0]))
	up, sessions := slices.Index(header, "BGP_UP"), slices.Index(header, "BGP_SESSIONS")
	for _, line := range lines[1:] {
		if f := strings.Fields(line); up >= 0 && sessions >= 0 && len(f) > max(up, sessions) && f[0] == node {
			return f[up] + "/" + f[sessions]
		}
	}
	return ""
}

func eventFrom(evs []corev1.Event, node string) bool {
	for _, ev := range evs {
		if strings.HasPrefix(ev.Message, node+":") {
			return true
		}
	}
	return false
}

// A wrong TCP MD5 password keeps the session down, FRR never sees it
// come up, the node's SpeakerStatus says why (kubectl shows one session
// less) and the BGPPeer gets BGPSessionDown Events; the other sessions are
// untouched. Fixing the Secret brings the session back.
func TestWrongMD5PasswordKeepsSessionDownUntilSecretIsFixed(t *testing.T) {
	e := herald(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before, err := e.resetCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: v1beta1.Namespace, Name: md5Secret}}
	setPassword := func(ctx context.Context, pw string) error {
		return lab.Update(ctx, e.API, secret, func(s *corev1.Secret) { s.Data = map[string][]byte{"password": []byte(pw)} })
	}
	if err := setPassword(ctx, "not-the-routers-password"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = setPassword(context.Background(), md5Password) })

	v4 := e.NodeAddrs(false)
	frrDown := func() error {
		fn, err := e.frrNeighbors(ctx)
		if err != nil {
			return err
		}
		for _, a := range v4 {
			if fn[a].Established() {
				return fmt.Errorf("FRR's session with %v is established", a)
			}
		}
		return nil
	}
	testkit.For(t, 20*time.Second, "sessions to FRR down after the password change", frrDown)
	testkit.For(t, 30*time.Second, "SpeakerStatus says why", func() error {
		for _, n := range e.Nodes {
			s, err := e.session(ctx, n.Name, peerFRR4)
			if err != nil {
				return err
			}
			if s.State == "Established" || !strings.Contains(s.Message, "MD5") {
				return fmt.Errorf("%s: %+v", n.Name, s)
			}
		}
		return nil
	})
	testkit.Holds(t, 4*time.Second, "sessions stay down with the wrong password", frrDown)
	s, _ := e.session(ctx, e.Nodes[0].Name, peerFRR4)
	t.Logf("%s's session %s: state %s, message %q", e.Nodes[0].Name, peerFRR4, s.State, s.Message)
	out, err := e.Kubectl(ctx, "get", "speakerstatus")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes {
		if got := bgpColumns(out, n.Name); got != "3/4" {
			t.Errorf("kubectl shows no line for %s with 3 of 4 sessions up:\n%s", n.Name, out)
		}
	}
	evs, err := e.peerEvents(ctx, peerFRR4, "BGPSessionDown")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes {
		if !eventFrom(evs, n.Name) {
			t.Errorf("no BGPSessionDown Event from %s on BGPPeer %s", n.Name, peerFRR4)
		}
	}
	// Only the sessions to FRR over IPv4 went down.
	for _, a := range v4 {
		delete(before.frr, a)
	}
	if err := e.noResetSince(ctx, before); err != nil {
		t.Error(err)
	}

	if err := setPassword(ctx, md5Password); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, "sessions up again with the right password", func() error { return e.sessionsUp(ctx) })
}
