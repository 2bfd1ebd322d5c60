package announce

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// linkEvents subscribes to the kernel's link, address and route changes
// (rtnetlink multicast groups) and signals changed for each batch, until
// ctx ends. A link going down, an address or the route toward a pool going
// away thus reach the announcer at once instead of at its next rescan.
func linkEvents(ctx context.Context, changed chan<- struct{}) error {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("announce: netlink socket: %w", err)
	}
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
		unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK, Groups: groups}); err != nil {
		_ = syscall.Close(fd)
		return fmt.Errorf("announce: netlink subscribe: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return fmt.Errorf("announce: netlink socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "rtnetlink") // reads through the poller: Close unblocks them
	go func() {
		<-ctx.Done()
		_ = f.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Read(buf); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// ENOBUFS: events were lost; a rescan covers them.
			if !errors.Is(err, syscall.ENOBUFS) {
				return fmt.Errorf("announce: netlink read: %w", err)
			}
		}
		select {
		case changed <- struct{}{}:
		default:
		}
	}
}
