// Package ndp answers IPv6 Neighbor Solicitations for the service addresses
// this node owns, on one interface, and announces takeovers with unsolicited
// Neighbor Advertisements. It is one of the two packages of Herald that open
// raw sockets (with arp).
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
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"

	"github.com/heraldlb/herald/speaker/l2guard"
)

// Sentinel errors of Gratuitous and Run.
var (
	ErrNotOwned   = errors.New("ndp: address not owned")
	ErrNotRunning = errors.New("ndp: responder not running")
	ErrRunning    = errors.New("ndp: responder already running")
)

// Stats counts what a responder did since it was made (over all its runs).
type Stats struct {
	Answered   uint64 // Neighbor Solicitations answered
	Gratuitous uint64 // unsolicited Neighbor Advertisements sent
	// Limited counts solicitations for owned addresses left unanswered
	// because their requester, or all requesters together, asked too often.
	Limited uint64
}

// Responder answers Neighbor Solicitations on one interface for the IPv6
// addresses it owns. Its methods are safe for concurrent use.
type Responder struct {
	iface string
	log   *slog.Logger

	owned atomic.Pointer[map[netip.Addr]bool]

	mu      sync.Mutex // guards the fields below and group membership changes
	running bool
	conn    *packet.Conn // nil unless running
	group   *ndp.Conn    // multicast membership only
	joined  map[netip.Addr]bool
	mac     net.HardwareAddr

	answered, gratuitous, limited atomic.Uint64
}

// New returns a responder for the named interface that owns nothing yet.
// It does no I/O.
func New(iface string, log *slog.Logger) *Responder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Responder{iface: iface, log: log.With("interface", iface, "protocol", "ndp")}
	r.owned.Store(&map[netip.Addr]bool{})
	return r
}

// Interface is the name of the interface the responder serves.
func (r *Responder) Interface() string { return r.iface }

// Set replaces the owned addresses; addresses that are not IPv6 unicast are
// ignored. It takes effect at once: from its return on, solicitations for an
// address no longer in the set go unanswered. While running it joins the
// solicited-node groups of new addresses and leaves those no address needs
// any more. Set sends no advertisement; the caller announces newly owned
// addresses with Gratuitous.
func (r *Responder) Set(owned []netip.Addr) {
	m := make(map[netip.Addr]bool, len(owned))
	for _, ip := range owned {
		if ip.Is6() && !ip.Is4In6() && !ip.IsMulticast() {
			m[ip.WithZone("")] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owned.Store(&m)
	r.syncGroupsLocked()
}

// Owns reports whether the responder currently answers for ip.
func (r *Responder) Owns(ip netip.Addr) bool { return (*r.owned.Load())[ip.WithZone("")] }

// Running reports whether Run has the sockets open and is answering.
func (r *Responder) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn != nil
}

// Stats returns the counters.
func (r *Responder) Stats() Stats {
	return Stats{Answered: r.answered.Load(), Gratuitous: r.gratuitous.Load(), Limited: r.limited.Load()}
}

// Groups lists the solicited-node groups the responder has joined.
func (r *Responder) Groups() []netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.Addr
	for g := range r.joined {
		out = append(out, g)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// syncGroupsLocked makes the joined groups those of the owned addresses.
func (r *Responder) syncGroupsLocked() {
	if r.group == nil {
		return
	}
	want := map[netip.Addr]bool{}
	for ip := range *r.owned.Load() {
		if g, err := ndp.SolicitedNodeMulticast(ip); err == nil {
			want[g] = true
		}
	}
	for g := range r.joined {
		if !want[g] {
			if err := r.group.LeaveGroup(g); err != nil {
				r.log.Warn("leaving solicited-node group failed", "group", g, "error", err)
			}
			delete(r.joined, g)
		}
	}
	for g := range want {
		if !r.joined[g] {
			if err := r.group.JoinGroup(g); err != nil {
				r.log.Warn("joining solicited-node group failed", "group", g, "error", err)
				continue
			}
			r.joined[g] = true
		}
	}
}

// Gratuitous sends one unsolicited Neighbor Advertisement for ip, which must
// be owned, to all nodes. It returns ErrNotRunning while the socket is not
// open (Run announces every owned address once when it opens it).
func (r *Responder) Gratuitous(ip netip.Addr) error {
	ip = ip.WithZone("")
	if !r.Owns(ip) {
		return fmt.Errorf("%w: %s", ErrNotOwned, ip)
	}
	r.mu.Lock()
	conn, mac := r.conn, r.mac
	r.mu.Unlock()
	if conn == nil {
		return ErrNotRunning
	}
	return r.sendUnsolicited(conn, mac, ip)
}

func (r *Responder) sendUnsolicited(conn *packet.Conn, mac net.HardwareAddr, ip netip.Addr) error {
	frame, err := advertisement(mac, allNodes, multicastMAC(allNodes), ip, false)
	if err != nil {
		return fmt.Errorf("ndp: advertisement for %s: %w", ip, err)
	}
	if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: frame[:6]}); err != nil {
		return fmt.Errorf("ndp: advertisement for %s on %s: %w", ip, r.iface, err)
	}
	r.gratuitous.Add(1)
	return nil
}

