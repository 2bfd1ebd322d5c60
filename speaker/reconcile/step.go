package reconcile

import (
	"bytes"
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

	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/speaker/advertise"
)

// step applies everything pending (watch events, messages, membership) and
// converges the announcer and the router. Work is proportional to what
// changed, except a configuration or node-label change, which recomputes
// every Service.
func (s *Speaker) step(ctx context.Context, now time.Time, stalled bool) error {
	p := s.watch.take()
	handovers, releases, bgpEvents := s.opts.Inbox.takeMessages()
	if k := s.watch.memberlistKey(); k != nil && s.opts.MemberlistKey != nil && !bytes.Equal(k, s.opts.MemberlistKey) {
		return ErrKeyChanged
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.engine.Version
	peersChanged := false
	if p.nodes != nil {
		s.applyNodes(p.nodes)
		peersChanged = true
	}
	if p.config || p.nodes != nil || s.model == nil {
		if err := s.rebuildModel(ctx); err != nil {
			return err
		}
		peersChanged = true
	}
	touched := make([]string, 0, len(p.services))
	for _, key := range p.services {
		if err := s.readService(ctx, key); err != nil {
			return err
		}
		touched = append(touched, key)
	}
	for _, key := range p.endpoints {
		if s.engine.LocalTraffic(key) {
			if err := s.readService(ctx, key); err != nil {
				return err
			}
			touched = append(touched, key)
		}
	}

	prevLive := len(s.live)
	s.converge(now, stalled, handovers, releases)

	for _, e := range bgpEvents {
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
	if s.engine.Version != before || len(s.live) != prevLive || len(bgpEvents) > 0 {
		s.notifyStatus()
	}
	return nil
}

// liveMembers is memberlist's view minus the nodes that handed their
// addresses over; a node that handed over counts as alive again once
// memberlist has seen it go and come back (a restarted speaker).
func (s *Speaker) liveMembers() []string {
	alive := s.opts.Members.Alive()
	for n, seenOut := range s.gone {
		switch in := slices.Contains(alive, n); {
		case !in:
			s.gone[n] = true
		case seenOut:
			delete(s.gone, n)
		}
	}
	return slices.DeleteFunc(alive, func(n string) bool { _, g := s.gone[n]; return g })
}

// applyNodes installs a new set of nodes: labels for selectors, InternalIPs
// as memberlist peers.
func (s *Speaker) applyNodes(nodes map[string]nodeInfo) {
	for name := range s.nodes {
		if _, ok := nodes[name]; !ok && s.quorum != nil {
			s.quorum.Forget(name)
		}
	}
	s.nodes = nodes
	list := make([]advertise.Node, 0, len(nodes))
	var peers []string
	for name, n := range nodes {
		list = append(list, advertise.Node{Name: name, Labels: n.labels})
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
	s.engine.SetNodes(list)
	slices.Sort(peers)
	s.opts.Members.SetPeers(peers)
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
	s.engine.UpsertService(Service{
		Service: advertise.Service{
			Key:           key,
			IPs:           ips,
			LocalTraffic:  svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			EndpointNodes: s.watch.endpointNodes(key),
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
