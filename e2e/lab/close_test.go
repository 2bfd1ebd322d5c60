package lab_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/netns"
)

// A lab of its own (not the shared one): after Close no namespace, process
// or run directory of it is left.
func TestCloseLeavesNoNamespaceOrProcess(t *testing.T) {
	if err := netns.RequireRoot(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, lab.Options{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = l.Close()
		}
	})
	if l.StartupTime > time.Minute {
		t.Errorf("the lab took %v to start; it should take seconds", l.StartupTime)
	}
	// Something in every kind of namespace and process: a pod, a component.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", Labels: map[string]string{"app": "p"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}
	if _, err := l.Kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitReadyPods(ctx, "default", "app=p", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartSpeaker("node1", lab.ComponentSpec{Binary: "sleep", Args: []string{"300"}}); err != nil {
		t.Fatal(err)
	}
	procs := append(l.Env.Procs(), l.Pod("default", "p").Proc, l.Component("speaker-node1").Proc(), l.Nodes[0].KubeProxy.Proc())
	if l.FRR.FRR != nil {
		for name, pid := range l.FRR.FRR.PIDs() {
			procs = append(procs, &netns.Proc{Name: "frr " + name, PID: pid})
		}
	}

	closed = true
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	left, err := netns.Leftovers(l.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left behind after Close: %v", left)
	}
	for _, p := range procs {
		if _, err := os.Stat("/proc/" + itoa(p.PID)); err == nil && !zombieOrGone(p.PID) {
			t.Errorf("%s (pid %d) still runs after Close", p.Name, p.PID)
		}
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Errorf("run directory %s still exists after Close (%v)", l.Dir, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func zombieOrGone(pid int) bool {
	s := procState(pid)
	return s == "" || s == "Z"
}
