package ndp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// RouterAdvertiser makes the node known on one link to routers that peer
// by interface (BGP unnumbered, FRR's "neighbor IF interface"): such a
// router learns its neighbor's link-local address from the neighbor's
// Router Advertisements. Each advertisement has a router lifetime of 0 and
// no prefixes, so hosts on the link never take the node as a default
// router or configure addresses from it; it only carries the source
// link-layer address.
type RouterAdvertiser struct {
	Interface string
	// Interval between advertisements (0: 3 s, RFC 4861's shortest, so a
	// router that starts finds the node within seconds).
	Interval time.Duration
	Log      *slog.Logger
}

// Run advertises at once and then every Interval until ctx ends. While the
// interface is missing or has no link-local address yet it retries every
// Interval; it returns nil when ctx ends.
func (a *RouterAdvertiser) Run(ctx context.Context) error {
	every := a.Interval
	if every <= 0 {
		every = 3 * time.Second
	}
	log := a.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var conn *ndp.Conn
	var mac net.HardwareAddr
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastErr := ""
	for {
		var err error
		if conn == nil {
			conn, mac, err = openAdvertiser(a.Interface)
		}
		if err == nil {
			err = conn.WriteTo(routerAdvertisement(mac), nil, netip.IPv6LinkLocalAllNodes())
			if err != nil {
				_ = conn.Close()
				conn = nil
			}
		}
		switch {
		case err == nil:
			lastErr = ""
		case err.Error() != lastErr: // a lasting problem is logged once
			lastErr = err.Error()
			log.Warn("router advertisement not sent", "interface", a.Interface, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// openAdvertiser opens an ICMPv6 socket on the interface's link-local
// address that receives nothing (it only sends) and returns the
// interface's MAC address.
func openAdvertiser(name string) (*ndp.Conn, net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, nil, fmt.Errorf("ndp: %w", err)
	}
	conn, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, nil, fmt.Errorf("ndp: interface %s: %w", name, err)
	}
	var none ipv6.ICMPFilter
	none.SetAll(true)
	if err := conn.SetICMPFilter(&none); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("ndp: interface %s: %w", name, err)
	}
	return conn, ifi.HardwareAddr, nil
}

// routerAdvertisement is a Router Advertisement that makes no one use the
// sender as a router: lifetime 0, no prefixes, every other field
// unspecified (0), and the sender's link-layer address.
func routerAdvertisement(mac net.HardwareAddr) *ndp.RouterAdvertisement {
	ra := &ndp.RouterAdvertisement{}
	if len(mac) > 0 {
		ra.Options = append(ra.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac})
	}
	return ra
}
