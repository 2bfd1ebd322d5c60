package install_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/deploy"
	"github.com/heraldlb/herald/internal/testenv"
	"github.com/heraldlb/herald/internal/testkit"
)

const ns = deploy.Namespace

// logMeasure prints a figure for docs/benchmarks.md.
func logMeasure(t *testing.T, name string, d time.Duration) {
	t.Helper()
	t.Logf("MEASURE %s %.2fs", name, d.Seconds())
}

// applySamples gives Herald its pools: the Layer 2 pool "lan", the routed
// pool "routed" with FRR and BIRD as peers.
func applySamples(t *testing.T, l *lab.Lab) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range []string{"ippools.yaml", "l2advertisement.yaml", "bgp.yaml"} {
		paths = append(paths, filepath.Join(root, "config", "samples", f))
	}
	if err := l.Apply(labtest.Context(t, time.Minute), paths...); err != nil {
		t.Fatal(err)
	}
}

// waitRollout waits until the controller Deployment and the speaker
// DaemonSet run their current template everywhere, all ready.
func waitRollout(t *testing.T, l *lab.Lab, d time.Duration) {
	t.Helper()
	ctx := labtest.Context(t, d)
	testkit.For(t, d, "Herald's Deployment and DaemonSet rolled out", func() error {
		dep, err := l.Kube.AppsV1().Deployments(ns).Get(ctx, "herald-controller", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := deploymentDone(dep); err != nil {
			return err
		}
		ds, err := l.Kube.AppsV1().DaemonSets(ns).Get(ctx, "herald-speaker", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return daemonSetDone(ds, len(l.Nodes))
	})
}

func deploymentDone(d *appsv1.Deployment) error {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != want || s.ReadyReplicas != want || s.Replicas != want {
		return fmt.Errorf("controller: %d/%d updated, %d ready, %d total", s.UpdatedReplicas, want, s.ReadyReplicas, s.Replicas)
	}
	return nil
}

func daemonSetDone(ds *appsv1.DaemonSet, nodes int) error {
	s := ds.Status
	if s.ObservedGeneration < ds.Generation || int(s.DesiredNumberScheduled) != nodes || s.UpdatedNumberScheduled != s.DesiredNumberScheduled ||
		s.NumberReady != s.DesiredNumberScheduled || s.NumberAvailable != s.DesiredNumberScheduled || s.NumberUnavailable != 0 {
		return fmt.Errorf("speaker: %d desired, %d updated, %d ready, %d available", s.DesiredNumberScheduled, s.UpdatedNumberScheduled, s.NumberReady, s.NumberAvailable)
	}
	return nil
}

// firstAnswer waits until a request from h to ip reaches a pod and returns when.
func firstAnswer(t *testing.T, h *lab.Host, ip string, d time.Duration) time.Time {
	t.Helper()
	ctx := labtest.Context(t, d)
	testkit.For(t, d, "a request to "+ip+" from "+h.Name+" is answered", func() error {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := h.Get(rctx, lab.URL(ip, 80))
		return err
	})
	return time.Now()
}

// nodeByMAC names the node whose LAN interface has mac.
func nodeByMAC(t *testing.T, l *lab.Lab, mac net.HardwareAddr) string {
	t.Helper()
	for _, n := range l.Nodes {
		m, err := n.MAC()
		if err != nil {
			t.Fatal(err)
		}
		if m.String() == mac.String() {
			return n.Name
		}
	}
	return ""
}

// capsOf reads a process's capability sets from /proc.
func capsOf(pid int) (map[string]uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb":
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				return nil, err
			}
			out[k] = n
		case "NoNewPrivs", "Seccomp":
			n, _ := strconv.ParseUint(v, 10, 64)
			out[k] = n
		case "Uid":
			f := strings.Fields(v)
			n, _ := strconv.ParseUint(f[0], 10, 64)
			out[k] = n
		}
	}
	return out, nil
}

// Linux capability numbers (include/uapi/linux/capability.h).
var capNumbers = map[string]uint{"NET_BIND_SERVICE": 10, "NET_ADMIN": 12, "NET_RAW": 13}

func capMask(names []corev1.Capability) uint64 {
	var m uint64
	for _, n := range names {
		if bit, ok := capNumbers[string(n)]; ok {
			m |= 1 << bit
		} else {
			m |= 1 << 63 // unknown here: never matches a process's set
		}
	}
	return m
}

// shippedDaemonSet is the speaker DaemonSet as the chart renders it with
// its defaults.
func shippedDaemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	ch, err := deploy.LoadChart("")
	if err != nil {
		t.Fatal(err)
	}
	out, err := deploy.RenderChart(ch, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(out, "\n---") {
		if strings.Contains(doc, "kind: DaemonSet") {
			var ds appsv1.DaemonSet
			if err := yaml.Unmarshal([]byte(doc), &ds); err != nil {
				t.Fatal(err)
			}
			return &ds
		}
	}
	t.Fatal("the chart renders no DaemonSet")
	return nil
}

// gone waits until get reports NotFound.
func gone(t *testing.T, d time.Duration, what string, get func(context.Context) error) {
	t.Helper()
	ctx := labtest.Context(t, d)
	testkit.For(t, d, what+" is gone", func() error {
		err := get(ctx)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err == nil {
			err = errors.New("still there")
		}
		return err
	})
}

func addrOf(t *testing.T, s string) netip.Addr {
	t.Helper()
	return mustAddr(t, s)
}
