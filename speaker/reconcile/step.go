package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/speaker/advertise"
)

// step applies everything pending (watch events, messages, membership) and
// converges the announcer and the router. Work is proportional to what
// changed, except a configuration or node-label change, which recomputes
// every Service. What cannot be done now (a failed cache read) is put back
// and tried again at the next step.
func (s *Speaker) step(ctx context.Context, now time.Time, stalled bool) {
	p := s.watch.take()
	msgs := s.opts.Inbox.take()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyKey()
	for _, l := range p.leases {
		if l.deleted {
			s.tracker.Forget(l.node)
		} else {
			s.tracker.Observe(l.at, l.node, l.renew)
		}
	}
	before := s.engine.Version
	peersChanged := false
	if p.nodes != nil {
		s.applyNodes(p.nodes)
		peersChanged = true
	}
	if p.config || p.nodes != nil || s.model == nil {
		if err := s.rebuildModel(ctx); err != nil {
			s.retryLater("rebuild the configuration model", err)
			s.watch.requeue(nil, true)
		} else {
			peersChanged = true
		}
	}
	touched := make([]string, 0, len(p.services))
	var failed []string
	read := func(key string) {
		if err := s.readService(ctx, key); err != nil {
			s.retryLater("read a Service", err)
			failed = append(failed, key)
			return
		}
		touched = append(touched, key)
	}
	for _, key := range p.services {
		read(key)
	}
	for _, key := range p.endpoints {
		if s.engine.EndpointsMatter(key) {
			read(key)
		}
	}
	s.watch.requeue(failed, false)
	if s.model != nil && s.updateExclusion(now) {
		peersChanged = true
	}

	prevLive := len(s.live)
	s.converge(now, stalled, msgs)
	s.reportWithdrawals()

	for _, e := range msgs.bgp {
		sessionEvent(s.opts.Events, s.opts.Node, types.UID(s.peerUIDs[e.Peer]), e)
	}
	// BGP: a configuration or node change sets the whole state; a Service
	// change sends only the routes it changed.
	if peersChanged {
		s.routes.rebuild(s.engine)
		s.setBGP(s.routes.all())
	} else {
		for _, key := range touched {
			s.routes.setService(key, s.engine.ServiceRoutes(key))
		}
		if u := s.routes.takeChanges(s.bgpInUse); len(u) > 0 {
			s.opts.BGP.Update(u)
		}
	}

	s.metrics.services.Set(float64(len(s.engine.services)))
	if s.engine.Version != before || len(s.live) != prevLive || len(msgs.bgp) > 0 {
		s.notifyStatus()
	}
}

// retryLog limits how often one kind of failure is logged while it repeats.
type retryLog struct {
	at  time.Time
	msg string
}

// retryLater logs a failure that the next step retries: at once when it is
// new, then at most every 30 s while it repeats. The caller holds s.mu.
func (s *Speaker) retryLater(what string, err error) {
	last := s.retryLogs[what]
	if last.msg == err.Error() && time.Since(last.at) < 30*time.Second {
		return
	}
	s.retryLogs[what] = retryLog{time.Now(), err.Error()}
	s.log.Error("could not "+what+"; retrying", "err", err)
}

// applyKey hands a new memberlist key from the Secret to memberlist (which
// rotates to it without an outage) and notes a key it cannot use. The
// caller holds s.mu.
func (s *Speaker) applyKey() {
	key, seen := s.watch.memberlistKey()
	if !seen {
		return
	}
	problem := ""
	if key == nil {
		problem = "the Secret " + s.secretName() + " is missing; the current key stays in use (herald-controller creates a new one)"
	} else if err := s.opts.Members.SetKey(key); err != nil {
		problem = fmt.Sprintf("the Secret %s holds an unusable key (%v); the current key stays in use", s.secretName(), err)
	}
	if problem != s.keyProblem {
		if problem != "" {
			s.log.Error("memberlist key not used", "why", problem)
		}
		s.keyProblem = problem
		s.notifyStatus()
	}
}

func (s *Speaker) secretName() string { return v1beta1.Namespace + "/" + s.opts.MemberlistSecret }

