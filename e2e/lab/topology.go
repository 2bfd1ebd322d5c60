package lab

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/heraldlb/herald/internal/netns"
)

// Host is one lab machine: a namespace with an address per family on its
// main link (the LAN, or for the external client its link to FRR).
type Host struct {
	Name       string
	NS         *netns.NS
	IPv4, IPv6 netip.Addr
	// Port is the host's bridge port in the LAN namespace ("" when not on the LAN).
	Port string
	lab  *Lab
}

// Node is a Kubernetes node of the lab.
type Node struct {
	Host
	Index                int
	PodCIDRv4, PodCIDRv6 netip.Prefix
	// Kubeconfig is for processes inside the node's namespace: it points at
	// the node-local API server proxy, https://127.0.0.1:6443.
	Kubeconfig string
	KubeProxy  *Component
}

const lanBridge = "br0"

// buildNetwork creates every namespace and link of the topology and the
// static routes that do not come from BGP.
func (l *Lab) buildNetwork(ctx context.Context) error {
	reg := l.Reg
	var err error
	if l.LAN, err = reg.Add(ctx, "lan"); err != nil {
		return err
	}
	// The LAN stays a plain switch: no netfilter on bridged frames unless a
	// fault rule says so, and no multicast snooping, which would drop
	// Neighbor Solicitations for service IPs that no host has joined.
	if err := sysctls(l.LAN, "net/bridge/bridge-nf-call-iptables", "0", "net/bridge/bridge-nf-call-ip6tables", "0", "net/bridge/bridge-nf-call-arptables", "0"); err != nil {
		return err
	}
	if err := ipBatch(ctx, l.LAN, "link add "+lanBridge+" type bridge mcast_snooping 0", "link set "+lanBridge+" up"); err != nil {
		return err
	}

	l.FRR = &Router{Host: Host{Name: "frr", IPv4: hostAddr(LANv4, hostFRR), IPv6: hostAddr(LANv6, hostFRR)}}
	l.BIRD = &Router{Host: Host{Name: "bird", IPv4: hostAddr(LANv4, hostBIRD), IPv6: hostAddr(LANv6, hostBIRD)}}
	l.Client = &Host{Name: "client", IPv4: hostAddr(LANv4, hostClient), IPv6: hostAddr(LANv6, hostClient)}
	lanHosts := []*Host{&l.FRR.Host, &l.BIRD.Host, l.Client}
	for i := 1; i <= l.opts.Nodes; i++ {
		v4, v6 := podCIDRs(i)
		n := &Node{
			Host:      Host{Name: nodeName(i), IPv4: hostAddr(LANv4, hostNode0+i), IPv6: hostAddr(LANv6, hostNode0+i)},
			Index:     i,
			PodCIDRv4: v4, PodCIDRv6: v6,
		}
		l.Nodes = append(l.Nodes, n)
		lanHosts = append(lanHosts, &n.Host)
	}
	for _, h := range lanHosts {
		if err := l.addLANHost(ctx, h); err != nil {
			return err
		}
	}
	for _, n := range l.Nodes {
		if err := addPodBridge(ctx, n); err != nil {
			return err
		}
	}

	l.Ext = &Host{Name: "ext", IPv4: hostAddr(ExtFRRv4, hostExt), IPv6: hostAddr(ExtFRRv6, hostExt), lab: l}
	if l.Ext.NS, err = l.addNS(ctx, "ext", false); err != nil {
		return err
	}
	if err := l.linkExt(ctx, l.FRR, "eth0", ExtFRRv4, ExtFRRv6); err != nil {
		return err
	}
	if err := l.linkExt(ctx, l.BIRD, "eth1", ExtBIRDv4, ExtBIRDv6); err != nil {
		return err
	}
	return l.addStaticRoutes(ctx)
}

func (l *Lab) addNS(ctx context.Context, name string, forwarding bool) (*netns.NS, error) {
	ns, err := l.Reg.Add(ctx, name)
	if err != nil {
		return nil, err
	}
	kv := baseSysctls
	if forwarding {
		kv = append(append([]string(nil), kv...), forwardingSysctls...)
	}
	return ns, sysctls(ns, kv...)
}

// addLANHost makes h's namespace and plugs its eth0 into the LAN bridge.
func (l *Lab) addLANHost(ctx context.Context, h *Host) error {
	h.lab = l
	h.Port = h.Name
	isRouter := h.Name == "frr" || h.Name == "bird"
	forwarding := h.Name != "client"
	var err error
	if h.NS, err = l.addNS(ctx, h.Name, forwarding); err != nil {
		return err
	}
	if isRouter {
		if err := tuneRouter(h.NS); err != nil {
			return err
		}
	}
	if err := l.Reg.Veth(ctx, h.NS, "eth0", l.LAN, h.Port); err != nil {
		return err
	}
	if err := ipBatch(ctx, l.LAN, "link set "+h.Port+" master "+lanBridge); err != nil {
		return err
	}
	return ipBatch(ctx, h.NS, addrLines("eth0", withLen(h.IPv4, LANv4), withLen(h.IPv6, LANv6))...)
}

