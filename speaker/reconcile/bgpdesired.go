package reconcile

import (
	"fmt"
	"net/netip"

	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/speaker/advertise"
	"github.com/heraldlb/herald/speaker/bgp"
)

// NodeAddrs are this node's own addresses, one per family (zero if none).
type NodeAddrs struct {
	IPv4, IPv6 netip.Addr
}

// nodeAddrs picks the node's first InternalIP of each family; an explicit
// node IP (--node-ip) comes first for its family.
func nodeAddrs(explicit netip.Addr, internal []netip.Addr) NodeAddrs {
	var a NodeAddrs
	for _, ip := range append([]netip.Addr{explicit}, internal...) {
		switch {
		case !ip.IsValid():
		case ip.Is4() && !a.IPv4.IsValid():
			a.IPv4 = ip
		case ip.Is6() && !a.IPv6.IsValid():
			a.IPv6 = ip
		}
	}
	return a
}

// PeerIssue is a BGPPeer this node cannot run as configured.
type PeerIssue struct {
	Peer    string
	Message string
}

// BGPDesired maps the model's peers for this node and the merged routes
// onto the BGP seam's declarative state. The router ID is the first
// routerID a peer sets (peers sorted by name; gobgp has one per node), else
// the node's IPv4 address, else for an IPv6-only node the last four bytes
// of its IPv6 address. Paths of the other family than a session's carry the
// node's own address of that family as next hop.
func BGPDesired(peers []*config.Peer, routes []advertise.Route, node NodeAddrs) (bgp.Desired, []PeerIssue) {
	d := bgp.Desired{Paths: map[string][]bgp.Path{}}
	var issues []PeerIssue
	for _, p := range peers {
		if !p.RouterID.IsValid() {
			continue
		}
		if !d.RouterID.IsValid() {
			d.RouterID = p.RouterID
		} else if p.RouterID != d.RouterID {
			issues = append(issues, PeerIssue{p.Name, fmt.Sprintf("routerID %s ignored: the node uses %s (set by another BGPPeer)", p.RouterID, d.RouterID)})
		}
	}
	if !d.RouterID.IsValid() {
		d.RouterID = routerIDFor(node)
	}
	use := map[string]bool{}
	for _, p := range peers {
		d.Peers = append(d.Peers, bgpPeer(p, node))
		use[p.Name] = true
		if !p.Passive {
			continue
		}
		if d.ListenPort == 0 {
			d.ListenPort = p.ListenPort
		} else if p.ListenPort != d.ListenPort {
			issues = append(issues, PeerIssue{p.Name, fmt.Sprintf("listenPort %d ignored: the node listens on %d (set by another BGPPeer)", p.ListenPort, d.ListenPort)})
		}
	}
	for _, r := range routes {
		if !use[r.Peer] {
			continue
		}
		d.Paths[r.Peer] = append(d.Paths[r.Peer], bgpPath(r))
	}
	return d, issues
}

// bgpPath maps one merged route onto the seam's path.
func bgpPath(r advertise.Route) bgp.Path {
	path := bgp.Path{Prefix: r.Prefix, Communities: r.Communities, LocalPref: r.LocalPref}
	for _, lc := range r.LargeCommunities {
		path.LargeCommunities = append(path.LargeCommunities, bgp.LargeCommunity{lc.Global, lc.Local1, lc.Local2})
	}
	return path
}

func routerIDFor(node NodeAddrs) netip.Addr {
	if node.IPv4.IsValid() {
		return node.IPv4
	}
	if node.IPv6.IsValid() {
		b := node.IPv6.As16()
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	return netip.Addr{}
}

// bgpPeer maps one model peer.
func bgpPeer(p *config.Peer, node NodeAddrs) bgp.Peer {
	asn, dynamic := p.PeerASN, bgp.DynamicASN("")
	switch p.DynamicASN {
	case "internal":
		asn = p.MyASN
	case "external":
		dynamic = bgp.DynamicExternal
	}
	bp := bgp.Peer{
		Name:            p.Name,
		Address:         p.Address,
		Interface:       p.Interface,
		Passive:         p.Passive,
		Port:            p.Port,
		MyASN:           p.MyASN,
		PeerASN:         asn,
		DynamicASN:      dynamic,
		SourceAddress:   p.SourceAddress,
		HoldTime:        p.HoldTime,
		KeepaliveTime:   p.KeepaliveTime,
		ConnectTime:     p.ConnectTime,
		EBGPMultiHop:    p.EBGPMultiHop,
		Password:        p.Password,
		GracefulRestart: p.GracefulRestart,
		RestartTime:     p.GracefulRestartTime,
	}
	if p.Interface == "" {
		// An interface session picks its link's own addresses (speaker/bgp).
		bp.NextHopIPv4, bp.NextHopIPv6 = node.IPv4, node.IPv6
	}
	if b := p.BFD; b != nil {
		bp.BFD = &bgp.BFD{ReceiveInterval: b.ReceiveInterval, TransmitInterval: b.TransmitInterval, DetectMultiplier: b.DetectMultiplier}
	}
	return bp
}
