package lab

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// kubelet plays the kubelet for every lab node: it runs each Pod bound to a
// lab node as a namespace with an echo backend and reports the Pod's status
// (IPs, Ready, container states), so the real EndpointSlice controller and
// kube-proxy do the rest. It is level-based: every event requeues the pod's
// key and sync compares the Pod object with what runs.
type kubelet struct {
	lab    *Lab
	cs     kubernetes.Interface
	echo   []string // the backend command, pod flags are appended
	queue  workqueue.TypedRateLimitingInterface[string]
	lister corelisters.PodLister

	mu      sync.Mutex
	pods    map[string]*Pod
	unready map[string]bool // pods a test made unready
	used    map[string]map[int]bool
	seq     int
}

func newKubelet(l *Lab, echo []string) *kubelet {
	return &kubelet{
		lab: l, cs: l.Kube, echo: echo,
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		pods:    map[string]*Pod{},
		unready: map[string]bool{},
		used:    map[string]map[int]bool{},
	}
}

// run watches bound Pods and syncs them with a few workers until ctx ends.
func (k *kubelet) run(ctx context.Context, ready chan<- struct{}) {
	factory := informers.NewSharedInformerFactoryWithOptions(k.cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName!=" }))
	inf := factory.Core().V1().Pods()
	k.lister = inf.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			k.queue.Add(key)
		}
	}
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }, DeleteFunc: enqueue,
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	close(ready)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	k.queue.ShutDown()
	wg.Wait()
	factory.Shutdown()
}

func (k *kubelet) next(ctx context.Context) bool {
	key, quit := k.queue.Get()
	if quit {
		return false
	}
	defer k.queue.Done(key)
	if err := k.sync(ctx, key); err != nil {
		if ctx.Err() == nil && !apierrors.IsConflict(err) {
			k.lab.log.Warn("lab kubelet: sync pod", "pod", key, "err", err)
		}
		k.queue.AddRateLimited(key)
		return true
	}
	k.queue.Forget(key)
	return true
}

func (k *kubelet) sync(ctx context.Context, key string) error {
	namespace, name, _ := cache.SplitMetaNamespaceKey(key)
	pod, err := k.lister.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		pod, err = nil, nil
	}
	if err != nil {
		return err
	}
	k.mu.Lock()
	lp := k.pods[key]
	k.mu.Unlock()
	if lp != nil && (pod == nil || string(pod.UID) != lp.uid) {
		k.remove(key, lp)
		lp = nil
	}
	if pod == nil {
		return nil
	}
	n := k.lab.Node(pod.Spec.NodeName)
	if n == nil {
		return nil // bound to a node that is not ours
	}
	if pod.DeletionTimestamp != nil {
		if lp != nil {
			k.remove(key, lp)
		}
		// Like a kubelet once the containers are gone: remove the object for good.
		err := k.cs.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if pod.Spec.HostNetwork && lp == nil {
		// The echo backend cannot stand in for a host-network program (a
		// speaker DaemonSet, say): such pods stay Pending. Herald's own
		// processes run as lab Components (StartSpeaker) instead.
		k.lab.log.Info("lab kubelet: not running host-network pod", "pod", key, "node", n.Name)
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		if lp != nil {
			k.remove(key, lp)
		}
		return nil
	}
	if lp == nil {
		if lp, err = k.start(ctx, pod, n); err != nil {
			return err
		}
	}
	return k.writeStatus(ctx, pod, lp)
}

func (k *kubelet) start(ctx context.Context, pod *corev1.Pod, n *Node) (*Pod, error) {
	k.mu.Lock()
	used := k.used[n.Name]
	if used == nil {
		used = map[int]bool{}
		k.used[n.Name] = used
	}
	index := 0
	for i := 2; i < 255; i++ {
		if !used[i] {
			index = i
			break
		}
	}
	if index == 0 {
		k.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrPodCIDRFull, n.Name)
	}
	used[index] = true
	k.seq++
	seq := k.seq
	k.mu.Unlock()

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lp, err := k.setupPod(sctx, pod, n, index, seq)
	if err != nil {
		k.release(n, index)
		return nil, err
	}
	key := lp.Key
	k.mu.Lock()
	k.pods[key] = lp
	k.mu.Unlock()
	go func() {
		<-lp.Proc.Done() // a dead backend makes the pod unready
		k.queue.Add(key)
	}()
	return lp, nil
}

