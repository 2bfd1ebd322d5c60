// Package l2responder is what the ARP and NDP responders (speaker/arp,
// speaker/ndp) share: the owned addresses, the running state and counters,
// and Run, which answers requests on one interface and announces owned
// addresses. Each protocol supplies a Protocol: how to open its sockets,
// which frames to answer and how, and what an announcement is.
//
// It opens no socket itself (arp and ndp are Herald's only packages that
// open raw sockets); it reads and writes on the ones Protocol.Open returns.
package l2responder

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
	"golang.org/x/net/bpf"

	"github.com/heraldlb/herald/speaker/l2guard"
)

// Sentinel errors of Gratuitous and Run, wrapped with the protocol's name.
var (
	ErrNotOwned   = errors.New("address not owned")
	ErrNotRunning = errors.New("responder not running")
	ErrRunning    = errors.New("responder already running")
)

// Parser decides whether frame, received on the interface whose hardware
// address is mac, is a request to answer, given which addresses are owned.
// It returns how to build the answer (built only when it is sent) and the
// address asked about.
type Parser func(frame []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) (answer func() ([]byte, error), about netip.Addr, ok bool)

// Reply is p with the answer built at once: the form the protocols' tests
// and fuzz targets check.
func (p Parser) Reply(frame []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) ([]byte, netip.Addr, bool) {
	build, about, ok := p(frame, mac, owns)
	if !ok {
		return nil, netip.Addr{}, false
	}
	out, err := build()
	if err != nil {
		return nil, netip.Addr{}, false
	}
	return out, about, true
}

// Link is one run's open sockets on the interface.
type Link interface {
	l2guard.Conn  // the packet socket: requests in, answers and announcements out
	Close() error // closes every socket of the run
}

// Protocol is the part of a responder that knows its protocol.
type Protocol struct {
	Name         string // "arp": starts errors, and is the protocol attribute of log lines
	Requests     string // "ARP requests": what log lines speak of
	Announcement string // "gratuitous ARP": what Gratuitous sends, in log lines and errors
	// Accept returns the form of ip the protocol answers for, false for an
	// address it never answers for (of the other family, say).
	Accept func(ip netip.Addr) (netip.Addr, bool)
	// Filter is the socket filter that passes only requests, so the kernel
	// wakes the responder for nothing else.
	Filter []bpf.Instruction
	// Open opens the run's sockets on ifi, the packet socket with filter
	// (Filter, with the rule that drops muted senders). log is the
	// responder's, for what the sockets log later.
	Open func(ifi *net.Interface, filter []bpf.RawInstruction, log *slog.Logger) (Link, error)
	// Own, if set, is told the owned addresses when a run's sockets are open
	// and at every Set while they stay open; calls never overlap and never
	// follow the Link's Close.
	Own   func(owned map[netip.Addr]bool)
	Parse Parser
	// Announce is the frame that tells the LAN that mac now holds ip.
	Announce func(mac net.HardwareAddr, ip netip.Addr) ([]byte, error)
}

// Stats counts what a responder did since it was made (over all its runs).
type Stats struct {
	Answered   uint64 // requests answered
	Gratuitous uint64 // announcements sent
	// Limited counts requests for owned addresses left unanswered because
	// their requester, or all requesters together, asked too often.
	Limited uint64
}

// Responder answers requests on one interface for the addresses it owns.
// Its methods are safe for concurrent use.
type Responder struct {
	iface string
	log   *slog.Logger
	p     Protocol
	// interfaceByName is net.InterfaceByName; tests replace it.
	interfaceByName func(name string) (*net.Interface, error)

	owned atomic.Pointer[map[netip.Addr]bool]

	mu      sync.Mutex // guards the fields below and calls of p.Own
	running bool
	link    Link             // nil unless the run's sockets are open
	mac     net.HardwareAddr // of the running link's interface

	answered, gratuitous, limited atomic.Uint64
}

// New returns a responder of protocol p for the named interface that owns
// nothing yet. It does no I/O.
func New(iface string, log *slog.Logger, p Protocol) *Responder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Responder{iface: iface, log: log.With("interface", iface, "protocol", p.Name), p: p, interfaceByName: net.InterfaceByName}
	r.owned.Store(&map[netip.Addr]bool{})
	return r
}

// Interface is the name of the interface the responder serves.
func (r *Responder) Interface() string { return r.iface }

