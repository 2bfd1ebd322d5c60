package l2

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/speaker/l2guard"
)

// The LAN client floods the owner of an address with ARP requests from a
// made-up MAC (arping without waiting between requests) while asking for
// the address itself now and then: the real speaker answers the flood's
// burst only, mutes the flooding MAC, spends a small part of a core and
// writes a few log lines, and the client's own requests are answered
// throughout. HERALD_FLOOD_SECONDS sets the flood's length (default 6).
func TestARPFloodFromTheLabClient(t *testing.T) {
	e := herald(t)
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "flood", Replicas: 1, Family: "IPv4"})
	ip := w.IPs[0]
	ctx := labtest.Context(t, 2*time.Minute)
	owner, err := e.WaitOwner(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	sp := e.Speaker(owner)
	secs := 6
	if s := os.Getenv("HERALD_FLOOD_SECONDS"); s != "" {
		if _, err := fmt.Sscan(s, &secs); err != nil {
			t.Fatalf("HERALD_FLOOD_SECONDS=%q: %v", s, err)
		}
	}
	lines := func() int {
		b, _ := os.ReadFile(sp.LogPath)
		return strings.Count(string(b), "\n")
	}
	answered := func() float64 {
		m, err := e.SpeakerMetrics(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := metricValue(m, `herald_l2_requests_answered_total{interface="eth0",protocol="arp"}`)
		return n
	}
	answered0 := answered()
	before, err := sp.Usage()
	if err != nil {
		t.Fatal(err)
	}
	lines0, t0 := lines(), time.Now()
	done := make(chan string, 1)
	go func() {
		// -W 0.00001: no real wait between requests (about 10,000 a second
		// here); -w bounds the run.
		out, _ := e.Client.Run(ctx, "arping", "-q", "-W", "0.00001", "-w", fmt.Sprint(secs), "-c", "100000000",
			"-s", "02:00:00:00:00:99", "-S", "10.0.0.99", "-i", "eth0", ip)
		done <- out
	}()
	time.Sleep(time.Second) // into the flood
	var asked [][]string
	for range 3 {
		ans, err := e.Answerers(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		asked = append(asked, ans)
	}
	<-done
	after, err := sp.Usage()
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Since(t0)
	share := (after.CPU - before.CPU).Seconds() / wall.Seconds()
	newLines := lines() - lines0
	replies := answered() - answered0
	t.Logf("MEASURE ARP flood of %d s from the lab client at %s's speaker: %.0f requests answered, %.1f%% of one core, %d log lines; the client's own requests answered by %v",
		secs, owner, replies, 100*share, newLines, asked)
	// The flooder's burst and at most a second at its rate before it is
	// muted, and the client's six requests.
	if limit := float64(l2guard.Burst + l2guard.Rate + 6); replies > limit {
		t.Errorf("%.0f requests answered during the flood, more than %.0f", replies, limit)
	}
	for _, ans := range asked {
		if !slices.Equal(ans, []string{owner}) {
			t.Errorf("during the flood the client's request was answered by %v, want %s", ans, owner)
		}
	}
	if share > 0.5 {
		t.Errorf("the speaker spent %.0f%% of a core during the flood", 100*share)
	}
	if newLines > secs/10+5 {
		t.Errorf("the speaker wrote %d log lines during the flood:\n%s", newLines, sp.LogTail(newLines))
	}
}
