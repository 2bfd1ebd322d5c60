package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/heraldlb/herald/speaker/ndp"
	"github.com/heraldlb/herald/speaker/netif"
)

// Sessions over an interface (Peer.Interface) run on IPv6 link-local
// addresses, the zone of the address naming the interface. With an
// address given, that is all. Without one the peer is the IPv6 router the
// node hears Router Advertisements from on that link (BGP unnumbered):
// the kernel keeps such neighbors in its table with the router flag, and
// the one flagged link-local neighbor of the interface is the peer. The
// node in turn sends Router Advertisements with a lifetime of 0 on the
// link (speaker/ndp), since unnumbered routers learn their neighbor the
// same way. While no router is found the peer waits, and the table is
// read again every status interval; a session that is down picks up a
// router whose address changed (a replaced switch) the same way.

// validateLinkLocal checks the interface and address of a peer.
func (p Peer) validateLinkLocal() error {
	a := p.Address
	switch {
	case p.Interface == "" && a.IsValid() && a.Is6() && a.IsLinkLocalUnicast():
		return fmt.Errorf("link-local address %v needs an interface", a)
	case p.Interface == "":
		return nil
	case a.IsValid() && (!a.Is6() || a.Is4In6() || !a.IsLinkLocalUnicast()):
		return fmt.Errorf("address %v on interface %s is not an IPv6 link-local address", a, p.Interface)
	case a.Zone() != "" && a.Zone() != p.Interface:
		return fmt.Errorf("address %v is scoped to another interface than %s", a, p.Interface)
	case p.SourceAddress.IsValid():
		return errors.New("a source address does not apply to an interface session (it uses the interface's link-local address)")
	case p.EBGPMultiHop:
		return errors.New("multihop does not apply to an interface session (link-local addresses do not cross routers)")
	}
	return nil
}

// unnumbered reports whether the peer is found on its interface.
func (p Peer) unnumbered() bool { return p.Interface != "" && !p.Address.IsValid() }

// neighbor is one IPv6 entry of the kernel's neighbor table.
type neighbor struct {
	addr netip.Addr
	// router: the neighbor sent a Router Advertisement (or a Neighbor
	// Advertisement with the router flag).
	router bool
	// failed: address resolution failed or is under way.
	failed bool
}

// pickRouter returns the link-local address of the one usable router
// among an interface's neighbors, other than the interface's own
// addresses (own holds them: the node's own Router Advertisements come
// back to it by multicast loopback). It is pure.
func pickRouter(ifname string, neighbors []neighbor, own []netip.Addr) (netip.Addr, error) {
	var routers []netip.Addr
	for _, n := range neighbors {
		if slices.Contains(own, n.addr.WithZone("")) {
			continue
		}
		if n.router && !n.failed && n.addr.Is6() && n.addr.IsLinkLocalUnicast() {
			routers = append(routers, n.addr.WithZone(""))
		}
	}
	slices.SortFunc(routers, netip.Addr.Compare)
	routers = slices.Compact(routers)
	switch len(routers) {
	case 0:
		return netip.Addr{}, fmt.Errorf("no IPv6 router seen on %s yet: the peer is found by its Router Advertisements", ifname)
	case 1:
		return routers[0].WithZone(ifname), nil
	}
	return netip.Addr{}, fmt.Errorf("%d IPv6 routers on %s (%v): set the address of the one to peer with", len(routers), ifname, routers)
}

