package l2

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMeasureIdleSpeaker measures what an idle speaker costs (CPU over 30 s
// and resident memory) with one dual-stack Service, for
// docs/benchmarks.md (Layer 2 failover). It runs only with HERALD_MEASURE=1:
//
//	HERALD_MEASURE=1 go test ./e2e/l2 -run TestMeasureIdleSpeaker -v
func TestMeasureIdleSpeaker(t *testing.T) {
	if os.Getenv("HERALD_MEASURE") != "1" {
		t.Skip("measurement: set HERALD_MEASURE=1")
	}
	e := herald(t)
	e.deploy(t, workloadSpec{name: "idle", replicas: 3})
	time.Sleep(5 * time.Second)
	const window = 30 * time.Second
	before := map[string]float64{}
	for _, n := range e.Nodes {
		before[n.Name] = cpuSeconds(t, e.Component(speakerN+n.Name).Proc().PID)
	}
	time.Sleep(window)
	for _, n := range e.Nodes {
		pid := e.Component(speakerN + n.Name).Proc().PID
		used := cpuSeconds(t, pid) - before[n.Name]
		t.Logf("%s: %.2f%% of one core over %v, RSS %s", n.Name, 100*used/window.Seconds(), window, rss(t, pid))
	}
}

// cpuSeconds reads a process's user plus system CPU time.
func cpuSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func rss(t *testing.T, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
