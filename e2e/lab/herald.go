package lab

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/netns"
)

// Herald is Herald running in the lab: the controller, a speaker per node
// (from Bin) and a client for Herald's objects and Kubernetes'.
type Herald struct {
	*Lab
	// API reads and writes objects with Herald's scheme.
	API client.Client
	// Bin are the binaries it runs; tests start extra speakers from them.
	Bin Binaries
}

// StartHerald runs the controller and a speaker per node from bin, with
// the flags of Binaries.ControllerSpec and SpeakerSpec, after creating the
// ClusterRole herald-metrics-reader (SpeakerMetrics scrapes with it).
func (l *Lab) StartHerald(bin Binaries) (*Herald, error) {
	scheme, err := k8s.Scheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(l.Env.Config, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("lab: client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.applyMetricsReaderRole(ctx); err != nil {
		return nil, err
	}
	if _, err := l.StartController(bin.ControllerSpec()); err != nil {
		return nil, err
	}
	if _, err := l.StartSpeakers(bin.SpeakerSpec()); err != nil {
		return nil, err
	}
	return &Herald{Lab: l, API: c, Bin: bin}, nil
}

// StartController runs Herald's controller (or any program) in the host
// namespace, where it reaches the API server on loopback. KUBECONFIG is set
// to the admin kubeconfig; {kubeconfig} in the args expands to it. The
// component is named "controller"; a second call starts "controller-2", ...
func (l *Lab) StartController(spec ComponentSpec) (*Component, error) {
	spec.Args = expand(spec.Args, map[string]string{"kubeconfig": l.Env.Kubeconfig})
	spec.Env = append([]string{"KUBECONFIG=" + l.Env.Kubeconfig}, spec.Env...)
	return l.startComponent(l.uniqueName("controller"), nil, spec)
}

// StartSpeaker runs a speaker (or any program) inside node's namespace, so
// it sees the node's LAN interface (eth0) and addresses. KUBECONFIG points at
// the node-local API server proxy, NODE_NAME is the node's name; {node},
// {kubeconfig}, {nodeIPv4}, {nodeIPv6} and {index} in the args expand.
// The component is named "speaker-<node>".
func (l *Lab) StartSpeaker(node string, spec ComponentSpec) (*Component, error) {
	n := l.Node(node)
	if n == nil {
		return nil, fmt.Errorf("lab: no node %q", node)
	}
	spec.Args = expand(spec.Args, nodeVars(n))
	spec.Env = append([]string{"KUBECONFIG=" + n.Kubeconfig, "NODE_NAME=" + n.Name}, spec.Env...)
	return l.startComponent(l.uniqueName("speaker-"+n.Name), n.NS, spec)
}

// StartSpeakers runs one speaker per node with the same spec.
func (l *Lab) StartSpeakers(spec ComponentSpec) ([]*Component, error) {
	var out []*Component
	for _, n := range l.Nodes {
		c, err := l.StartSpeaker(n.Name, spec)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Speaker returns node's speaker as StartSpeaker named it ("speaker-<node>"), or nil.
func (l *Lab) Speaker(node string) *Component { return l.Component("speaker-" + node) }

// ReviveSpeakers continues every node's paused speaker and starts the ones
// that exited, so a test starts with all of them running whatever the one
// before it did to them.
func (l *Lab) ReviveSpeakers() error {
	for _, n := range l.Nodes {
		c := l.Speaker(n.Name)
		if c == nil {
			return fmt.Errorf("lab: no speaker on %s", n.Name)
		}
		if c.Running() {
			if err := c.Resume(); err != nil {
				return err
			}
			continue
		}
		if err := c.Start(); err != nil {
			return err
		}
	}
	return nil
}

// Component returns the Herald component called name ("controller",
// "speaker-node1"), a node's kube-proxy ("kube-proxy-node1"), or nil.
func (l *Lab) Component(name string) *Component {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.components {
		if c.Name == name {
			return c
		}
	}
	for _, n := range l.Nodes {
		if n.KubeProxy != nil && n.KubeProxy.Name == name {
			return n.KubeProxy
		}
	}
	return nil
}

// Components lists the Herald components started so far.
func (l *Lab) Components() []*Component {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Component(nil), l.components...)
}

func (l *Lab) uniqueName(base string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	name := base
	for i := 2; ; i++ {
		taken := false
		for _, c := range l.components {
			taken = taken || c.Name == name
		}
		if !taken {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

func (l *Lab) startComponent(name string, ns *netns.NS, spec ComponentSpec) (*Component, error) {
	c := newComponent(l.Reg, l.logDir(), name, ns, spec)
	if err := c.Start(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.components = append(l.components, c)
	l.mu.Unlock()
	return c, nil
}