// applyNodes installs a new set of nodes: labels for selectors, InternalIPs
// as memberlist peers.
func (s *Speaker) applyNodes(nodes map[string]nodeInfo) {
	s.nodes = nodes
	var peers []string
	for name, n := range nodes {
		if name == s.opts.Node {
			continue
		}
		for _, ip := range n.ips {
			if ip.Is4() == s.opts.NodeIP.Is4() {
				peers = append(peers, ip.String())
				break
			}
		}
	}
	s.setEngineNodes()
	slices.Sort(peers)
	s.opts.Members.SetPeers(peers)
}

// setEngineNodes hands the nodes to the engine, this one with where it is
// in withdrawing its BGP routes. The caller holds s.mu.
func (s *Speaker) setEngineNodes() {
	list := make([]advertise.Node, 0, len(s.nodes))
	for name, n := range s.nodes {
		node := advertise.Node{Name: name, Labels: n.labels}
		if name == s.opts.Node {
			node.Withdrawal = s.withdrawal
		}
		list = append(list, node)
	}
	s.engine.SetNodes(list)
}

// rebuildModel builds the configuration model from the cache, keeping the
// previous model for objects that turned invalid.
func (s *Speaker) rebuildModel(ctx context.Context) error {
	in, err := k8s.ReadConfig(ctx, s.opts.Cache)
	if err != nil {
		return err
	}
	in.Nodes = make(map[string]map[string]string, len(s.nodes))
	for name, n := range s.nodes {
		in.Nodes[name] = n.labels
	}
	s.peerUIDs = make(map[string]string, len(in.Peers))
	for _, p := range in.Peers {
		s.peerUIDs[p.Name] = string(p.UID)
	}
	s.model = config.Build(in, s.model)
	s.engine.SetModel(s.model)
	s.metrics.configProblems.Set(float64(len(s.model.Problems)))
	s.log.Debug("configuration model rebuilt", "pools", len(s.model.Pools), "l2Advertisements", len(s.model.L2Advertisements), "peers", len(s.model.Peers), "problems", len(s.model.Problems))
	return nil
}

// readService reads one Service (and its ready endpoints) into the engine.
func (s *Speaker) readService(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	var svc corev1.Service
	err := s.opts.Cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc)
	if apierrors.IsNotFound(err) {
		s.engine.DeleteService(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get Service %s: %w", key, err)
	}
	ips := k8s.IngressIPs(svc.Status.LoadBalancer)
	if !s.watch.relevant(&svc) || len(ips) == 0 {
		s.engine.DeleteService(key)
		return nil
	}
	nodes, ready := s.watch.readyEndpoints(key)
	s.engine.UpsertService(Service{
		Service: advertise.Service{
			Key:           key,
			IPs:           ips,
			LocalTraffic:  svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			EndpointNodes: nodes,
			ReadyEndpoint: ready,
			Labels:        svc.Labels,
		},
		UID: svc.UID,
	})
	return nil
}

// setBGP recomputes and hands the BGP desired state to the router.
func (s *Speaker) setBGP(routes []advertise.Route) {
	var peers []*config.Peer
	var addrs NodeAddrs
	if n, ok := s.nodes[s.opts.Node]; ok && s.model != nil {
		peers = s.model.PeersForNode(n.labels)
		addrs = nodeAddrs(s.opts.NodeIP, n.ips)
	}
	d, issues := BGPDesired(peers, routes, addrs)
	for _, is := range issues {
		s.log.Warn("BGP peer not usable as configured", "peer", is.Peer, "problem", is.Message)
	}
	s.opts.BGP.Set(d) // the router copies d
	s.bgpInUse = make(map[string]bool, len(d.Peers))
	for _, p := range d.Peers {
		s.bgpInUse[p.Name] = true
	}
	d.Paths = nil // the status needs the peers only
	s.bgpDesired, s.bgpIssues = d, issues
}

// onL2Change turns what the announcer did into Events on the Services.
func (s *Speaker) onL2Change(ip netip.Addr, ifaces []string) {
	a := s.engine.announced[ip]
	if a == nil {
		return // a stop: its Event went out with the decision
	}
	if len(ifaces) == 0 {
		s.log.Warn("owning an address but no interface to announce it on", "ip", ip, "interfaces", a.ifaces)
		noInterfaceEvents(s.opts.Events, s.opts.Node, ip, a.ifaces, a.services)
		return
	}
	announcingEvents(s.opts.Events, s.opts.Node, ip, ifaces, a.services)
	s.notifyStatus()
}