// Run opens the interface's sockets, joins the owned addresses' groups,
// announces every owned address once, and answers solicitations until ctx
// ends (it then returns nil) or a socket fails. It may be called again after
// it returned, never twice at once.
//
// Sockets and address lookups belong to the network namespace of the calling
// thread, so Run does them on the goroutine that calls it.
func (r *Responder) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return ErrRunning
	}
	r.running = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running, r.conn, r.group, r.joined, r.mac = false, nil, nil, nil, nil
		r.mu.Unlock()
	}()

	ifi, err := net.InterfaceByName(r.iface)
	if err != nil {
		return fmt.Errorf("ndp: %w", err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("ndp: %s has no Ethernet address", r.iface)
	}
	group, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if err != nil {
		return fmt.Errorf("ndp: ICMPv6 socket on %s: %w", r.iface, err)
	}
	defer group.Close() //nolint:errcheck // also on the error paths below; it only holds group memberships
	var none ipv6.ICMPFilter
	none.SetAll(true)
	if err := group.SetICMPFilter(&none); err != nil {
		return fmt.Errorf("ndp: ICMPv6 filter on %s: %w", r.iface, err)
	}
	filter, err := l2guard.Filter(nil, solicitationFilter())
	if err != nil {
		return fmt.Errorf("ndp: filter: %w", err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeIPv6, &packet.Config{Filter: filter})
	if err != nil {
		return fmt.Errorf("ndp: listen on %s: %w", r.iface, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	mac := ifi.HardwareAddr
	r.mu.Lock()
	r.conn, r.group, r.joined, r.mac = conn, group, map[netip.Addr]bool{}, mac
	r.syncGroupsLocked()
	r.mu.Unlock()
	defer func() {
		// Forget the sockets before closing them, so Set never uses a closed one.
		r.mu.Lock()
		r.conn, r.group, r.joined = nil, nil, nil
		r.mu.Unlock()
		_ = conn.Close()
	}()
	r.log.Info("answering NDP", "mac", mac.String())

	for ip := range *r.owned.Load() {
		if err := r.sendUnsolicited(conn, mac, ip); err != nil {
			r.log.Warn("unsolicited advertisement failed", "ip", ip, "error", err)
		}
	}

	// Anyone on the LAN can send solicitations: l2guard limits the answers
	// per sender and in all, mutes flooding senders in the kernel, and logs
	// summaries, never a line per frame.
	guard := l2guard.New("Neighbor Solicitations", r.log)
	err = guard.Serve(conn, make([]byte, max(ifi.MTU, 1500)+ethLen), solicitationFilter(), func(frame []byte) (func() ([]byte, error), netip.Addr, bool) {
		s, ok := parseSolicitation(frame, mac)
		if !ok || !r.Owns(s.target) {
			return nil, netip.Addr{}, false
		}
		return func() ([]byte, error) { return answer(s, mac) }, s.target, true
	}, l2guard.Counters{Answered: &r.answered, Limited: &r.limited})
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("ndp: read on %s: %w", r.iface, err)
}
