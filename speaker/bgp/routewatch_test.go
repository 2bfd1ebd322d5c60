package bgp

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/netns"
)

// routeWatcher timestamps route additions and removals in a namespace's
// main table as the kernel announces them (rtnetlink multicast), so the
// benchmarks time "route in the router's FIB" without polling.
type routeWatcher struct {
	fd   int
	stop atomic.Bool

	mu      sync.Mutex
	added   map[netip.Prefix]time.Time
	removed map[netip.Prefix]time.Time
	lost    bool // the socket overflowed (ENOBUFS); counts are incomplete
}

func watchRoutes(t testing.TB, ns *netns.NS) *routeWatcher {
	t.Helper()
	w := &routeWatcher{added: map[netip.Prefix]time.Time{}, removed: map[netip.Prefix]time.Time{}}
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
			unix.Close(fd)
			return err
		}
		w.fd = fd
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go w.loop(done)
	t.Cleanup(func() {
		w.stop.Store(true)
		<-done
		unix.Close(w.fd)
	})
	return w
}

func (w *routeWatcher) loop(done chan struct{}) {
	defer close(done)
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
			m := &msgs[i]
			if (m.Header.Type != unix.RTM_NEWROUTE && m.Header.Type != unix.RTM_DELROUTE) || len(m.Data) < unix.SizeofRtMsg {
				continue
			}
			family, bits, table := m.Data[0], int(m.Data[1]), m.Data[4]
			if table != unix.RT_TABLE_MAIN {
				continue
			}
			attrs, err := syscall.ParseNetlinkRouteAttr(m)
			if err != nil {
				continue
			}
			for _, a := range attrs {
				if a.Attr.Type != unix.RTA_DST {
					continue
				}
				addr, ok := netip.AddrFromSlice(a.Value)
				if !ok || (family == unix.AF_INET) != addr.Is4() {
					continue
				}
				p := netip.PrefixFrom(addr, bits)
				if m.Header.Type == unix.RTM_NEWROUTE {
					w.added[p] = now
					delete(w.removed, p)
				} else {
					w.removed[p] = now
					delete(w.added, p)
				}
			}
		}
		w.mu.Unlock()
	}
}

// addedAt returns when p was last added (and is still there).
func (w *routeWatcher) addedAt(p netip.Prefix) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.added[p]
	return at, ok
}

func (w *routeWatcher) removedAt(p netip.Prefix) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.removed[p]
	return at, ok
}

// countAdded counts present prefixes within within, and the time of the latest.
func (w *routeWatcher) countAdded(within netip.Prefix) (int, time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, last := 0, time.Time{}
	for p, at := range w.added {
		if within.Contains(p.Addr()) {
			n++
			if at.After(last) {
				last = at
			}
		}
	}
	return n, last, w.lost
}
