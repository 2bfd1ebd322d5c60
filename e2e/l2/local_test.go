package l2

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/poll"
)

// externalTrafficPolicy Local: an address is announced only from a node
// with a ready endpoint, and moves when that endpoint turns unready or its
// pod goes away, without waiting for anything about the Node.
func TestLocalTrafficIsAnnouncedFromANodeWithAReadyEndpoint(t *testing.T) {
	e := herald(t)
	withPods := []string{e.Nodes[0].Name, e.Nodes[1].Name}
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "local", Local: true, Nodes: withPods})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// check waits until ip is announced by exactly one node among allowed,
	// answers ARP/NDP only from there, and HTTP reaches the pod on it.
	check := func(ip string, allowed []string) string {
		t.Helper()
		var owner string
		err := poll.Until(ctx, 100*time.Millisecond, func() error {
			o, err := e.Owners(ctx, ip)
			if err != nil {
				return err
			}
			if len(o) != 1 || !slices.Contains(allowed, o[0]) {
				return fmt.Errorf("%s announced by %v, want one of %v", ip, o, allowed)
			}
			ans, err := e.Answerers(ctx, ip)
			if err != nil {
				return err
			}
			if !slices.Equal(ans, o) {
				return fmt.Errorf("%s answered by %v, want %v", ip, ans, o)
			}
			node, err := e.get(ctx, ip)
			if err != nil {
				return err
			}
			if node != o[0] { // Local: only the owner's own pod serves
				return fmt.Errorf("GET %s answered on %s, want %s", ip, node, o[0])
			}
			owner = o[0]
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return owner
	}
	for _, ip := range w.IPs {
		owner := check(ip, withPods)
		other := withPods[0]
		if other == owner {
			other = withPods[1]
		}
		// The owner's pod fails its readiness probe: the address moves.
		pod := w.Name + "-" + owner
		if err := e.SetPodReady(ctx, w.Namespace, pod, false); err != nil {
			t.Fatal(err)
		}
		check(ip, []string{other})
		if err := e.SetPodReady(ctx, w.Namespace, pod, true); err != nil {
			t.Fatal(err)
		}
		// Deleting the pod on the current owner moves it as well.
		cur := check(ip, withPods)
		gone := lab.EchoPod(w, cur)
		if err := e.API.Delete(ctx, gone.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		rest := slices.DeleteFunc(slices.Clone(withPods), func(n string) bool { return n == cur })
		check(ip, rest)
		t.Logf("%s: owner %s, moved to %s when its pod turned unready, and from %s when its pod was deleted", ip, owner, other, cur)
		// Put the deleted pod back for the next address (once the old one
		// is gone: the name is the same).
		if err := poll.Until(ctx, 200*time.Millisecond, func() error { return e.API.Create(ctx, gone.DeepCopy()) }); err != nil {
			t.Fatal(err)
		}
		if _, err := e.WaitReadyPods(ctx, w.Namespace, "app="+w.Name, 2); err != nil {
			t.Fatal(err)
		}
	}
	// The node without a pod never announced and says why.
	st, err := e.SpeakerStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range st[e.Nodes[2].Name].L2Skipped {
		if slices.Contains(w.IPs, k.IP) && k.Reason != "NoLocalEndpoint" {
			t.Errorf("%s skips %s for %s, want NoLocalEndpoint", e.Nodes[2].Name, k.IP, k.Reason)
		}
	}
}