// linkExt joins router r (interface eth1) and the external client (extIf).
func (l *Lab) linkExt(ctx context.Context, r *Router, extIf string, v4, v6 netip.Prefix) error {
	if err := l.Reg.Veth(ctx, r.NS, "eth1", l.Ext.NS, extIf); err != nil {
		return err
	}
	if err := tuneRouter(r.NS); err != nil { // the new interface needs redirects off too
		return err
	}
	if err := ipBatch(ctx, r.NS, addrLines("eth1", withLen(hostAddr(v4, hostRouter), v4), withLen(hostAddr(v6, hostRouter), v6))...); err != nil {
		return err
	}
	return ipBatch(ctx, l.Ext.NS, addrLines(extIf, withLen(hostAddr(v4, hostExt), v4), withLen(hostAddr(v6, hostExt), v6))...)
}

// addStaticRoutes installs the routes that are not learned by BGP:
//   - nodes reach the external links through the router on each, and the
//     other nodes' pod CIDRs through those nodes;
//   - the LAN client and the FRR router treat the Layer 2 pool as on-link,
//     so they ARP/NDP for its addresses;
//   - the LAN client and the external client use FRR as their default router;
//   - BIRD routes the LAN's replies to its external link (it is directly connected).
func (l *Lab) addStaticRoutes(ctx context.Context) error {
	frr4, frr6 := l.FRR.IPv4.String(), l.FRR.IPv6.String()
	for _, n := range l.Nodes {
		if err := ipBatch(ctx, n.NS, l.nodeRoutes(n, "add")...); err != nil {
			return err
		}
	}
	onLink := []string{
		"route add " + L2PoolV4.String() + " dev eth0",
		"route add " + L2PoolV6.String() + " dev eth0",
	}
	if err := ipBatch(ctx, l.Client.NS, append(onLink,
		"route add default via "+frr4,
		"route add default via "+frr6)...); err != nil {
		return err
	}
	if err := ipBatch(ctx, l.FRR.NS, onLink...); err != nil {
		return err
	}
	return ipBatch(ctx, l.Ext.NS,
		"route add default via "+hostAddr(ExtFRRv4, hostRouter).String(),
		"route add default via "+hostAddr(ExtFRRv6, hostRouter).String())
}

// tuneRouter turns on forwarding, switches ICMP redirects off on every
// interface (a redirect would pin all traffic to one ECMP next hop) and
// hashes multipath on layer 4, so flows spread over next hops.
func tuneRouter(ns *netns.NS) error {
	kv := append([]string(nil), forwardingSysctls...)
	kv = append(kv,
		"net/ipv4/fib_multipath_hash_policy", "1",
		"net/ipv6/fib_multipath_hash_policy", "1",
		"net/ipv4/conf/all/accept_redirects", "0",
		"net/ipv4/conf/default/accept_redirects", "0",
		"net/ipv6/conf/all/accept_redirects", "0",
		"net/ipv6/conf/default/accept_redirects", "0")
	for _, dev := range []string{"eth0", "eth1"} {
		kv = append(kv, fmt.Sprintf("net/ipv4/conf/%s/send_redirects", dev), "0")
	}
	return sysctlsExisting(ns, kv...)
}

// nodeRoutes are node n's static routes through its LAN link, as ip(8)
// lines with verb "add" or "replace":
//   - the external links through the router on each,
//   - the Layer 2 pool on-link, as on a network whose subnet holds it (the
//     speaker's default interface choice then finds eth0),
//   - the other nodes' pod CIDRs through those nodes.
func (l *Lab) nodeRoutes(n *Node, verb string) []string {
	lines := []string{
		"route " + verb + " " + ExtFRRv4.String() + " via " + l.FRR.IPv4.String(),
		"route " + verb + " " + ExtFRRv6.String() + " via " + l.FRR.IPv6.String(),
		"route " + verb + " " + ExtBIRDv4.String() + " via " + l.BIRD.IPv4.String(),
		"route " + verb + " " + ExtBIRDv6.String() + " via " + l.BIRD.IPv6.String(),
		"route " + verb + " " + L2PoolV4.String() + " dev eth0",
		"route " + verb + " " + L2PoolV6.String() + " dev eth0",
	}
	for _, m := range l.Nodes {
		if m != n {
			lines = append(lines,
				"route "+verb+" "+m.PodCIDRv4.String()+" via "+m.IPv4.String(),
				"route "+verb+" "+m.PodCIDRv6.String()+" via "+m.IPv6.String())
		}
	}
	return lines
}
