package l2

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testkit"
)

// linkDownTrial takes ip's owner's LAN link down from inside the node (its
// speaker keeps running) and returns how long until another node announced
// ip, and which. The link stays down.
func (e *env) linkDownTrial(ctx context.Context, ip string) (owner, successor string, took time.Duration, err error) {
	if owner, err = e.WaitOwner(ctx, ip); err != nil {
		return "", "", 0, err
	}
	capt, err := e.Client.StartCapture(ctx)
	if err != nil {
		return owner, "", 0, err
	}
	t0 := time.Now()
	if err := e.NodeLinkDown(ctx, owner); err != nil {
		_, _ = capt.Stop()
		return owner, "", 0, err
	}
	err = poll.Until(ctx, 50*time.Millisecond, func() error {
		o, err := e.Owners(ctx, ip)
		if err != nil {
			return err
		}
		if len(o) != 1 || o[0] == owner {
			return fmt.Errorf("owners %v", o)
		}
		successor = o[0]
		return nil
	})
	msgs, cerr := capt.Stop()
	if err != nil {
		return owner, "", 0, err
	}
	if cerr != nil {
		return owner, successor, 0, cerr
	}
	for _, m := range msgs {
		if m.IP == ip && m.Gratuitous && m.At.After(t0) && e.NodeOfMAC(m.MAC) == successor {
			return owner, successor, m.At.Sub(t0), nil
		}
	}
	return owner, successor, 0, fmt.Errorf("%s never announced %s", successor, ip)
}

// The data path counts: a node whose LAN link goes down (taken down from
// inside it, its speaker still running) loses its addresses to the next
// node within about a second; when the link comes back without the route
// toward the pool (the kernel dropped it, and flapping the link does not
// bring it back) the node can announce none of them, so it is no
// candidate: every address answers from exactly one other node. With the
// route back each of its addresses returns to it in one move.
// HERALD_MEASURE=1 repeats the link-down trial ten times (docs/benchmarks.md).
func TestALinkDownMovesTheAddressesAndALostRouteKeepsThemAway(t *testing.T) {
	e := herald(t)
	ips := labtest.OwnedEverywhere(t, e.Herald, "link", 160, 179)
	ctx := labtest.Context(t, 10*time.Minute)
	node := e.Nodes[1].Name
	pair := labtest.RankedAddrs(t, e.NodeNames(), 160, 179)[node]
	trials := 1
	if labtest.Measuring() {
		trials = 10
	}
	var took []time.Duration
	for i := range trials {
		owner, succ, d, err := e.linkDownTrial(ctx, pair[0])
		if err != nil {
			t.Fatal(err)
		}
		took = append(took, d)
		t.Logf("trial %d: %s's link down, %s announces %s after %v", i+1, owner, succ, pair[0], d.Round(time.Millisecond))
		if d > 3*time.Second {
			t.Errorf("the address moved after %v, want about a second", d)
		}
		if i == trials-1 {
			break // this link stays down for the rest of the test
		}
		if err := e.NodeLinkUp(ctx, node); err != nil {
			t.Fatal(err)
		}
		if err := e.RestoreNodeRoutes(ctx, node); err != nil {
			t.Fatal(err)
		}
		if err := e.WaitMembers(ctx, len(e.Nodes)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.WaitOwner(ctx, pair[0], succ); err != nil { // back with its owner
			t.Fatal(err)
		}
	}
	if trials > 1 {
		slices.Sort(took)
		t.Logf("MEASURE link down (from inside the node) -> successor's announcement: median %v, worst %v over %d trials",
			took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), len(took))
	}

	// Flap the link a few times and leave it up: the kernel has dropped the
	// route toward the pool.
	for range 3 {
		if err := e.NodeLinkUp(ctx, node); err != nil {
			t.Fatal(err)
		}
		if err := e.NodeLinkDown(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.NodeLinkUp(ctx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RestoreNodeRoutes(context.Background(), node) })
	if err := e.WaitMembers(ctx, len(e.Nodes)); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, node+" says it cannot announce its addresses", func() error {
		st, err := e.SpeakerStatuses(ctx)
		if err != nil {
			return err
		}
		for _, ip := range pair {
			if !slices.ContainsFunc(st[node].L2Skipped, func(k v1beta1.L2Skip) bool {
				return k.IP == ip && k.Reason == "NoInterface" && k.Owner != node && k.Owner != ""
			}) {
				return fmt.Errorf("%s skips %v", node, st[node].L2Skipped)
			}
		}
		return nil
	})
	testkit.Holds(t, 10*time.Second, "every address answers from exactly one other node", func() error {
		return e.OneAnswerEach(ctx, ips, node)
	})

	// The route comes back: the node takes its addresses back, one move each.
	capt, err := e.Client.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	if err := e.RestoreNodeRoutes(ctx, node); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, node+" announces its addresses again", func() error {
		for _, ip := range pair {
			if o, err := e.Owners(ctx, ip); err != nil {
				return fmt.Errorf("%s: %w", ip, err)
			} else if !slices.Equal(o, []string{node}) {
				return fmt.Errorf("%s owned by %v", ip, o)
			}
		}
		return nil
	})
	if err := e.OneAnswerEach(ctx, ips); err != nil {
		t.Error(err)
	}
	msgs, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	holders := e.Holders(msgs, restored)
	for _, ip := range ips {
		if len(holders[ip]) > 1 {
			t.Errorf("%s held by %v in turn after the route came back, want one move at most", ip, holders[ip])
		}
	}
	t.Logf("holders after the route came back: %v", strings.ReplaceAll(fmt.Sprint(holders), "map", ""))
}
