package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

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
	waitFor(t, 5*time.Second, "invalid router ID reported", func() error {
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
	waitFor(t, 5*time.Second, "rejected peer shown, the peer that is gone forgotten", func() error {
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
