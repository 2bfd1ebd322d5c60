package lab

// Real kubelet nodes (Options.Kubelet): each node namespace runs a real
// containerd (Debian's, with runc and the CNI bridge plugin) and a real
// kubelet built from the same Kubernetes module as the control plane, so
// pods are containers from images and Herald installs the way users
// install it. The recipe and its pitfalls were found in
// shared/reference/real-kubelet; this is the lab's own version:
//
//   - every node has a private mount namespace (netns.MountNS) holding its
//     own /run, /var/lib and /var/log, since containerd, its shims, the CNI
//     plugins and the kubelet hard-code paths there (shim sockets, CNI
//     results, device plugins, container log links);
//   - processes enter a node with nsenter --net --mount, never `ip netns
//     exec`, which remounts /sys (the cgroup mounts vanish) and gives each
//     process a mount namespace of its own (the kubelet's volume mounts would
//     not reach containerd);
//   - the kubelet rewrites six machine-wide sysctls unless
//     protectKernelDefaults is on, and then refuses to start unless they hold
//     its values: inside the node's mount namespace it reads read-only files
//     with those values, so the machine's own are neither read nor written;
//   - root here lacks CAP_SYS_RESOURCE, so runc fails every sandbox whose
//     oom_score_adj is below containerd's own: restrict_oom_score_adj;
//   - the node's cgroups are /<prefix>-<node> in every hierarchy; containerd
//     and its shims sit in <that>/runtime of the pids hierarchy, so Close
//     and a crash cleanup find every process the node started.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/internal/images"
	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testenv"
)

// Images the lab builds for its real nodes: the pod sandbox and the echo
// backend of workloads (WorkloadSpec, EchoPod, the demo).
const (
	PauseImage = "lab.herald.dev/pause:1"
	EchoImage  = "lab.herald.dev/echo:1"
)

// CNIBinDir holds the CNI plugins of Debian's containernetworking-plugins.
const CNIBinDir = "/usr/lib/cni"

// ErrNoRuntime means a program real nodes need is missing.
var ErrNoRuntime = errors.New("lab: real kubelet nodes need containerd, runc, the CNI plugins (apt-get install containerd runc containernetworking-plugins: make deps) and the kubelet (make kube)")

// RealNode is the runtime side of a lab node in kubelet mode.
type RealNode struct {
	Node *Node
	// Dir holds the node's containerd, kubelet and CNI state and its private /run, /var/lib, /var/log.
	Dir        string
	Mount      *netns.MountNS
	Cgroup     *netns.Cgroup
	Containerd *Component
	Kubelet    *Component
}

// ContainerdSocket is the node's containerd API socket.
func (r *RealNode) ContainerdSocket() string {
	return filepath.Join(r.Dir, "containerd", "containerd.sock")
}

// Ctr runs containerd's ctr against the node's containerd, in its
// namespace "k8s.io" (the kubelet's).
func (r *RealNode) Ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", r.ContainerdSocket(), "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s on %s: %w: %s", strings.Join(args, " "), r.Node.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ImportImages loads OCI or Docker image archives into the node's containerd.
func (r *RealNode) ImportImages(ctx context.Context, paths ...string) error {
	for _, p := range paths {
		if _, err := r.Ctr(ctx, "images", "import", p); err != nil {
			return err
		}
	}
	return nil
}

// RealNode returns node's runtime side (nil unless the lab runs kubelets).
func (l *Lab) RealNode(node string) *RealNode {
	for _, r := range l.realNodes {
		if r.Node.Name == node {
			return r
		}
	}
	return nil
}

// ImportImages loads image archives into every node's containerd, as
// `kind load image-archive` does: a new image for a rolling update, say.
func (l *Lab) ImportImages(ctx context.Context, paths ...string) error {
	if len(l.realNodes) == 0 {
		return errors.New("lab: images need real kubelet nodes (Options.Kubelet)")
	}
	errc := make(chan error, len(l.realNodes))
	for _, r := range l.realNodes {
		go func() { errc <- r.ImportImages(ctx, paths...) }()
	}
	var errs []error
	for range l.realNodes {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}

// checkRuntime finds the programs real nodes run.
func checkRuntime(binDir string) error {
	var missing []string
	for _, p := range []string{"containerd", "runc", "ctr", "nsenter", "unshare"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, p := range []string{filepath.Join(CNIBinDir, "bridge"), filepath.Join(CNIBinDir, "host-local"), filepath.Join(CNIBinDir, "loopback"), filepath.Join(binDir, "kubelet")} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrNoRuntime, strings.Join(missing, ", "))
	}
	return nil
}

