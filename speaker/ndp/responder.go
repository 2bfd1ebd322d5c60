// Package ndp answers IPv6 Neighbor Solicitations for the service addresses
// this node owns, on one interface, and announces takeovers with unsolicited
// Neighbor Advertisements. It is one of the two packages of Herald that open
// raw sockets (with arp); the lifecycle it shares with arp is
// speaker/l2responder.
//
// The addresses are never configured on the interface, so the kernel would
// drop solicitations for them before an ICMPv6 socket saw them (unicast ones,
// which neighbour unreachability detection sends, in particular). The
// responder therefore reads and writes whole frames on an AF_PACKET socket,
// and validates and builds the IPv6 header and ICMPv6 checksum itself. An
// ICMPv6 socket that receives nothing serves only to join the solicited-node
// multicast group of each owned address: that programs the NIC's multicast
// filter and sends the MLD reports snooping switches need, without which
// multicast solicitations never arrive.
package ndp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"

	"github.com/heraldlb/herald/speaker/l2responder"
)

// Responder answers Neighbor Solicitations on one interface for the IPv6
// addresses it owns, and joins their solicited-node groups while it runs.
// Its methods are safe for concurrent use.
type Responder struct {
	*l2responder.Responder
	groups *groups
}

// New returns a responder for the named interface that owns nothing yet; it
// answers for IPv6 unicast addresses only. It does no I/O.
func New(iface string, log *slog.Logger) *Responder {
	g := &groups{}
	return &Responder{
		Responder: l2responder.New(iface, log, l2responder.Protocol{
			Name:         "ndp",
			Requests:     "Neighbor Solicitations",
			Announcement: "unsolicited Neighbor Advertisement",
			Accept: func(ip netip.Addr) (netip.Addr, bool) {
				return ip.WithZone(""), ip.Is6() && !ip.Is4In6() && !ip.IsMulticast()
			},
			Filter: solicitationFilter(),
			Open:   g.open,
			Own:    g.sync,
			Parse:  parse,
			Announce: func(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
				return advertisement(mac, allNodes, multicastMAC(allNodes), ip, false)
			},
		}),
		groups: g,
	}
}

// Groups lists the solicited-node groups the responder has joined.
func (r *Responder) Groups() []netip.Addr {
	r.groups.mu.Lock()
	defer r.groups.mu.Unlock()
	var out []netip.Addr
	for g := range r.groups.joined {
		out = append(out, g)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// groups is a responder's membership in the solicited-node groups of the
// addresses it owns, through the ICMPv6 socket of the current run.
type groups struct {
	mu     sync.Mutex // Groups reads joined while a run changes it
	conn   *ndp.Conn  // nil unless running
	joined map[netip.Addr]bool
	log    *slog.Logger
}

// open opens the run's sockets on ifi: the ICMPv6 socket for group
// membership, which receives nothing, and the packet socket that receives
// solicitations.
func (g *groups) open(ifi *net.Interface, filter []bpf.RawInstruction, log *slog.Logger) (l2responder.Link, error) {
	group, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if err != nil {
		return nil, fmt.Errorf("ICMPv6 socket on %s: %w", ifi.Name, err)
	}
	var none ipv6.ICMPFilter
	none.SetAll(true)
	if err := group.SetICMPFilter(&none); err != nil {
		_ = group.Close() // the filter error is the one worth reporting
		return nil, fmt.Errorf("ICMPv6 filter on %s: %w", ifi.Name, err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeIPv6, &packet.Config{Filter: filter})
	if err != nil {
		_ = group.Close() // the listen error is the one worth reporting
		return nil, fmt.Errorf("listen on %s: %w", ifi.Name, err)
	}
	g.mu.Lock()
	g.conn, g.joined, g.log = group, map[netip.Addr]bool{}, log
	g.mu.Unlock()
	return link{conn, g}, nil
}

// sync makes the joined groups those of the owned addresses.
func (g *groups) sync(owned map[netip.Addr]bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn == nil {
		return
	}
	want := map[netip.Addr]bool{}
	for ip := range owned {
		if s, err := ndp.SolicitedNodeMulticast(ip); err == nil {
			want[s] = true
		}
	}
	for s := range g.joined {
		if !want[s] {
			if err := g.conn.LeaveGroup(s); err != nil {
				g.log.Warn("leaving solicited-node group failed", "group", s, "err", err)
			}
			delete(g.joined, s)
		}
	}
	for s := range want {
		if !g.joined[s] {
			if err := g.conn.JoinGroup(s); err != nil {
				g.log.Warn("joining solicited-node group failed", "group", s, "err", err)
				continue
			}
			g.joined[s] = true
		}
	}
}

// link is one run's sockets.
type link struct {
	*packet.Conn
	groups *groups
}

// Close closes the packet socket, then forgets and closes the ICMPv6
// socket, which leaves every group.
func (l link) Close() error {
	err := l.Conn.Close()
	l.groups.mu.Lock()
	group := l.groups.conn
	l.groups.conn, l.groups.joined = nil, nil
	l.groups.mu.Unlock()
	if group != nil {
		err = errors.Join(err, group.Close())
	}
	return err
}
