package split

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/testkit"
)

var shared labtest.Shared[*lab.Herald]

// A four-node cluster cut 2|2 between the nodes (memberlist, ARP and NDP
// between the halves all dropped at the switch): each half sees 2 of the 4
// speakers, which is no majority, so neither half takes over the other
// half's addresses; each keeps what it announced. At no moment does an
// address answer from two MACs.
//
// What clients see: the LAN client here is linked to both halves, so every
// address keeps answering from its owner throughout. A client that only
// reached one half would see that half's addresses answer and the other
// half's go silent until the cut heals (or until the API server, reachable
// from one half only, lets the other half's Leases expire: that half then
// holds a majority of the speakers the API server shows and takes over).
// Once healed every address is still with its owner: no address moves.
func TestAnEvenSplitTakesNothingOver(t *testing.T) {
	h := shared.Get(t, labtest.StartHerald)
	ctx := labtest.Context(t, 5*time.Minute)
	if err := h.WaitMembers(ctx, 4); err != nil {
		t.Fatal(err)
	}
	ips := labtest.OwnedEverywhere(t, h, "split", 120, 159)
	owners := map[string]string{}
	for _, ip := range ips {
		o, err := h.WaitOwner(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		owners[ip] = o
	}
	capt, err := h.Client.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := h.NodeNames()
	a, b := names[:2], names[2:]
	cut := time.Now()
	if err := h.Partition(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Heal(context.Background()) })
	// The sign that both halves noticed: every node says it sees 2 of 4.
	testkit.For(t, time.Minute, "every node reports the split", func() error {
		st, err := h.SpeakerStatuses(ctx)
		if err != nil {
			return err
		}
		for _, n := range names {
			c := apimeta.FindStatusCondition(st[n].Conditions, "Ready")
			if c == nil || c.Reason != "NoQuorum" || !strings.Contains(c.Message, "sees 2 of the 4") {
				return fmt.Errorf("%s: %+v", n, c)
			}
		}
		return nil
	})
	t.Logf("both halves saw the split %v after the cut", time.Since(cut).Round(time.Millisecond))
	testkit.Holds(t, 20*time.Second, "every address answers from its owner only", func() error {
		for _, ip := range ips {
			ans, err := h.Answerers(ctx, ip)
			if err != nil {
				return err
			}
			if !slices.Equal(ans, []string{owners[ip]}) {
				return fmt.Errorf("%s answered by %v, its owner is %s", ip, ans, owners[ip])
			}
		}
		return nil
	})
	healed := time.Now()
	if err := h.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitMembers(ctx, 4); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, "every node ready again", func() error {
		st, err := h.SpeakerStatuses(ctx)
		if err != nil {
			return err
		}
		for _, n := range names {
			if c := apimeta.FindStatusCondition(st[n].Conditions, "Ready"); c == nil || c.Status != "True" {
				return fmt.Errorf("%s: %+v", n, c)
			}
		}
		return nil
	})
	if err := h.OneAnswerEach(ctx, ips); err != nil {
		t.Error(err)
	}
	for _, ip := range ips {
		if o, err := h.Owners(ctx, ip); err != nil || !slices.Equal(o, []string{owners[ip]}) {
			t.Errorf("%s owned by %v after the heal (%v), was %s", ip, o, err, owners[ip])
		}
	}
	msgs, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	// Every message that claimed an address, from the cut on, came from
	// its owner.
	for ip, holders := range h.Holders(msgs, cut) {
		if slices.Contains(ips, ip) && !slices.Equal(holders, []string{owners[ip]}) {
			t.Errorf("%s claimed by %v after the cut, its owner is %s", ip, holders, owners[ip])
			for _, m := range msgs {
				if m.IP == ip && m.At.After(cut) && h.NodeOfMAC(m.MAC) != owners[ip] {
					t.Logf("  %s by %s at cut+%v (heal at cut+%v), gratuitous %v", ip, h.NodeOfMAC(m.MAC), m.At.Sub(cut).Round(time.Millisecond), healed.Sub(cut).Round(time.Millisecond), m.Gratuitous)
				}
			}
		}
	}
	t.Logf("cut %v, healed after %v", cut.Format(time.TimeOnly), time.Since(healed).Round(time.Millisecond))
}
