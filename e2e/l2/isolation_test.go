package l2

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/speaker/members"
)

// readyz asks a node's speaker for its readiness (it listens on :7474 in
// the node's namespace) and returns the answer's status and body.
func (e *env) readyz(ctx context.Context, node string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:7474/readyz?verbose=1", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := lab.HTTPClient(e.Node(node).NS, 2*time.Second).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close() //nolint:errcheck // read only
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// A new node whose firewall drops the memberlist port (TCP and UDP, its
// input only, as a host firewall that forgot it) and whose speaker then
// restarts sees only itself, while the API server shows the other two
// speakers running: it takes nothing over. For 30 s every address answers
// ARP and NDP from exactly one MAC, the isolated node says why in its
// status, its readiness and an Event; once the port opens it joins, still
// one owner per address, and each of its own addresses moves back once.
func TestABlockedMemberlistPortTakesNothingOver(t *testing.T) {
	e := herald(t)
	ips := labtest.OwnedEverywhere(t, e.Herald, "iso", 120, 139)
	ctx := labtest.Context(t, 5*time.Minute)
	odd := e.Nodes[2].Name

	if err := e.BlockPort(ctx, odd, members.DefaultPort); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.UnblockPorts(context.Background(), odd) })
	restarted := time.Now()
	if err := e.Speaker(odd).Restart(); err != nil {
		t.Fatal(err)
	}
	// The sign the restarted speaker made up its mind: its status, written
	// after the restart, says what it sees and expects.
	testkit.For(t, time.Minute, odd+" reports it sees too few speakers", func() error {
		st, err := e.SpeakerStatuses(ctx)
		if err != nil {
			return err
		}
		s := st[odd]
		c := apimeta.FindStatusCondition(s.Conditions, "Ready")
		// It sees too few speakers (NoQuorum), or sees them through its own
		// connections but hears nothing back (Settling): either way it says
		// why, naming the memberlist port.
		if s.UpdatedAt == nil || s.UpdatedAt.Time.Before(restarted.Truncate(time.Second)) || c == nil || c.Status != "False" ||
			(c.Reason != "NoQuorum" && c.Reason != "Settling") || !strings.Contains(c.Message, "memberlist port") || s.MembersExpected != 3 || s.AnnouncedIPs != 0 {
			return fmt.Errorf("%s: alive %d expected %d ready %+v", odd, s.MembersAlive, s.MembersExpected, c)
		}
		return nil
	})
	if code, body, err := e.readyz(ctx, odd); err != nil || code == http.StatusOK {
		t.Errorf("%s's /readyz: %d %q (%v), want a failure", odd, code, body, err)
	}
	start := time.Now()
	rounds := 0
	testkit.Holds(t, 30*time.Second, "one answer per address while the port is blocked", func() error {
		rounds++
		return e.OneAnswerEach(ctx, ips, odd)
	})
	t.Logf("checked every address %d times in %v", rounds, time.Since(start).Round(time.Second))
	if err := e.Event(ctx, "", odd, "SpeakerIsolated", "memberlist port"); err != nil {
		t.Error(err)
	}

	// The port opens: the node joins, settles, and gets its own addresses
	// back, each in one move.
	capt, err := e.Client.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	if err := e.UnblockPorts(ctx, odd); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitMembers(ctx, 3); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, odd+" announces its own addresses again", func() error {
		for node, pair := range labtest.RankedAddrs(t, e.NodeNames(), 120, 139) {
			for _, ip := range pair {
				if o, err := e.Owners(ctx, ip); err != nil {
					return fmt.Errorf("%s: %w", ip, err)
				} else if !slices.Equal(o, []string{node}) {
					return fmt.Errorf("%s owned by %v, want %s", ip, o, node)
				}
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
	holders := e.Holders(msgs, opened)
	for _, ip := range ips {
		if len(holders[ip]) > 1 {
			t.Errorf("%s held by %v in turn after the port opened, want one move at most", ip, holders[ip])
		}
	}
	t.Logf("holders after the port opened: %v", holders)
}

// A speaker whose memberlist port is taken (a previous speaker still holds
// it, say) is not ready and says why on its Node within 10 s; it starts
// once the port is free.
func TestATakenMemberlistPortIsReported(t *testing.T) {
	e := herald(t)
	ctx := labtest.Context(t, 2*time.Minute)
	node := e.Nodes[1]
	if err := e.Speaker(node.Name).Terminate(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	holder, err := e.Reg.Start(node.NS, "port-holder", filepath.Join(e.Dir, "logs", "port-holder.log"), nil,
		"socat", fmt.Sprintf("TCP-LISTEN:%d,bind=%s,fork,reuseaddr", members.DefaultPort, node.IPv4), "EXEC:cat")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Kill() })
	if err := e.Speaker(node.Name).Start(); err != nil {
		t.Fatal(err)
	}
	took := testkit.For(t, 10*time.Second, "unready with an Event on the Node", func() error {
		code, body, err := e.readyz(ctx, node.Name)
		if err != nil {
			return err
		}
		if code == http.StatusOK {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		return e.Event(ctx, "", node.Name, "MemberlistFailed", "address already in use")
	})
	t.Logf("unready and reported %v after the start", took.Round(time.Millisecond))
	if err := holder.Kill(); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, "ready once the port is free", func() error {
		code, body, err := e.readyz(ctx, node.Name)
		if err != nil {
			return fmt.Errorf("/readyz: %w", err)
		}
		if code != http.StatusOK {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		return nil
	})
	if err := e.WaitMembers(ctx, len(e.Nodes)); err != nil {
		t.Fatal(err)
	}
}
