package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/netns"
)

// DialContext connects from inside ns to a literal address ("10.0.0.11:80",
// "[fd00:10::11]:80"; network tcp, tcp4, tcp6, udp, udp4, udp6). Only the
// socket is created on a thread inside the namespace; connecting and all I/O
// run on ordinary goroutines, so many dials can be in flight at once.
func DialContext(ctx context.Context, ns *netns.NS, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("lab dial %s: the lab dials literal addresses only: %w", address, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	typ := unix.SOCK_STREAM
	if strings.HasPrefix(network, "udp") {
		typ = unix.SOCK_DGRAM
	}
	var (
		family int
		sa     unix.Sockaddr
	)
	if ap.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	var fd int
	if err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		return nil, fmt.Errorf("lab dial %s in %s: socket: %w", address, ns.Name, err)
	}
	// Non-blocking: served by the runtime poller.
	f := os.NewFile(uintptr(fd), "lab-dial")
	defer f.Close() //nolint:errcheck // net.FileConn holds its own duplicate
	if err := connect(ctx, f, fd, sa); err != nil {
		return nil, fmt.Errorf("lab dial %s %s from %s: %w", network, address, ns.Name, err)
	}
	return net.FileConn(f)
}

// connect starts a non-blocking connect and waits for it to finish or ctx to end.
func connect(ctx context.Context, f *os.File, fd int, sa unix.Sockaddr) error {
	err := unix.Connect(fd, sa)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINPROGRESS) {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = f.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var connErr error
	werr := rc.Write(func(fd uintptr) bool {
		if _, err := unix.Getpeername(int(fd)); err == nil {
			return true
		}
		n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			connErr = err
			return true
		}
		if n != 0 {
			connErr = unix.Errno(n)
			return true
		}
		return false // still connecting: wait until writable
	})
	if werr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return werr
	}
	_ = f.SetWriteDeadline(time.Time{})
	return connErr
}

// HTTPClient returns a client whose connections start inside ns. Every
// request opens a new connection (no keep-alive), so each one is routed,
// ARPed and load-balanced afresh, as failover measurements need.
func HTTPClient(ns *netns.NS, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       Dialer(ns),
			DisableKeepAlives: true,
			Proxy:             nil,
		},
	}
}

// Dialer dials from inside ns (DialContext), for clients that take a dial
// function.
func Dialer(ns *netns.NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return DialContext(ctx, ns, network, addr)
	}
}
