package lab_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
)

func TestFailureToolsCutPartitionAndDropTraffic(t *testing.T) {
	l := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n1, n2, n3 := l.Nodes[0], l.Nodes[1], l.Nodes[2]
	reachable := func(from *lab.Host, to string) bool {
		_, err := from.Run(ctx, "ping", "-c1", "-W1", to)
		return err == nil
	}

	if err := l.CutLink(ctx, n2.Name); err != nil {
		t.Fatal(err)
	}
	if reachable(l.Client, n2.IPv4.String()) {
		t.Errorf("client still reaches %s over IPv4 after CutLink", n2.Name)
	}
	if err := l.RestoreLink(ctx, n2.Name); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, func() bool { return reachable(l.Client, n2.IPv6.String()) }); err != nil {
		t.Errorf("client does not reach %s over IPv6 after RestoreLink", n2.Name)
	}

	if err := l.Partition(ctx, []string{n1.Name}, []string{n2.Name}); err != nil {
		t.Fatal(err)
	}
	if reachable(&n1.Host, n2.IPv4.String()) || reachable(&n2.Host, n1.IPv6.String()) {
		t.Errorf("%s and %s still reach each other across a partition", n1.Name, n2.Name)
	}
	if !reachable(&n1.Host, l.Client.IPv4.String()) || !reachable(&n2.Host, n3.IPv6.String()) {
		t.Errorf("a partition between %s and %s cut other paths too", n1.Name, n2.Name)
	}
	if err := l.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	// A neighbour entry left half-resolved by the partition retries within a second.
	if err := waitFor(ctx, func() bool { return reachable(&n1.Host, n2.IPv4.String()) }); err != nil {
		t.Errorf("%s does not reach %s after Heal", n1.Name, n2.Name)
	}

	// 50% each way: about a quarter of the echo requests come back. The
	// client learns n3's MAC first, so ARP under loss does not skew the count.
	if !reachable(l.Client, n3.IPv4.String()) {
		t.Fatalf("client does not reach %s before the loss test", n3.Name)
	}
	if err := l.SetLoss(ctx, n3.Name, 50); err != nil {
		t.Fatal(err)
	}
	out, _ := l.Client.Run(ctx, "ping", "-q", "-c", "100", "-i", "0.005", "-W", "1", n3.IPv4.String())
	if got := received(out); got < 5 || got > 60 {
		t.Errorf("with 50%% loss each way, %d of 100 pings came back; want about 25\n%s", got, out)
	}
	if err := l.SetLoss(ctx, n3.Name, 100); err != nil {
		t.Fatal(err)
	}
	if reachable(l.Client, n3.IPv4.String()) {
		t.Errorf("100%% loss on %s still lets a ping through", n3.Name)
	}
	if err := l.SetLoss(ctx, n3.Name, 0); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, func() bool { return reachable(l.Client, n3.IPv4.String()) }); err != nil {
		t.Errorf("client does not reach %s after the loss was removed", n3.Name)
	}
}

func received(pingOut string) int {
	for _, line := range strings.Split(pingOut, "\n") {
		if _, rest, ok := strings.Cut(line, "transmitted, "); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	return -1
}

// Components run where they are told, reach the API server (the speaker
// through the node-local proxy), and obey kill, pause, resume and restart.
func TestComponentsReachTheAPIServerAndObeySignals(t *testing.T) {
	l := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kubectl := l.Env.BinDir + "/kubectl"
	ctrl, err := l.StartController(lab.ComponentSpec{Binary: kubectl, Args: []string{"--kubeconfig={kubeconfig}", "get", "nodes", "-o", "name"}})
	if err != nil {
		t.Fatal(err)
	}
	spk, err := l.StartSpeaker("node2", lab.ComponentSpec{Binary: "sh", Args: []string{"-c",
		kubectl + " get nodes -o name && echo me={node} ip={nodeIPv4} env=$NODE_NAME && exec sleep 300"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = spk.Stop() })
	if err := waitFor(ctx, func() bool { return strings.Contains(ctrl.LogTail(10), "node/node3") }); err != nil {
		t.Fatalf("controller (kubectl on the host) did not list the nodes:\n%s", ctrl.LogTail(10))
	}
	if err := waitFor(ctx, func() bool { return strings.Contains(spk.LogTail(10), "me=node2 ip=10.0.0.12 env=node2") }); err != nil {
		t.Fatalf("speaker on node2 did not list the nodes through the node-local API proxy or expand its args:\n%s", spk.LogTail(10))
	}
	if !strings.Contains(spk.LogTail(10), "node/node1") {
		t.Fatalf("speaker on node2 did not reach the API server:\n%s", spk.LogTail(10))
	}
	// It runs inside node2's network namespace.
	want, _ := os.Stat(l.Node("node2").NS.Path())
	got, err := os.Stat("/proc/" + strconv.Itoa(spk.Proc().PID) + "/ns/net")
	if err != nil || !os.SameFile(want, got) {
		t.Fatalf("speaker pid %d is not in node2's namespace (%v)", spk.Proc().PID, err)
	}

	if err := spk.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, func() bool { return procState(spk.Proc().PID) == "T" }); err != nil {
		t.Errorf("after Pause the speaker's state is %q, want T (stopped)", procState(spk.Proc().PID))
	}
	if err := spk.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, func() bool { return procState(spk.Proc().PID) != "T" }); err != nil {
		t.Errorf("after Resume the speaker is still stopped")
	}
	first := spk.Proc()
	if err := spk.Restart(); err != nil {
		t.Fatal(err)
	}
	if !first.Exited() || spk.Proc().PID == first.PID || !spk.Running() {
		t.Fatalf("Restart: old pid %d exited=%v, new pid %d running=%v", first.PID, first.Exited(), spk.Proc().PID, spk.Running())
	}
	if err := spk.Kill(); err != nil {
		t.Fatal(err)
	}
	if spk.Running() {
		t.Fatal("speaker still running after Kill")
	}
	if err := spk.Kill(); err == nil {
		t.Error("Kill of a dead component should say it is not running")
	}
	if err := spk.Start(); err != nil {
		t.Fatal(err)
	}
	if err := spk.Terminate(2 * time.Second); err != nil || spk.Running() {
		t.Fatalf("Terminate: %v, running=%v", err, spk.Running())
	}
	if ws, ok := spk.Proc().Cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
		t.Errorf("Terminate should end the process with SIGTERM, got %v", spk.Proc().Cmd.ProcessState)
	}
}

func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0]
}
