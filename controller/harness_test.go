package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/controller/options"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit"
)

// harness is a real control plane plus clients that bypass any cache.
type harness struct {
	env          *testenv.Env
	reg          *netns.Registry // the control plane's processes and the controllers run as processes
	c            client.Client
	cs           kubernetes.Interface
	incarnations int
}

func newHarness(t *testing.T, opts ...testenv.Option) *harness {
	t.Helper()
	reg := netns.New(netns.UniquePrefix(), nil)
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Errorf("ending processes: %v", err)
		}
	})
	env := testenv.Start(t, append(opts, testenv.WithRegistry(reg))...)
	scheme, err := k8s.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{env: env, reg: reg, c: c, cs: cs}
	h.createNamespace(t, v1beta1.Namespace)
	return h
}

func (h *harness) createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := h.c.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// controllerOptions are the defaults for a test: no metrics or probe ports
// unless asked, quick leader election.
func (h *harness) controllerOptions() options.Options {
	o := options.Defaults()
	o.Kubeconfig = h.env.Kubeconfig
	o.Metrics.BindAddress = "0"
	o.HealthProbeBindAddress = "0"
	o.LogLevel = "debug"
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	return o
}

// runController runs one controller incarnation in-process, logging to
// logs/herald-controller-N.log in the control plane's folder, and returns a
// stop function that cancels it and waits until it has returned. Stop also
// runs at cleanup.
func (h *harness) runController(t *testing.T, o options.Options) (stop func()) {
	t.Helper()
	h.incarnations++
	name := fmt.Sprintf("herald-controller-%d", h.incarnations)
	f, err := os.Create(filepath.Join(h.env.Dir, "logs", name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	log := k8s.NewLogger(f, slog.LevelDebug)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, log, ctrlmetrics.Registry) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("controller returned: %v", err)
			}
		case <-time.After(30 * time.Second):
			// Which goroutine holds the shutdown is the one fact needed.
			buf := make([]byte, 1<<22)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("controller did not stop within 30s; goroutines:\n%s", buf)
		}
		if t.Failed() {
			t.Logf("last lines of %s.log:\n%s", name, h.env.LogTail(name, 40))
		}
	}
	t.Cleanup(func() { _ = f.Close() })
	t.Cleanup(stop)
	return stop
}

// waitLog waits until a line of the running controller incarnation's log
// holds every one of parts.
func (h *harness) waitLog(t *testing.T, parts ...string) {
	t.Helper()
	name := filepath.Join(h.env.Dir, "logs", fmt.Sprintf("herald-controller-%d.log", h.incarnations))
	eventually(t, 20*time.Second, fmt.Sprintf("a controller log line with %q", parts), func() (bool, string) {
		b, err := os.ReadFile(name)
		if err != nil {
			return false, err.Error()
		}
		for line := range strings.Lines(string(b)) {
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
				return true, ""
			}
		}
		return false, "no such line"
	})
}

// eventually waits with testkit.For until cond holds; cond's string says
// what it saw, for the failure.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testkit.For(t, timeout, what, func() error {
		if ok, seen := cond(); !ok {
			return fmt.Errorf("last seen: %s", seen)
		}
		return nil
	})
}

func describe(svc *corev1.Service) string {
	return fmt.Sprintf("ingress=%v conditions=%v", svc.Status.LoadBalancer.Ingress, svc.Status.Conditions)
}

// metricSum adds up the samples of a metric whose label set contains every
// one of labels (as `key="value"`); found is false when there is none.
func metricSum(body, name string, labels ...string) (sum float64, found bool) {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		series := line[:i]
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil || !match {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// waitIdle waits until the controller serving metrics on port has
// reconciled at least services Services and has nothing queued or running.
func waitIdle(t *testing.T, port int, services int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "controller idle", func() (bool, string) {
		body, err := scrapeBody(port)
		if err != nil {
			return false, err.Error()
		}
		done, _ := metricSum(body, "controller_runtime_reconcile_total", `controller="service"`)
		depth, ok1 := metricSum(body, "workqueue_depth", `name="service"`)
		active, ok2 := metricSum(body, "controller_runtime_active_workers", `controller="service"`)
		return ok1 && ok2 && done >= float64(services) && depth == 0 && active == 0,
			fmt.Sprintf("reconciled %v, queued %v, active %v", done, depth, active)
	})
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// TestMain removes the controller binary some tests build. It installs
// the process-wide loggers before any test runs, as main does before
// anything else: each in-process incarnation's UseLogger then only swaps
// where they write, while the tests' own clients log.
func TestMain(m *testing.M) {
	k8s.UseLogger(slog.New(slog.DiscardHandler))
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// controllerBinary builds herald-controller from this package, once per test run.
func controllerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "herald-controller-test"); buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "herald-controller"), ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "herald-controller")
}

// startProcess runs herald-controller as a process tracked by PID, logging
// to logs/<name>.log in the control plane's folder.
func (h *harness) startProcess(t *testing.T, name string, args ...string) *netns.Proc {
	t.Helper()
	bin := controllerBinary(t)
	p, err := h.reg.Start(nil, name, filepath.Join(h.env.Dir, "logs", name+".log"), nil, append([]string{bin}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("last lines of %s.log:\n%s", name, h.env.LogTail(name, 30))
		}
	})
	return p
}
