package status

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// The writer creates the SpeakerStatus owned by the Node, writes only
// changes, and recreates the object when someone deletes it.
func TestWriterCreatesAndWritesOnlyChanges(t *testing.T) {
	e := startEnv(t)
	c, ctx := e.c, context.Background()
	node := e.node("node1")
	cur := v1beta1.SpeakerStatusStatus{MembersAlive: 3, AnnouncedIPs: 1,
		L2Announcements: []v1beta1.L2Announcement{{IP: "198.51.100.5", Services: []string{"demo/web"}, Interfaces: []string{"eth0"}, Since: metav1.NewTime(time.Unix(1000, 0))}}}
	w, err := New(Options{Client: c, Node: "node1", NodeUID: node.UID, Source: func() v1beta1.SpeakerStatusStatus { return cur }})
	if err != nil {
		t.Fatal(err)
	}
	get := func() *v1beta1.SpeakerStatus {
		t.Helper()
		var ss v1beta1.SpeakerStatus
		if err := c.Get(ctx, client.ObjectKey{Name: "node1"}, &ss); err != nil {
			t.Fatal(err)
		}
		return &ss
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ss := get()
	if ss.Status.MembersAlive != 3 || ss.Status.UpdatedAt == nil || len(ss.OwnerReferences) != 1 || ss.OwnerReferences[0].UID != node.UID ||
		ss.Status.L2Announcements[0].IP != "198.51.100.5" {
		t.Fatalf("written %+v", ss)
	}
	if err := w.Sync(ctx); err != nil || w.Writes != 1 {
		t.Fatalf("unchanged status written again: %d writes, %v", w.Writes, err)
	}
	cur.MembersAlive = 2
	if err := w.Sync(ctx); err != nil || w.Writes != 2 || get().Status.MembersAlive != 2 {
		t.Fatalf("changed status: %d writes, %v", w.Writes, err)
	}
	if err := c.Delete(ctx, ss); err != nil {
		t.Fatal(err)
	}
	cur.MembersAlive = 1
	if err := w.Sync(ctx); err != nil || get().Status.MembersAlive != 1 {
		t.Fatalf("after deletion: %v", err)
	}
}
