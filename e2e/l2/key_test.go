package l2

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
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
	err := lab.Poll(ctx, 100*time.Millisecond, func() error {
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
