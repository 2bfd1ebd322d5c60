package routers

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rtattr encodes one route attribute, padded to 4 bytes.
func rtattr(typ uint16, value []byte) []byte {
	b := make([]byte, unix.SizeofRtAttr, (unix.SizeofRtAttr+len(value)+3)&^3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(unix.SizeofRtAttr+len(value)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	b = append(b, value...)
	return b[:cap(b)]
}

// route encodes an RTM_NEWROUTE/DELROUTE of the main table for dst via gws
// (one: RTA_GATEWAY, more: RTA_MULTIPATH).
func route(typ uint16, flags uint16, dst netip.Prefix, gws ...netip.Addr) *syscall.NetlinkMessage {
	rt := make([]byte, unix.SizeofRtMsg)
	rt[0], rt[1], rt[4] = unix.AF_INET, byte(dst.Bits()), unix.RT_TABLE_MAIN
	data := append(rt, rtattr(unix.RTA_DST, dst.Addr().AsSlice())...)
	switch {
	case len(gws) == 1:
		data = append(data, rtattr(unix.RTA_GATEWAY, gws[0].AsSlice())...)
	case len(gws) > 1:
		var mp []byte
		for _, gw := range gws {
			attr := rtattr(unix.RTA_GATEWAY, gw.AsSlice())
			nh := make([]byte, unix.SizeofRtNexthop)
			binary.NativeEndian.PutUint16(nh[0:2], uint16(unix.SizeofRtNexthop+len(attr)))
			mp = append(mp, append(nh, attr...)...)
		}
		data = append(data, rtattr(unix.RTA_MULTIPATH, mp)...)
	}
	return &syscall.NetlinkMessage{Header: syscall.NlMsghdr{Len: uint32(syscall.NLMSG_HDRLEN + len(data)), Type: typ, Flags: flags}, Data: data}
}

// The watcher follows ECMP routes: added with three next hops, replaced
// with two, removed; routes of other tables are ignored.
func TestRouteWatcherFollowsMultipathRoutes(t *testing.T) {
	w := &RouteWatcher{routes: map[netip.Prefix]*RouteState{}}
	p := netip.MustParsePrefix("203.0.113.7/32")
	a, b, c := netip.MustParseAddr("10.0.0.11"), netip.MustParseAddr("10.0.0.12"), netip.MustParseAddr("10.0.0.13")
	t0 := time.Now()
	w.apply(route(unix.RTM_NEWROUTE, 0, p, c, a, b), t0)
	if st := w.Route(p); !st.Present || !slices.Equal(st.Gateways, []netip.Addr{a, b, c}) || st.Since != t0 {
		t.Fatalf("after the add: %+v", st)
	}
	w.apply(route(unix.RTM_NEWROUTE, unix.NLM_F_REPLACE, p, a, b), t0.Add(time.Second))
	if st := w.Route(p); !slices.Equal(st.Gateways, []netip.Addr{a, b}) || st.Since != t0.Add(time.Second) {
		t.Fatalf("after the replace: %+v", st)
	}
	if n, _, _ := w.Count(netip.MustParsePrefix("203.0.113.0/24"), func(st RouteState) bool { return len(st.Gateways) == 2 }); n != 1 {
		t.Fatalf("count %d", n)
	}
	other := route(unix.RTM_DELROUTE, 0, p)
	other.Data[4] = 200 // another table
	w.apply(other, t0.Add(2*time.Second))
	w.apply(route(unix.RTM_DELROUTE, 0, p, a), t0.Add(3*time.Second))
	if st := w.Route(p); !st.Present || !slices.Equal(st.Gateways, []netip.Addr{b}) {
		t.Fatalf("after one next hop was deleted: %+v", st)
	}
	w.apply(route(unix.RTM_DELROUTE, 0, p), t0.Add(4*time.Second))
	if st := w.Route(p); st.Present || len(st.Gateways) != 0 || st.Since != t0.Add(4*time.Second) {
		t.Fatalf("after the delete: %+v", st)
	}
}
