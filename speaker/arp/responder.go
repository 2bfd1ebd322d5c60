// Package arp answers ARP requests for the IPv4 service addresses this node
// owns, on one interface, and announces takeovers with gratuitous ARP. It is
// one of the two packages of Herald that open raw sockets (with ndp).
//
// The addresses are never configured on the interface: the responder listens
// on an AF_PACKET socket and writes the replies itself.
package arp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/mdlayher/packet"

	"github.com/heraldlb/herald/speaker/l2guard"
)

// Sentinel errors of Gratuitous and Run.
var (
	ErrNotOwned   = errors.New("arp: address not owned")
	ErrNotRunning = errors.New("arp: responder not running")
	ErrRunning    = errors.New("arp: responder already running")
)

// Stats counts what a responder did since it was made (over all its runs).
type Stats struct {
	Answered   uint64 // ARP requests answered
	Gratuitous uint64 // gratuitous ARP messages sent
	// Limited counts requests for owned addresses left unanswered because
	// their requester, or all requesters together, asked too often.
	Limited uint64
}

// Responder answers ARP requests on one interface for the IPv4 addresses it
// owns. Its methods are safe for concurrent use.
type Responder struct {
	iface string
	log   *slog.Logger

	owned atomic.Pointer[map[netip.Addr]bool]

	mu      sync.Mutex
	running bool
	conn    *packet.Conn     // nil unless running
	mac     net.HardwareAddr // of the running socket's interface

	answered, gratuitous, limited atomic.Uint64
}

// New returns a responder for the named interface that owns nothing yet.
// It does no I/O.
func New(iface string, log *slog.Logger) *Responder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Responder{iface: iface, log: log.With("interface", iface, "protocol", "arp")}
	r.owned.Store(&map[netip.Addr]bool{})
	return r
}

// Interface is the name of the interface the responder serves.
func (r *Responder) Interface() string { return r.iface }

// Set replaces the owned addresses; non-IPv4 addresses are ignored. It takes
// effect at once: from its return on, requests for an address no longer in
// the set go unanswered. Set sends nothing; the caller announces newly owned
// addresses with Gratuitous.
func (r *Responder) Set(owned []netip.Addr) {
	m := make(map[netip.Addr]bool, len(owned))
	for _, ip := range owned {
		if ip = ip.Unmap(); ip.Is4() {
			m[ip] = true
		}
	}
	r.owned.Store(&m)
}

// Owns reports whether the responder currently answers for ip.
func (r *Responder) Owns(ip netip.Addr) bool { return (*r.owned.Load())[ip.Unmap()] }

// Running reports whether Run has the socket open and is answering.
func (r *Responder) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn != nil
}

// Stats returns the counters.
func (r *Responder) Stats() Stats {
	return Stats{Answered: r.answered.Load(), Gratuitous: r.gratuitous.Load(), Limited: r.limited.Load()}
}

// Gratuitous sends one gratuitous ARP for ip, which must be owned. It returns
// ErrNotRunning while the socket is not open (Run announces every owned
// address once when it opens it).
func (r *Responder) Gratuitous(ip netip.Addr) error {
	ip = ip.Unmap()
	if !r.Owns(ip) {
		return fmt.Errorf("%w: %s", ErrNotOwned, ip)
	}
	r.mu.Lock()
	conn, mac := r.conn, r.mac
	r.mu.Unlock()
	if conn == nil {
		return ErrNotRunning
	}
	return r.sendGratuitous(conn, mac, ip)
}

func (r *Responder) sendGratuitous(conn *packet.Conn, mac net.HardwareAddr, ip netip.Addr) error {
	frame, err := gratuitous(mac, ip)
	if err != nil {
		return fmt.Errorf("arp: gratuitous for %s: %w", ip, err)
	}
	if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: frame[:6]}); err != nil {
		return fmt.Errorf("arp: gratuitous for %s on %s: %w", ip, r.iface, err)
	}
	r.gratuitous.Add(1)
	return nil
}

// Run opens the interface's packet socket, announces every owned address
// once, and answers requests until ctx ends (it then returns nil) or the
// socket fails (interface gone, say). It may be called again after it
// returned, never twice at once.
//
// Sockets belong to the network namespace of the calling thread, so Run opens
// them on the goroutine that calls it.
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
		r.running, r.conn, r.mac = false, nil, nil
		r.mu.Unlock()
	}()

	ifi, err := net.InterfaceByName(r.iface)
	if err != nil {
		return fmt.Errorf("arp: %w", err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("arp: %s has no Ethernet address", r.iface)
	}
	filter, err := l2guard.Filter(nil, requestFilter())
	if err != nil {
		return fmt.Errorf("arp: filter: %w", err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: filter})
	if err != nil {
		return fmt.Errorf("arp: listen on %s: %w", r.iface, err)
	}
	defer conn.Close() //nolint:errcheck // a receive socket; also closed when ctx ends
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	mac := ifi.HardwareAddr
	r.mu.Lock()
	r.conn, r.mac = conn, mac
	r.mu.Unlock()
	r.log.Info("answering ARP", "mac", mac.String())

	for ip := range *r.owned.Load() {
		if err := r.sendGratuitous(conn, mac, ip); err != nil {
			r.log.Warn("gratuitous ARP failed", "ip", ip, "error", err)
		}
	}

	// Anyone on the LAN can send requests: l2guard limits the replies per
	// sender and in all, mutes flooding senders in the kernel, and logs
	// summaries, never a line per frame.
	guard := l2guard.New("ARP requests", r.log)
	err = guard.Serve(conn, make([]byte, 1500), requestFilter(), func(frame []byte) (func() ([]byte, error), netip.Addr, bool) {
		req, ok := request(frame, mac, r.Owns)
		if !ok {
			return nil, netip.Addr{}, false
		}
		return func() ([]byte, error) { return answer(req, mac) }, req.TargetIP, true
	}, l2guard.Counters{Answered: &r.answered, Limited: &r.limited})
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("arp: read on %s: %w", r.iface, err)
}
