package routers

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/netns"
)

// RouteWatcher follows the main routing table of a namespace (a router's
// FIB) as the kernel announces changes over rtnetlink, and timestamps
// them: measurements see a route or a next hop appear or leave when it
// happens, without polling.
type RouteWatcher struct {
	fd   int
	stop atomic.Bool
	done chan struct{}

	mu     sync.Mutex
	routes map[netip.Prefix]*RouteState
	lost   bool // the socket overflowed (ENOBUFS): the view may be incomplete
}

// RouteState is what the watcher knows of one prefix.
type RouteState struct {
	Present bool
	// Gateways are the next hops (several for ECMP), sorted.
	Gateways []netip.Addr
	// Since is when the route last changed (added, next hops changed, removed).
	Since time.Time
}

// WatchRoutes starts watching ns's main table; Close stops it. Only
// changes after the call are seen.
func WatchRoutes(ns *netns.NS) (*RouteWatcher, error) {
	w := &RouteWatcher{routes: map[netip.Prefix]*RouteState{}, done: make(chan struct{})}
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
		// Closing a socket does not wake a blocked recvfrom: poll for stop.
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE}); err != nil {
			_ = unix.Close(fd)
			return err
		}
		w.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("routers: watch routes in %s: %w", ns.Name, err)
	}
	go w.loop()
	return w, nil
}

// Close stops the watcher.
func (w *RouteWatcher) Close() error {
	if w.stop.Swap(true) {
		return nil
	}
	<-w.done
	return unix.Close(w.fd)
}

func (w *RouteWatcher) loop() {
	defer close(w.done)
	buf := make([]byte, 1<<20)
	for {
		n, _, err := unix.Recvfrom(w.fd, buf, 0)
		now := time.Now()
		if w.stop.Load() {
			return
		}
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOBUFS) {
			w.mu.Lock()
			w.lost = true
			w.mu.Unlock()
			continue
		}
		if err != nil || n == 0 {
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		w.mu.Lock()
		for i := range msgs {
			w.apply(&msgs[i], now)
		}
		w.mu.Unlock()
	}
}

// apply records one RTM_NEWROUTE or RTM_DELROUTE of the main table. A new
// route replaces the next hops, unless the kernel says it appends one (an
// IPv6 sibling); a deletion that names next hops removes only those.
func (w *RouteWatcher) apply(m *syscall.NetlinkMessage, now time.Time) {
	typ := m.Header.Type
	if (typ != unix.RTM_NEWROUTE && typ != unix.RTM_DELROUTE) || len(m.Data) < unix.SizeofRtMsg {
		return
	}
	family, bits, table := m.Data[0], int(m.Data[1]), m.Data[4]
	if table != unix.RT_TABLE_MAIN {
		return
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return
	}
	var dst netip.Addr
	var gws []netip.Addr
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(a.Value)
		case unix.RTA_GATEWAY:
			if gw, ok := netip.AddrFromSlice(a.Value); ok {
				gws = append(gws, gw)
			}
		case unix.RTA_MULTIPATH:
			gws = append(gws, multipathGateways(a.Value)...)
		}
	}
	if !dst.IsValid() || (family == unix.AF_INET) != dst.Is4() {
		return
	}
	p := netip.PrefixFrom(dst, bits)
	st := w.routes[p]
	if st == nil {
		st = &RouteState{}
		w.routes[p] = st
	}
	switch {
	case typ == unix.RTM_NEWROUTE && m.Header.Flags&unix.NLM_F_APPEND != 0 && st.Present:
		st.Gateways = append(st.Gateways, gws...)
	case typ == unix.RTM_NEWROUTE:
		st.Present, st.Gateways = true, gws
	case len(gws) > 0 && st.Present:
		st.Gateways = slices.DeleteFunc(st.Gateways, func(g netip.Addr) bool { return slices.Contains(gws, g) })
		st.Present = len(st.Gateways) > 0
	default:
		st.Present, st.Gateways = false, nil
	}
	st.Gateways = slices.Compact(slices.SortedFunc(slices.Values(st.Gateways), netip.Addr.Compare))
	st.Since = now
}

// multipathGateways reads the gateways of RTA_MULTIPATH: a list of struct
// rtnexthop, each followed by its own attributes.
func multipathGateways(b []byte) []netip.Addr {
	var out []netip.Addr
	for len(b) >= unix.SizeofRtNexthop {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < unix.SizeofRtNexthop || n > len(b) {
			break
		}
		attrs := b[unix.SizeofRtNexthop:n]
		for len(attrs) >= unix.SizeofRtAttr {
			l := int(binary.NativeEndian.Uint16(attrs[0:2]))
			t := binary.NativeEndian.Uint16(attrs[2:4])
			if l < unix.SizeofRtAttr || l > len(attrs) {
				break
			}
			if t == unix.RTA_GATEWAY {
				if gw, ok := netip.AddrFromSlice(attrs[unix.SizeofRtAttr:l]); ok {
					out = append(out, gw)
				}
			}
			attrs = attrs[(l+3)&^3:]
		}
		b = b[(n+3)&^3:]
	}
	return out
}

// Route returns what the watcher saw of p (zero if nothing).
func (w *RouteWatcher) Route(p netip.Prefix) RouteState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.routes[p.Masked()]; st != nil {
		return RouteState{Present: st.Present, Gateways: slices.Clone(st.Gateways), Since: st.Since}
	}
	return RouteState{}
}

// Count counts the routes inside within that are present and satisfy
// cond (nil: any present route), returns when the latest of them changed,
// and whether events were lost.
func (w *RouteWatcher) Count(within netip.Prefix, cond func(RouteState) bool) (n int, last time.Time, lost bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p, st := range w.routes {
		if !st.Present || !within.Contains(p.Addr()) || p.Bits() < within.Bits() || (cond != nil && !cond(*st)) {
			continue
		}
		n++
		if st.Since.After(last) {
			last = st.Since
		}
	}
	return n, last, w.lost
}

// Wait polls the watcher's view of p (every millisecond, no syscalls)
// until cond holds, and returns that state.
func (w *RouteWatcher) Wait(ctx context.Context, p netip.Prefix, cond func(RouteState) bool) (RouteState, error) {
	for {
		st := w.Route(p)
		if cond(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("routers: route %v: %w (last seen: %+v)", p, ctx.Err(), st)
		case <-time.After(time.Millisecond):
		}
	}
}
