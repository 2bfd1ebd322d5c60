package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
)

// addBlackholes adds n host routes (blackholes, from 100.64.0.0 up) to
// ns's kernel table in one batch, for FRR to redistribute.
func addBlackholes(ctx context.Context, t testing.TB, ns *netns.NS, n int) {
	t.Helper()
	var b strings.Builder
	base := netip.MustParseAddr("100.64.0.0").As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	for i := range n {
		a := v + uint32(i)
		fmt.Fprintf(&b, "route add blackhole %d.%d.%d.%d/32\n", a>>24, a>>16&0xff, a>>8&0xff, a&0xff)
	}
	f, err := os.CreateTemp(t.TempDir(), "routes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := ns.Run(ctx, "ip", "-batch", f.Name()); err != nil {
		t.Fatalf("adding %d routes: %v %s", n, err, out)
	}
}

// A router that leaks a full table to a node: FRR announces 100,000
// prefixes (HERALD_LEAK_PREFIXES changes the number). The session ends with
// a Cease as soon as the node's limit is passed, the speaker's memory
// stays near where it was, the status says why, and once the router sends
// only what it should, the session comes back and the node's route is at
// FRR again.
func TestReceivedPrefixLimit(t *testing.T) {
	leak := 100000
	if s := os.Getenv("HERALD_LEAK_PREFIXES"); s != "" {
		leak, _ = strconv.Atoi(s)
	}
	l := newLab(t)
	ctx := l.ctx
	frr := l.startFRR(t, frrNeighbor(nodeV4, nodeASN))
	sp := startSpeakerWith(t, l.reg, l.node, "speaker", "HERALD_BGP_TEST_PREFIX_LIMIT_RETRY=3s")
	d := Desired{RouterID: routerID, Peers: []Peer{nodePeer("tor", frrV4)}, Paths: map[string][]Path{"tor": {{Prefix: vip4}}}}
	sp.set(t, d)
	waitEstablished(ctx, t, frr, nodeV4)
	testkit.For(t, 10*time.Second, "route at FRR", func() error { _, err := frrPathFrom(ctx, frr, vip4, nodeV4); return err })
	rssBefore := sp.rssKiB()

	// Peak memory while the leak runs, sampled every 50 ms.
	peak := make(chan int, 1)
	sampling, stopSampling := context.WithCancel(ctx)
	go func() {
		peakKiB := 0
		for sampling.Err() == nil {
			peakKiB = max(peakKiB, sp.rssKiB())
			time.Sleep(50 * time.Millisecond)
		}
		peak <- peakKiB
	}()
	addBlackholes(ctx, t, l.frr, leak)
	if err := frr.Configure(ctx, fmt.Sprintf("router bgp %d", routerASN), "address-family ipv4 unicast", "redistribute kernel"); err != nil {
		t.Fatal(err)
	}
	var st PeerStatus
	// FRR needs a few seconds for 100,000 kernel routes on a busy machine.
	took := testkit.For(t, 2*time.Minute, "session down for its prefix limit", func() error {
		s, err := sp.status()
		if err != nil {
			return err
		}
		st = s["tor"]
		if st.Established() || !strings.Contains(st.LastError, fmt.Sprintf("more than %d prefixes", DefaultMaxReceivedPrefixes)) {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	// Hold on long enough for a slow leak to show in memory, then settle.
	time.Sleep(2 * time.Second)
	stopSampling()
	rssPeak := <-peak
	// FRR says what the NOTIFICATION it got was about.
	frrSays, err := frr.Vtysh(ctx, "show bgp neighbors "+nodeV4.String())
	if err != nil {
		t.Fatal(err)
	}
	var lastNotification string
	for _, line := range strings.Split(frrSays, "\n") {
		if strings.Contains(line, "Notification") || strings.Contains(line, "notification") {
			lastNotification += strings.TrimSpace(line) + "; "
		}
	}
	t.Logf("MEASURE leak of %d prefixes: session down %v after the leak began; speaker RSS %d MiB before, %d MiB at most; status %q; FRR: %q",
		leak, took.Round(time.Millisecond), rssBefore/1024, rssPeak/1024, st.LastError, lastNotification)
	if !strings.Contains(lastNotification, "Maximum Number of Prefixes Reached") {
		t.Errorf("FRR did not get a Cease for the prefix limit: %q", lastNotification)
	}
	// Without the limit the leak adds about 106 MiB (memoryScale times that
	// under the race detector); with it 29-47 MiB.
	if rssPeak-rssBefore > 80*1024*memoryScale {
		t.Errorf("speaker RSS grew from %d to %d MiB", rssBefore/1024, rssPeak/1024)
	}

	// The router stops leaking: the session returns after the retry delay
	// and stays, and FRR has the node's route again.
	if err := frr.Configure(ctx, fmt.Sprintf("router bgp %d", routerASN), "address-family ipv4 unicast", "no redistribute kernel"); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 30*time.Second, "session back after the leak stopped", func() error {
		s, err := sp.status()
		if err != nil {
			return err
		}
		if !s["tor"].Established() {
			return fmt.Errorf("status %+v", s["tor"])
		}
		_, err = frrPathFrom(ctx, frr, vip4, nodeV4)
		return err
	})
}
