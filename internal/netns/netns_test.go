package netns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNamespacesLinksAndProcessesAreRemoved(t *testing.T) {
	if err := RequireRoot(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	reg := New(UniquePrefix(), nil)
	t.Cleanup(func() { _ = reg.Close() })

	a, err := reg.Add(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := reg.Add(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Veth(ctx, a, "eth0", b, "eth0"); err != nil {
		t.Fatal(err)
	}
	a.MustRun(ctx, "ip", "addr", "add", "10.99.0.1/24", "dev", "eth0")
	b.MustRun(ctx, "ip", "addr", "add", "10.99.0.2/24", "dev", "eth0")
	if out, err := a.Run(ctx, "ping", "-c1", "-W2", "10.99.0.2"); err != nil {
		t.Fatalf("ping across the veth failed: %v\n%s", err, out)
	}
	p, err := reg.Start(b, "sleeper", "", nil, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// A function run with Do sees the namespace's interfaces, not the host's.
	var links string
	if err := b.Do(func() error {
		out, err := run(ctx, "ip", "-o", "addr", "show", "dev", "eth0")
		links = out
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(links, "10.99.0.2") {
		t.Fatalf("Do did not run inside %s: %q", b.Name, links)
	}

	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a stopped process survived Close")
	}
	left, err := Leftovers(reg.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("left behind after Close: %v", left)
	}
}

func TestRemoveDeletesOneNamespaceAndItsProcesses(t *testing.T) {
	if err := RequireRoot(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	reg := New(UniquePrefix(), nil)
	t.Cleanup(func() { _ = reg.Close() })
	keep, err := reg.Add(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := reg.Add(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	p, err := reg.Start(gone, "sleeper", "", nil, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Remove(ctx, gone); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a process inside a removed namespace survived")
	}
	out, _ := run(ctx, "ip", "netns", "list")
	if strings.Contains(out, gone.Name) || !strings.Contains(out, keep.Name) {
		t.Fatalf("after Remove(%s) the namespaces are:\n%s", gone.Name, out)
	}
}

func TestOwnerTellsALiveRunFromACrashedOne(t *testing.T) {
	if err := RequireRoot(); err != nil {
		t.Skip(err)
	}
	reg := New(UniquePrefix(), nil)
	t.Cleanup(func() { _ = reg.Close() })
	if pid, _ := Owner(reg.Prefix()); pid != 0 {
		t.Fatalf("owner %d recorded before the run made anything", pid)
	}
	// The first namespace records the owner, so every run can be cleaned up.
	if _, err := reg.Add(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	if pid, alive := Owner(reg.Prefix()); pid != os.Getpid() || !alive {
		t.Fatalf("Owner = %d, %v; want this process (%d), alive", pid, alive, os.Getpid())
	}
	// A record naming a process that has ended (or a reused PID) is not alive.
	if err := os.WriteFile(filepath.Join(reg.StateDir(), ownerFile), []byte(fmt.Sprintf("%d 1\n", os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, alive := Owner(reg.Prefix()); alive {
		t.Fatal("an owner record with another start time counts as alive")
	}
}

func TestCgroupsAndMountNamespacesAreRemoved(t *testing.T) {
	if err := RequireRoot(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	reg := New(UniquePrefix(), nil)
	t.Cleanup(func() { _ = reg.Close() })
	cg, err := reg.AddCgroup("node")
	if err != nil {
		t.Fatal(err)
	}
	m, err := reg.AddMountNS(ctx, "node")
	if err != nil {
		t.Fatal(err)
	}
	// A mount made inside stays inside.
	if out, err := m.Run(ctx, "sh", "-c", "mount -t tmpfs herald-test /mnt && grep -c herald-test /proc/self/mountinfo"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("mount inside the namespace: %q, %v", out, err)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), "herald-test") {
		t.Fatal("a mount made in the run's mount namespace shows in the caller's")
	}
	// A process the run did not track (a container, say) that sits in the
	// run's cgroup is ended by Close.
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	if err := cg.Join(cmd.Process.Pid, "child", "pids"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a process in the run's cgroup survived Close")
	}
	left, err := Leftovers(reg.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("left behind after Close: %v", left)
	}
}