// Set replaces the owned addresses; those the protocol never answers for
// are ignored. It takes effect at once: from its return on, requests for an
// address no longer in the set go unanswered. Set sends nothing; the caller
// announces newly owned addresses with Gratuitous.
func (r *Responder) Set(owned []netip.Addr) {
	m := make(map[netip.Addr]bool, len(owned))
	for _, ip := range owned {
		if ip, ok := r.p.Accept(ip); ok {
			m[ip] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owned.Store(&m)
	if r.link != nil && r.p.Own != nil {
		r.p.Own(m)
	}
}

// Owns reports whether the responder currently answers for ip.
func (r *Responder) Owns(ip netip.Addr) bool {
	ip, ok := r.p.Accept(ip)
	return ok && (*r.owned.Load())[ip]
}

// Running reports whether Run has the sockets open and is answering.
func (r *Responder) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.link != nil
}

// Stats returns the counters.
func (r *Responder) Stats() Stats {
	return Stats{Answered: r.answered.Load(), Gratuitous: r.gratuitous.Load(), Limited: r.limited.Load()}
}

// Gratuitous sends one announcement for ip, which must be owned. It returns
// ErrNotRunning while the sockets are not open (Run announces every owned
// address once when it opens them).
func (r *Responder) Gratuitous(ip netip.Addr) error {
	if !r.Owns(ip) {
		return fmt.Errorf("%s: %w: %s", r.p.Name, ErrNotOwned, ip)
	}
	ip, _ = r.p.Accept(ip)
	r.mu.Lock()
	link, mac := r.link, r.mac
	r.mu.Unlock()
	if link == nil {
		return fmt.Errorf("%s: %w", r.p.Name, ErrNotRunning)
	}
	return r.announce(link, mac, ip)
}

func (r *Responder) announce(link Link, mac net.HardwareAddr, ip netip.Addr) error {
	frame, err := r.p.Announce(mac, ip)
	if err != nil {
		return fmt.Errorf("%s: %s for %s: %w", r.p.Name, r.p.Announcement, ip, err)
	}
	if _, err := link.WriteTo(frame, &packet.Addr{HardwareAddr: frame[:6]}); err != nil {
		return fmt.Errorf("%s: %s for %s on %s: %w", r.p.Name, r.p.Announcement, ip, r.iface, err)
	}
	r.gratuitous.Add(1)
	return nil
}

// Run opens the interface's sockets, announces every owned address once,
// and answers requests until ctx ends (it then returns nil) or a socket
// fails (interface gone, say). It may be called again after it returned,
// never twice at once.
//
// Sockets belong to the network namespace of the calling thread, so Run
// opens them on the goroutine that calls it.
func (r *Responder) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return fmt.Errorf("%s: %w", r.p.Name, ErrRunning)
	}
	r.running = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()

	ifi, err := r.interfaceByName(r.iface)
	if err != nil {
		return fmt.Errorf("%s: %w", r.p.Name, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("%s: %s has no Ethernet address", r.p.Name, r.iface)
	}
	filter, err := l2guard.Filter(nil, r.p.Filter)
	if err != nil {
		return fmt.Errorf("%s: filter: %w", r.p.Name, err)
	}
	link, err := r.p.Open(ifi, filter, r.log)
	if err != nil {
		return fmt.Errorf("%s: %w", r.p.Name, err)
	}
	mac := ifi.HardwareAddr
	r.mu.Lock()
	r.link, r.mac = link, mac
	if r.p.Own != nil {
		r.p.Own(*r.owned.Load())
	}
	r.mu.Unlock()

	// The one way the sockets close, when ctx ends (which also stops the
	// read loop) or the read loop fails: forget them under the lock, then
	// close them. Set and Gratuitous take them under the same lock, so
	// neither starts on a closed socket.
	closeLink := sync.OnceFunc(func() {
		r.mu.Lock()
		r.link, r.mac = nil, nil
		r.mu.Unlock()
		_ = link.Close()
	})
	defer closeLink()
	stop := context.AfterFunc(ctx, closeLink)
	defer stop()
	r.log.Info("answering "+r.p.Requests, "mac", mac.String())

	for ip := range *r.owned.Load() {
		if err := r.announce(link, mac, ip); err != nil {
			r.log.Warn(r.p.Announcement+" failed", "ip", ip, "err", err)
		}
	}

	// Anyone on the LAN can send requests: l2guard limits the answers per
	// sender and in all, mutes flooding senders in the kernel, and logs
	// summaries, never a line per frame.
	guard := l2guard.New(r.p.Requests, r.log)
	buf := make([]byte, max(ifi.MTU, 1500)+ethernetHeader)
	err = guard.Serve(link, buf, r.p.Filter, func(frame []byte) (func() ([]byte, error), netip.Addr, bool) {
		return r.p.Parse(frame, mac, r.Owns)
	}, l2guard.Counters{Answered: &r.answered, Limited: &r.limited})
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("%s: read on %s: %w", r.p.Name, r.iface, err)
}

// ethernetHeader is the length of an untagged Ethernet header, which a
// frame adds to the interface's MTU.
const ethernetHeader = 14
