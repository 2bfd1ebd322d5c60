package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRunWithoutPeersAndInvalidConfig: Set never blocks; an invalid router
// ID is reported in the peers' status instead of starting gobgp; Run
// returns nil at once on cancel and leaves the metrics registry clean.
func TestRunWithoutPeersAndInvalidConfig(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(Options{Registerer: reg, StatusInterval: 10 * time.Millisecond})
	for range 100 {
		r.Set(Desired{}) // never blocks, even before Run
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	r.Set(Desired{Peers: []Peer{{Name: "a", Address: netip.MustParseAddr("10.0.0.1"), MyASN: 1, PeerASN: 2}}})
	testkit.For(t, 5*time.Second, "invalid router ID reported", func() error {
		st := r.Status()
		if len(st) != 1 || !strings.Contains(st[0].LastError, "router ID") || st[0].Established() {
			return errStillUp
		}
		return nil
	})
	if n, err := testutil.GatherAndCount(reg, "herald_bgp_session_up"); err != nil || n != 1 {
		t.Fatalf("session_up series: %d %v", n, err)
	}
	r.Set(Desired{Peers: []Peer{{Name: "bad"}}, RouterID: routerID})
	testkit.For(t, 5*time.Second, "rejected peer shown, the peer that is gone forgotten", func() error {
		st := r.Status()
		if len(st) != 1 || st[0].Name != "bad" || st[0].State != StateInvalid || !strings.Contains(st[0].LastError, "no address") {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Fatalf("metrics still registered after Run: %d", n)
	}
}

// TestConnectionRefusedAndPeerRemoval runs gobgp in-process against a
// loopback port nobody listens on: Status reports "connection refused", a
// new router ID restarts gobgp with the same peer, and removing the peer
// (its VRF with it) leaves an empty status.
func TestConnectionRefusedAndPeerRemoval(t *testing.T) {
	r := New(Options{StatusInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	p := Peer{Name: "nobody", Address: netip.MustParseAddr("127.0.0.1"), Port: 1, MyASN: 64513, PeerASN: 64512, ConnectTime: time.Second}
	r.Set(Desired{RouterID: routerID, Peers: []Peer{p}, Paths: map[string][]Path{"nobody": {{Prefix: vip4}, {Prefix: vip6}}}})
	testkit.For(t, 10*time.Second, "connection refused in status", func() error {
		st := r.Status()
		if len(st) != 1 || !strings.Contains(st[0].LastError, "connection refused") {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	// A new router ID restarts gobgp with the same peers and paths.
	restart := time.Now()
	r.Set(Desired{RouterID: netip.MustParseAddr("10.9.9.9"), Peers: []Peer{p}, Paths: map[string][]Path{"nobody": {{Prefix: vip4}}}})
	testkit.For(t, 10*time.Second, "peer back after the restart", func() error {
		st := r.Status()
		if len(st) != 1 || st[0].Name != "nobody" || st[0].Since.Before(restart) || !strings.Contains(st[0].LastError, "connection refused") {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	r.Set(Desired{RouterID: routerID})
	testkit.For(t, 5*time.Second, "peer gone", func() error {
		if st := r.Status(); len(st) != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
}
