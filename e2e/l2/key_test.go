package l2

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
	"github.com/heraldlb/herald/speaker/members"
)

// A speaker with another gossip key stays out: the others never list it,
// it sees only itself, and it takes over nothing (it would otherwise
// believe it is alone and answer for every address).
func TestAGossipKeyMismatchKeepsASpeakerOut(t *testing.T) {
	e := herald(t)
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "key", Replicas: 2, Family: "IPv4"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	odd := e.Nodes[2].Name
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: v1beta1.Namespace, Name: "wrong-key"}, Data: map[string][]byte{"key": bytes.Repeat([]byte{9}, 32)}}
	if err := e.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if err := e.Speaker(odd).Terminate(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	err := poll.Until(ctx, 100*time.Millisecond, func() error {
		st, err := e.SpeakerStatuses(ctx)
		for _, n := range e.Nodes[:2] {
			if err == nil && st[n.Name].MembersAlive != 2 {
				err = fmt.Errorf("%s sees %d members", n.Name, st[n.Name].MembersAlive)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := e.StartSpeaker(odd, e.Bin.SpeakerSpec("--memberlist-secret=wrong-key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = wrong.Stop()
		_ = e.API.Delete(context.Background(), sec)
	})

	// Watch for 10 s (longer than the 5 s a lonely speaker waits for others
	// before it trusts its view): nobody ever sees three members, the odd
	// one sees itself only and announces nothing.
	var sawOdd bool
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := e.SpeakerStatuses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range e.Nodes[:2] {
			if st[n.Name].MembersAlive > 2 {
				t.Fatalf("%s sees %d members with a speaker of another key around", n.Name, st[n.Name].MembersAlive)
			}
		}
		s := st[odd]
		if s.UpdatedAt != nil && s.UpdatedAt.After(time.Now().Add(-15*time.Second)) && s.MembersAlive == 1 {
			sawOdd = true
		}
		if s.AnnouncedIPs > 0 {
			t.Fatalf("the speaker with the wrong key announces %v", s.L2Announcements)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !sawOdd {
		t.Fatalf("%s's SpeakerStatus never said 1 member", odd)
	}
	st, _ := e.SpeakerStatuses(ctx)
	for _, k := range st[odd].L2Skipped {
		if slices.Contains(w.IPs, k.IP) && k.Reason != "NoQuorum" {
			t.Errorf("%s skips %s as %s, want NoQuorum", odd, k.IP, k.Reason)
		}
	}
	// The address is still answered by one node only.
	if ans, err := e.Answerers(ctx, w.IPs[0]); err != nil || len(ans) != 1 || ans[0] == odd {
		t.Fatalf("%s answered by %v (%v), want one node of the two with the right key", w.IPs[0], ans, err)
	}
	if !strings.Contains(wrong.LogTail(200), "different memberlist key") {
		t.Errorf("the odd speaker's log does not say why it takes nothing over:\n%s", wrong.LogTail(20))
	}
}

// Rotating the memberlist key: a new key written into the Secret is
// installed beside the old one by every speaker, used once every speaker
// has it, and the old one dropped once every speaker uses the new one. No
// speaker restarts, none loses sight of another, no address moves, no BGP
// session drops, and a client sending a request every 20 ms to a Layer 2
// address and one to a BGP address through FRR sees no failure.
func TestMemberlistKeyRotationWithoutAnOutage(t *testing.T) {
	e := herald(t)
	ctx := labtest.Context(t, 5*time.Minute)
	peer := lab.BGPPeer("frr-rotation", e.FRR.IPv4, lab.NodeASN, lab.FRRASN)
	pool := objects.Pool("rotation-routed", false, "203.0.113.200/29")
	adv := &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "rotation-routed"}, Spec: v1beta1.BGPAdvertisementSpec{
		PoolSelection: v1beta1.PoolSelection{IPPools: []string{"rotation-routed"}}}}
	if err := e.Create(ctx, peer, pool, adv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.API.Delete(ctx, adv)
		_ = e.API.Delete(ctx, peer)
		_ = e.API.Delete(ctx, pool)
	})
	l2w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "rotation", Replicas: 2, Family: "IPv4"})
	bgpw := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "rotation-bgp", Replicas: 2, Family: "IPv4", Pool: "rotation-routed"})
	owner, err := e.WaitOwner(ctx, l2w.IPs[0])
	if err != nil {
		t.Fatal(err)
	}
	var before map[netip.Addr]routers.BGPNeighbor
	testkit.For(t, time.Minute, "FRR routes the BGP address through every node", func() error {
		if _, err := e.Ext.Get(ctx, lab.URL(bgpw.IPs[0], 80)); err != nil {
			return err
		}
		before, err = e.FRR.FRR.BGPNeighbors(ctx)
		if err != nil {
			return err
		}
		for _, a := range e.NodeAddrs(false) {
			if n, ok := before[a]; !ok || !n.Established() {
				return fmt.Errorf("session with %s: %+v", a, n)
			}
		}
		return nil
	})
	pids := map[string]int{}
	for _, n := range e.Nodes {
		pids[n.Name] = e.Speaker(n.Name).Proc().PID
	}
	probeOpts := lab.ProbeOptions{Interval: 20 * time.Millisecond, Timeout: 500 * time.Millisecond}
	l2probe := e.Client.StartProbe(lab.URL(l2w.IPs[0], 80), probeOpts)
	bgpprobe := e.Ext.StartProbe(lab.URL(bgpw.IPs[0], 80), probeOpts)

	newKey := bytes.Repeat([]byte{0x5a}, 16) // AES-128: another length, too
	sec := &corev1.Secret{}
	if err := e.API.Get(ctx, client.ObjectKey{Namespace: v1beta1.Namespace, Name: k8s.MemberlistSecretName}, sec); err != nil {
		t.Fatal(err)
	}
	oldKey := sec.Data["key"]
	sec.Data["key"] = newKey
	if err := e.API.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the next tests run with the old key again (rotated the same way)
		ctx := context.Background()
		if err := e.API.Get(ctx, client.ObjectKeyFromObject(sec), sec); err == nil {
			sec.Data["key"] = oldKey
			_ = e.API.Update(ctx, sec)
		}
		_ = e.WaitMembers(ctx, len(e.Nodes))
	})
	done := testkit.For(t, 2*time.Minute, "every speaker uses the new key only", func() error {
		st, err := e.SpeakerStatuses(ctx)
		if err != nil {
			return err
		}
		for _, n := range e.Nodes {
			s := st[n.Name]
			if s.MembersAlive != 3 {
				t.Errorf("%s sees %d members during the rotation", n.Name, s.MembersAlive)
			}
			c := apimeta.FindStatusCondition(s.Conditions, "MemberlistKey")
			if c == nil || c.Reason != "InUse" || !strings.Contains(c.Message, members.IDOf(newKey).String()) {
				return fmt.Errorf("%s: %+v", n.Name, c)
			}
		}
		return nil
	})
	t.Logf("rotated in %v", done.Round(time.Millisecond))
	// Let the probes run a while past the end, then count.
	testkit.Holds(t, 2*time.Second, "the owner stays", func() error {
		if o, err := e.Owners(ctx, l2w.IPs[0]); err != nil {
			return err
		} else if len(o) != 1 || o[0] != owner {
			return fmt.Errorf("owners %v, was %s", o, owner)
		}
		return nil
	})
	for name, p := range map[string]*lab.Probe{"Layer 2": l2probe, "BGP": bgpprobe} {
		sum := lab.Summarize(p.Stop())
		t.Logf("%s probe: %d requests, %d failed", name, sum.Total, sum.Failed)
		if sum.Failed > 0 || sum.Total < 50 {
			t.Errorf("%s probe during the rotation: %d of %d requests failed (log %s)", name, sum.Failed, sum.Total, p.LogPath)
		}
	}
	for _, n := range e.Nodes {
		if pid := e.Speaker(n.Name).Proc().PID; pid != pids[n.Name] {
			t.Errorf("%s's speaker restarted (pid %d, was %d)", n.Name, pid, pids[n.Name])
		}
	}
	after, err := e.FRR.FRR.BGPNeighbors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range e.NodeAddrs(false) {
		if b, n := before[a], after[a]; !n.Established() || n.ConnectionsDropped != b.ConnectionsDropped || n.ConnectionsEstablished != b.ConnectionsEstablished {
			t.Errorf("session with %s: dropped %d -> %d, established %d -> %d", a, b.ConnectionsDropped, n.ConnectionsDropped, b.ConnectionsEstablished, n.ConnectionsEstablished)
		}
	}
	if err := e.Event(ctx, "t-rotation", "rotation", "StoppedAnnouncingL2", ""); err == nil {
		t.Errorf("an address stopped being announced during the rotation")
	}
}
