// Package arp answers ARP requests for the IPv4 service addresses this node
// owns, on one interface, and announces takeovers with gratuitous ARP. It is
// one of the two packages of Herald that open raw sockets (with ndp); the
// lifecycle it shares with ndp is speaker/l2responder.
//
// The addresses are never configured on the interface: the responder listens
// on an AF_PACKET socket and writes the replies itself.
package arp

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"

	"github.com/heraldlb/herald/speaker/l2responder"
)

// New returns a responder for the named interface that owns nothing yet; it
// answers for IPv4 addresses only. It does no I/O.
func New(iface string, log *slog.Logger) *l2responder.Responder {
	return l2responder.New(iface, log, l2responder.Protocol{
		Name:         "arp",
		Requests:     "ARP requests",
		Announcement: "gratuitous ARP",
		Accept: func(ip netip.Addr) (netip.Addr, bool) {
			ip = ip.Unmap()
			return ip, ip.Is4()
		},
		Filter:   requestFilter(),
		Open:     open,
		Parse:    parse,
		Announce: gratuitous,
	})
}

// open opens the packet socket that receives ARP requests on ifi.
func open(ifi *net.Interface, filter []bpf.RawInstruction, _ *slog.Logger) (l2responder.Link, error) {
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", ifi.Name, err)
	}
	return conn, nil
}