// readNeighbors lists the IPv6 neighbors of an interface and its own
// addresses.
func readNeighbors(ifname string) ([]neighbor, []netip.Addr, error) {
	ifaces, err := netif.List()
	if err != nil {
		return nil, nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	i := slices.IndexFunc(ifaces, func(i netif.Interface) bool { return i.Name == ifname })
	if i < 0 {
		return nil, nil, fmt.Errorf("interface %s: no such interface", ifname)
	}
	entries, err := netlink.NeighList(ifaces[i].Index, netlink.FAMILY_V6)
	if err != nil {
		return nil, nil, fmt.Errorf("interface %s: neighbor table: %w", ifname, err)
	}
	own := make([]netip.Addr, 0, len(ifaces[i].Prefixes))
	for _, p := range ifaces[i].Prefixes {
		own = append(own, p.Addr())
	}
	out := make([]neighbor, 0, len(entries))
	for _, e := range entries {
		a, ok := netip.AddrFromSlice(e.IP)
		if !ok {
			continue
		}
		out = append(out, neighbor{
			addr:   a,
			router: e.Flags&netlink.NTF_ROUTER != 0,
			failed: e.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 || e.State == netlink.NUD_NONE,
		})
	}
	return out, own, nil
}

// resolvePeers gives every interface peer its zoned address. An unnumbered
// peer keeps the address of its running session while that is up, takes
// the router found on its interface otherwise, and without one keeps the
// address it runs with, or waits (the error says why). Peers that are
// invalid pass unchanged for planPeers to report.
func (e *instance) resolvePeers(desired []Peer) (resolved []Peer, waiting map[string]error) {
	waiting = map[string]error{}
	found := map[string]netip.Addr{}
	errs := map[string]error{}
	for _, p := range desired {
		if p.Interface == "" || p.validate() != nil {
			resolved = append(resolved, p)
			continue
		}
		if !p.unnumbered() {
			p.Address = p.Address.WithZone(p.Interface)
			resolved = append(resolved, p)
			continue
		}
		var current netip.Addr
		if ps := e.peers[p.Name]; ps != nil && ps.cfg.Interface == p.Interface {
			current = ps.cfg.Address
			if e.status[p.Name].Established() {
				p.Address = current
				resolved = append(resolved, p)
				continue
			}
		}
		if _, done := found[p.Interface]; !done {
			addr, err := e.findRouter(p.Interface)
			found[p.Interface], errs[p.Interface] = addr, err
		}
		switch {
		case found[p.Interface].IsValid():
			p.Address = found[p.Interface]
		case current.IsValid():
			p.Address = current
		default:
			waiting[p.Name] = errs[p.Interface]
			continue
		}
		resolved = append(resolved, p)
	}
	return resolved, waiting
}

// findRouter reads an interface's neighbors and picks its router.
func (e *instance) findRouter(ifname string) (netip.Addr, error) {
	n, own, err := e.ll.readNeighbors(ifname)
	if err != nil {
		return netip.Addr{}, err
	}
	return pickRouter(ifname, n, own)
}

// recordWaiting shows unnumbered peers that have no router yet.
func (e *instance) recordWaiting(waiting map[string]error) {
	for name, err := range waiting {
		st := e.status[name]
		if st.LastError != err.Error() {
			e.log.Info("BGP peer waits for its router", "peer", name, "reason", err)
		}
		st.Name, st.State, st.LastError = name, StateIdle, err.Error()
		e.status[name] = st
		e.rejected[name] = true // cleared by recordInvalid once the peer runs
	}
}

// reresolve re-applies the latest state when an unnumbered peer that is
// not up would now resolve to another address (or to one at all).
func (e *instance) reresolve(ctx context.Context) {
	if e.last == nil || e.s == nil {
		return
	}
	checked := map[string]netip.Addr{}
	for _, p := range e.last.peers {
		if !p.unnumbered() || e.status[p.Name].Established() || p.validate() != nil {
			continue
		}
		addr, ok := checked[p.Interface]
		if !ok {
			addr, _ = e.findRouter(p.Interface)
			checked[p.Interface] = addr
		}
		ps := e.peers[p.Name]
		if addr.IsValid() && (ps == nil || ps.cfg.Address != addr) {
			e.log.Info("BGP peer's router found", "peer", p.Name, "address", addr)
			e.apply(ctx, e.last)
			return
		}
	}
}

// linkLocal is the instance's link-local state: the Router Advertisement
// senders by interface, and the neighbor table reader (replaced in tests).
type linkLocal struct {
	log           *slog.Logger
	advertisers   map[string]context.CancelFunc
	readNeighbors func(ifname string) ([]neighbor, []netip.Addr, error)
}

// advertise runs a Router Advertisement sender on the interface of every
// valid unnumbered peer, and stops those no peer needs.
func (ll *linkLocal) advertise(peers []Peer) {
	want := map[string]bool{}
	for _, p := range peers {
		if p.unnumbered() && p.validate() == nil {
			want[p.Interface] = true
		}
	}
	for ifname, stop := range ll.advertisers {
		if !want[ifname] {
			stop()
			delete(ll.advertisers, ifname)
		}
	}
	for ifname := range want {
		if _, ok := ll.advertisers[ifname]; ok {
			continue
		}
		if ll.advertisers == nil {
			ll.advertisers = map[string]context.CancelFunc{}
		}
		ctx, stop := context.WithCancel(context.Background())
		ll.advertisers[ifname] = stop
		ra := &ndp.RouterAdvertiser{Interface: ifname, Log: ll.log}
		go func() { _ = ra.Run(ctx) }()
	}
}

// stop ends every Router Advertisement sender.
func (ll *linkLocal) stop() {
	for ifname, stop := range ll.advertisers {
		stop()
		delete(ll.advertisers, ifname)
	}
}

// resolveLinkNextHop sets the next hop of an interface session's IPv4
// paths: the node's IPv4 address on the interface, or without one the
// session's own link-local address (RFC 8950: IPv4 routes with an IPv6
// next hop, as unnumbered routers install them).
func (e *instance) resolveLinkNextHop(ps *peerState) {
	ifaces, err := netif.List()
	if err != nil {
		ps.crossErr = err
		return
	}
	ps.crossErr = nil
	if nh := pickLinkNextHop(ps.cfg.Interface, ifaces); nh != ps.crossNH {
		ps.crossNH = nh
		ps.crossDirty = true
	}
}

// pickLinkNextHop returns the interface's IPv4 address, else the IPv6
// unspecified address, for which gobgp puts in the session's local
// address. It is pure.
func pickLinkNextHop(ifname string, ifaces []netif.Interface) netip.Addr {
	for _, ifc := range ifaces {
		if ifc.Name != ifname {
			continue
		}
		for _, p := range ifc.Prefixes {
			if a := p.Addr(); a.Is4() && !a.IsLoopback() && !a.IsLinkLocalUnicast() {
				return a
			}
		}
	}
	return netip.IPv6Unspecified()
}