func (k *kubelet) release(n *Node, index int) {
	k.mu.Lock()
	delete(k.used[n.Name], index)
	k.mu.Unlock()
}

func (k *kubelet) remove(key string, lp *Pod) {
	k.mu.Lock()
	if k.pods[key] == lp {
		delete(k.pods, key)
	}
	k.mu.Unlock()
	k.teardownPod(lp)
	k.release(lp.Node, lp.index)
}

func (k *kubelet) writeStatus(ctx context.Context, pod *corev1.Pod, lp *Pod) error {
	k.mu.Lock()
	ready := !k.unready[lp.Key] && !lp.Proc.Exited()
	k.mu.Unlock()
	want := desiredStatus(pod, lp, ready)
	if statusMatches(pod.Status, want) {
		return nil
	}
	p := pod.DeepCopy()
	p.Status = want
	_, err := k.cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

// pod returns the running pod for key (nil if the lab does not run it).
func (k *kubelet) pod(key string) *Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pods[key]
}

func (k *kubelet) setUnready(key string, unready bool) {
	k.mu.Lock()
	if unready {
		k.unready[key] = true
	} else {
		delete(k.unready, key)
	}
	k.mu.Unlock()
	k.queue.Add(key)
}

func now() metav1.Time { return metav1.NewTime(time.Now().Truncate(time.Second)) }

// desiredStatus is the status a kubelet would report for the running pod.
// Times are whole seconds, as they are stored, so an unchanged status
// compares equal after the round trip.
func desiredStatus(pod *corev1.Pod, lp *Pod, ready bool) corev1.PodStatus {
	st := *pod.Status.DeepCopy()
	st.Phase = corev1.PodRunning
	st.HostIP = lp.Node.IPv4.String()
	st.HostIPs = []corev1.HostIP{{IP: lp.Node.IPv4.String()}, {IP: lp.Node.IPv6.String()}}
	st.PodIP = lp.IPv4.String()
	st.PodIPs = []corev1.PodIP{{IP: lp.IPv4.String()}, {IP: lp.IPv6.String()}}
	started := metav1.NewTime(lp.started.Truncate(time.Second))
	st.StartTime = &started
	alive := !lp.Proc.Exited()
	setCondition(&st, corev1.PodReadyToStartContainers, true)
	setCondition(&st, corev1.PodInitialized, true)
	setCondition(&st, corev1.ContainersReady, ready)
	setCondition(&st, corev1.PodReady, ready)
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "lab.herald.dev/echo",
			ContainerID: "lab://" + strconv.Itoa(lp.Proc.PID),
			Ready:       ready, Started: &alive,
		}
		if alive {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: started}
		} else {
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error", StartedAt: started, FinishedAt: now()}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	return st
}

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, ok bool) {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
	}
	for i, c := range st.Conditions {
		if c.Type == t {
			if c.Status != status {
				st.Conditions[i].Status, st.Conditions[i].LastTransitionTime = status, now()
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: status, LastTransitionTime: now()})
}

// statusMatches compares what the lab reports and ignores fields the API
// server or others may add.
func statusMatches(cur, want corev1.PodStatus) bool {
	if cur.Phase != want.Phase || cur.PodIP != want.PodIP || len(cur.PodIPs) != len(want.PodIPs) ||
		len(cur.HostIPs) != len(want.HostIPs) || len(cur.ContainerStatuses) != len(want.ContainerStatuses) {
		return false
	}
	for _, w := range want.Conditions {
		found := false
		for _, c := range cur.Conditions {
			found = found || (c.Type == w.Type && c.Status == w.Status)
		}
		if !found {
			return false
		}
	}
	for i, w := range want.ContainerStatuses {
		c := cur.ContainerStatuses[i]
		if c.Name != w.Name || c.Ready != w.Ready || (c.State.Running == nil) != (w.State.Running == nil) || c.ContainerID != w.ContainerID {
			return false
		}
	}
	return true
}

// podReady reports the Ready condition of pod.
func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
