// Package labtest shares one lab among all tests of a package, since each
// lab costs a control plane. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(labtest.Main(m, lab.Options{})) }
//
//	func TestSomething(t *testing.T) {
//		l := labtest.Lab(t) // started on first use, closed after the last test
//		...
//	}
//
// The lab starts only when a test asks for it, so `go test -run Unit` costs
// nothing. It is closed after m.Run, on SIGINT/SIGTERM, and shortly before
// the -timeout deadline (whose panic would otherwise leave it behind).
// HERALD_KEEP_LAB_DIR=1 keeps the lab's folder (logs of the components,
// probes, routers) after the run.
//
// The rest are conveniences for suites that run Herald in the lab: its
// binaries built once (Binaries, StartHerald), something started once per
// package (Shared), workloads removed after the test (Deploy), a deadline
// for a test's requests (Context) and the measurement switch (Measuring).
// Tests wait with internal/testkit.
package labtest

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/netns"
)

var (
	mu      sync.Mutex
	opts    lab.Options
	shared  *lab.Lab
	failure error
	closed  bool
)

// Main runs the tests with a shared lab built from o and returns the exit code.
func Main(m *testing.M, o lab.Options) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	if os.Getenv("HERALD_KEEP_LAB_DIR") == "1" {
		o.KeepDir = true
	}
	mu.Lock()
	opts = o
	mu.Unlock()
	if o.Log == nil && testing.Verbose() {
		opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		if s, ok := <-sig; ok {
			fmt.Fprintf(os.Stderr, "labtest: %v: closing the lab\n", s)
			closeShared()
			removeBinaries()
			os.Exit(130)
		}
	}()
	if d := testTimeout(); d > 0 {
		margin := min(30*time.Second, d/10)
		t := time.AfterFunc(d-margin, func() {
			fmt.Fprintf(os.Stderr, "labtest: -timeout %v nearly reached: closing the lab before the test binary panics\n", d)
			closeShared()
		})
		defer t.Stop()
	}
	code := m.Run()
	closeShared()
	removeBinaries()
	return code
}

func testTimeout() time.Duration {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return 0
	}
	d, _ := time.ParseDuration(f.Value.String())
	return d
}

func closeShared() {
	mu.Lock()
	defer mu.Unlock()
	closed = true
	if shared != nil {
		if err := shared.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "labtest: closing the lab:", err)
		}
		shared = nil
	}
}

// Lab returns the package's shared lab, starting it on first use. It skips
// the test without root, fails it if the lab cannot start (every later test
// fails at once with the same error), and after the test clears any faults
// it left (partitions, loss, cut links). When the test failed it logs the
// tail of each Herald component's log.
func Lab(t testing.TB) *lab.Lab {
	t.Helper()
	if err := netns.RequireRoot(); err != nil {
		t.Skip("the lab needs root:", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if closed {
		t.Fatal("labtest: the shared lab is closed (was labtest.Main used in TestMain, and is the -timeout near?)")
	}
	if shared == nil && failure == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		shared, failure = lab.Start(ctx, opts)
		cancel()
		if failure == nil {
			t.Logf("lab %s up in %v (dir %s)", shared.Prefix, shared.StartupTime.Round(time.Millisecond), shared.Dir)
		}
	}
	if failure != nil {
		t.Fatalf("labtest: the lab did not start: %v", failure)
	}
	l := shared
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range l.Components() {
				t.Logf("last lines of %s (%s):\n%s", c.Name, c.LogPath, c.LogTail(20))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.ClearFaults(ctx); err != nil {
			t.Errorf("labtest: clearing faults after the test: %v", err)
		}
	})
	return l
}

// Namespace creates namespace name for the test and deletes it, with
// everything in it, when the test ends (waiting up to 5 minutes: the
// namespace controller deletes Services one by one).
func Namespace(t testing.TB, l *lab.Lab, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := l.Delete(ctx, &lab.Workload{Namespace: name}); err != nil {
			t.Logf("labtest: deleting namespace %s: %v", name, err)
		}
	})
}

// SpeakerMemory says each speaker's resident memory now and at its peak.
func SpeakerMemory(t testing.TB, l *lab.Lab) string {
	t.Helper()
	m, err := l.SpeakerMemory()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// WithoutKubeProxy stops every node's kube-proxy until the test ends: with
// thousands of Services it would program each of them on every node, on
// the same 2 cores, and the test would measure it.
func WithoutKubeProxy(t testing.TB, l *lab.Lab) {
	t.Helper()
	for _, node := range l.Nodes {
		if err := node.KubeProxy.Terminate(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = node.KubeProxy.Start() })
	}
}