// buildLabImages builds the pause and echo images for this machine into dir.
func buildLabImages(ctx context.Context, dir string) ([]string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	var paths []string
	for ref, spec := range map[string]images.Spec{
		PauseImage: {Name: "pause", Package: "./e2e/lab/cmd/lab-pause", User: "65535:65535"},
		EchoImage:  {Name: "echo", Package: "./e2e/lab/cmd/lab-echo", User: "65532:65532"},
	} {
		repo, tag, _ := strings.Cut(ref, ":")
		repo = repo[:strings.LastIndex(repo, "/")]
		built, err := images.Build(ctx, images.Options{
			ModuleDir: root, Repository: repo, Tag: tag,
			Platforms: []v1.Platform{images.HostPlatform()}, OutDir: dir,
		}, spec)
		if err != nil {
			return nil, err
		}
		paths = append(paths, built[0].Path)
	}
	return paths, nil
}

// startRealNodes brings every node's containerd and kubelet up and waits
// until the nodes are Ready.
func (l *Lab) startRealNodes(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, n := range l.Nodes {
		r := &RealNode{Node: n, Dir: filepath.Join(l.Dir, "nodes", n.Name)}
		l.realNodes = append(l.realNodes, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.startRealNode(ctx, r); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("lab: node %s: %w", n.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, r := range l.realNodes {
		if err := l.waitNodeReady(ctx, r); err != nil {
			return err
		}
	}
	return l.publishAPIServer(ctx)
}

func (l *Lab) startRealNode(ctx context.Context, r *RealNode) error {
	n := r.Node
	for _, d := range []string{"containerd/root", "containerd/state", "containerd/opt", "containerd/runc", "cni/net.d", "cni/ipam",
		"sysctl", "kubelet", "pod-logs", "volume-plugins", "host/run", "host/var-lib", "host/var-log"} {
		if err := os.MkdirAll(filepath.Join(r.Dir, d), 0o755); err != nil {
			return err
		}
	}
	var err error
	if r.Cgroup, err = l.Reg.AddCgroup(n.Name); err != nil {
		return err
	}
	if r.Mount, err = l.Reg.AddMountNS(ctx, n.Name); err != nil {
		return err
	}
	if err := r.privatePaths(ctx); err != nil {
		return err
	}
	files := map[string]string{
		"cni/net.d/10-herald-lab.conflist": cniConfig(r),
		"containerd/config.toml":           containerdConfig(r),
		"kubelet.yaml":                     kubeletConfig(r, l.caFile()),
		"resolv.conf":                      "search cluster.local\noptions ndots:1\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(r.Dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	r.Containerd = l.nodeComponent(r, "containerd-"+n.Name, "containerd", "--config", filepath.Join(r.Dir, "containerd", "config.toml"))
	if err := r.Containerd.Start(); err != nil {
		return err
	}
	if err := r.Cgroup.Join(r.Containerd.Proc().PID, "runtime", "pids"); err != nil {
		return err
	}
	if err := poll.Until(ctx, 100*time.Millisecond, func() error {
		if !r.Containerd.Running() {
			return fmt.Errorf("containerd exited:\n%s", r.Containerd.LogTail(20))
		}
		_, err := r.Ctr(ctx, "version")
		return err
	}); err != nil {
		return fmt.Errorf("containerd not serving: %w", err)
	}
	if err := r.ImportImages(ctx, l.imagePaths...); err != nil {
		return err
	}
	r.Kubelet = l.nodeComponent(r, "kubelet-"+n.Name, filepath.Join(l.Env.BinDir, "kubelet"),
		"--config="+filepath.Join(r.Dir, "kubelet.yaml"),
		"--kubeconfig="+n.Kubeconfig,
		"--hostname-override="+n.Name,
		"--node-ip="+n.IPv4.String()+","+n.IPv6.String(),
		"--root-dir="+filepath.Join(r.Dir, "kubelet"),
		"--cert-dir="+filepath.Join(r.Dir, "kubelet", "pki"),
		"--v=1")
	if err := r.Kubelet.Start(); err != nil {
		return err
	}
	return r.Cgroup.Join(r.Kubelet.Proc().PID, "runtime", "pids")
}

// nodeComponent runs a program inside node r's network and mount namespaces.
func (l *Lab) nodeComponent(r *RealNode, name, binary string, args ...string) *Component {
	return newComponent(l.Reg, l.logDir(), name, nil, ComponentSpec{
		Binary: "nsenter",
		Args:   append([]string{"--net=" + r.Node.NS.Path(), "--mount=" + r.Mount.Path, "--", binary}, args...),
	})
}

// kubeletSysctls are the machine-wide values the kubelet insists on.
var kubeletSysctls = map[string]string{
	"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
	"kernel/panic_on_oops": "1", "kernel/keys/root_maxkeys": "1000000", "kernel/keys/root_maxbytes": "25000000",
}

// privatePaths gives the node its own /run, /var/lib and /var/log and the
// kubelet's sysctl values, read-only, inside its mount namespace.
func (r *RealNode) privatePaths(ctx context.Context) error {
	var script []string
	for _, p := range []string{"run", "var-lib", "var-log"} {
		script = append(script, fmt.Sprintf("mount --bind %s /%s", filepath.Join(r.Dir, "host", p), strings.ReplaceAll(p, "-", "/")))
	}
	for key, val := range kubeletSysctls {
		f := filepath.Join(r.Dir, "sysctl", strings.ReplaceAll(key, "/", "."))
		if err := os.WriteFile(f, []byte(val+"\n"), 0o444); err != nil {
			return err
		}
		script = append(script, fmt.Sprintf("mount --bind %s /proc/sys/%s && mount -o remount,bind,ro /proc/sys/%s", f, key, key))
	}
	if out, err := r.Mount.Run(ctx, "sh", "-ec", strings.Join(script, "\n")); err != nil {
		return fmt.Errorf("private paths: %w: %s", err, out)
	}
	return nil
}

// cniConfig plugs pods into the node's cni0 bridge (which the lab made,
// with the gateway addresses) and gives them addresses from its pod CIDRs.
func cniConfig(r *RealNode) string {
	n := r.Node
	gw4, gw6 := n.podGateway()
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "herald-lab",
  "plugins": [{
    "type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {
      "type": "host-local", "dataDir": %q,
      "ranges": [[{"subnet": %q, "gateway": %q}], [{"subnet": %q, "gateway": %q}]],
      "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    }
  }]
}
`, podBridge, filepath.Join(r.Dir, "cni", "ipam"), n.PodCIDRv4, gw4, n.PodCIDRv6, gw6)
}

func containerdConfig(r *RealNode) string {
	d := filepath.Join(r.Dir, "containerd")
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %[5]q
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = %[6]q
    netns_mounts_under_state_dir = true
    disable_apparmor = true
    # Root here lacks CAP_SYS_RESOURCE: a sandbox asking for an
    # oom_score_adj below containerd's own would fail in runc.
    restrict_oom_score_adj = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          Root = %[7]q
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = %[8]q
      conf_dir = %[9]q
      max_conf_num = 1
`, filepath.Join(d, "root"), filepath.Join(d, "state"), r.ContainerdSocket(), r.ContainerdSocket()+".ttrpc",
		filepath.Join(d, "opt"), PauseImage, filepath.Join(d, "runc"), CNIBinDir, filepath.Join(r.Dir, "cni", "net.d"))
}

// kubeletConfig is the node's KubeletConfiguration. The cgroup driver is
// cgroupfs (containerd 1.6 cannot tell the kubelet which one it uses) with
// the node's own cgroup root; cgroup v1 is allowed (this machine has it).
func kubeletConfig(r *RealNode, caFile string) string {
	n := r.Node
	return strings.Join([]string{
		"apiVersion: kubelet.config.k8s.io/v1beta1",
		"kind: KubeletConfiguration",
		"failCgroupV1: false",
		"failSwapOn: false",
		"cgroupDriver: cgroupfs",
		"cgroupRoot: " + r.Cgroup.Name,
		"cgroupsPerQOS: true",
		"enforceNodeAllocatable: [pods]",
		"protectKernelDefaults: true",
		"containerRuntimeEndpoint: unix://" + r.ContainerdSocket(),
		"address: " + n.IPv4.String(),
		"port: 10250",
		"readOnlyPort: 0",
		"healthzBindAddress: 127.0.0.1",
		"healthzPort: 10248",
		"authentication:",
		"  anonymous: {enabled: false}",
		"  webhook: {enabled: true}",
		"  x509: {clientCAFile: " + caFile + "}",
		"authorization: {mode: Webhook}",
		"clusterDomain: cluster.local",
		"resolvConf: " + filepath.Join(r.Dir, "resolv.conf"),
		"podLogsDir: " + filepath.Join(r.Dir, "pod-logs"),
		"volumePluginDir: " + filepath.Join(r.Dir, "volume-plugins"),
		"maxPods: 40",
		"serializeImagePulls: false",
		"syncFrequency: 10s",
		"nodeStatusUpdateFrequency: 5s",
		"evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}",
		"imageGCHighThresholdPercent: 98",
		"imageGCLowThresholdPercent: 95",
		"",
	}, "\n")
}

func (l *Lab) caFile() string { return filepath.Join(l.Env.Dir, "pki", "ca.crt") }

// waitNodeReady waits for the kubelet to register the node and report it Ready.
func (l *Lab) waitNodeReady(ctx context.Context, r *RealNode) error {
	err := poll.Until(ctx, 200*time.Millisecond, func() error {
		if !r.Kubelet.Running() {
			return fmt.Errorf("kubelet exited:\n%s", r.Kubelet.LogTail(30))
		}
		node, err := l.Kube.CoreV1().Nodes().Get(ctx, r.Node.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("registered, not Ready")
	})
	if err != nil {
		return fmt.Errorf("lab: node %s not Ready: %w\nkubelet log:\n%s", r.Node.Name, err, r.Kubelet.LogTail(20))
	}
	return nil
}

// publishAPIServer makes the kubernetes Service (the ClusterIP every pod's
// in-cluster config uses) reach the API server: each node's proxy listens
// on its LAN address, and an EndpointSlice lists those addresses, each for
// its own node (internalTrafficPolicy Local), so a pod's API traffic stays
// on its node.
func (l *Lab) publishAPIServer(ctx context.Context) error {
	svc, err := l.Kube.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("lab: kubernetes Service: %w", err)
	}
	local := corev1.ServiceInternalTrafficPolicyLocal
	svc.Spec.InternalTrafficPolicy = &local
	if _, err := l.Kube.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("lab: kubernetes Service: %w", err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes-lab", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "herald-lab",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(APIServerPort)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, n := range l.Nodes {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{n.IPv4.String()}, NodeName: ptr.To(n.Name),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	if _, err := l.Kube.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("lab: kubernetes EndpointSlice: %w", err)
	}
	return nil
}

// serviceRoutes lets processes on a node (host-network pods) reach
// ClusterIPs: kube-proxy rewrites such packets, but the kernel drops
// locally sent ones that match no route before kube-proxy sees them.
func serviceRoutes() []string {
	var lines []string
	for _, cidr := range strings.Split(testenv.ServiceCIDRs, ",") {
		lines = append(lines, "route add "+cidr+" dev eth0")
	}
	return lines
}

// Processes lists the PIDs of the node's containers whose program (argv[0])
// is program, as "/herald-speaker": to read what the kernel gave a
// container (capabilities, user) or to kill one as a crash would.
func (r *RealNode) Processes(program string) []int {
	var pids []int
	root := filepath.Join(netns.CgroupRoot, "pids", r.Cgroup.Name, "kubepods")
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if argv0, _, _ := strings.Cut(string(cmd), "\x00"); argv0 == program && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}
