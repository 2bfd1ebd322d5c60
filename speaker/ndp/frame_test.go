package ndp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

var (
	ours   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	client = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xcc}
	other  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}
	vip    = netip.MustParseAddr("2001:db8:100::5")
	cll    = netip.MustParseAddr("fe80::cc")
)

func snm(t testing.TB, ip netip.Addr) netip.Addr {
	t.Helper()
	g, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// solicit builds a Neighbor Solicitation frame; edit may corrupt it.
func solicit(t testing.TB, ethDst net.HardwareAddr, src, dst, target netip.Addr, withSLLA bool, edit func([]byte)) []byte {
	t.Helper()
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if withSLLA {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: client}}
	}
	b, err := frameOf(client, ethDst, src, dst, ns)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(b)
	}
	return b
}

func TestChecksumAgreesWithMarshal(t *testing.T) {
	b, err := advertisement(ours, cll, client, vip, true)
	if err != nil {
		t.Fatal(err)
	}
	msg := b[ethLen+ipv6Len:]
	if got := checksum(vip, cll, msg); got != 0 {
		t.Fatalf("checksum over a marshalled advertisement = %#x, want 0", got)
	}
	msg[10] ^= 1
	if got := checksum(vip, cll, msg); got == 0 {
		t.Fatal("a flipped bit went unnoticed")
	}
}

func TestReply(t *testing.T) {
	owns := func(ip netip.Addr) bool { return ip == vip }
	mcast := multicastMAC(snm(t, vip))
	for _, tc := range []struct {
		name  string
		frame []byte
		// want: answered, to dst, solicited flag
		answered  bool
		dst       netip.Addr
		solicited bool
	}{
		{"multicast solicitation", solicit(t, mcast, cll, snm(t, vip), vip, true, nil), true, cll, true},
		{"unicast probe to our MAC", solicit(t, ours, cll, vip, vip, false, nil), true, cll, true},
		{"duplicate address detection is defended to all-nodes", solicit(t, mcast, netip.IPv6Unspecified(), snm(t, vip), vip, false, nil), true, allNodes, false},
		{"target not owned", solicit(t, mcast, cll, snm(t, vip.Next()), vip.Next(), true, nil), false, netip.Addr{}, false},
		{"unicast to another host", solicit(t, other, cll, vip, vip, false, nil), false, netip.Addr{}, false},
		{"our own, looped back", func() []byte {
			b := solicit(t, mcast, cll, snm(t, vip), vip, true, nil)
			copy(b[6:12], ours)
			return b
		}(), false, netip.Addr{}, false},
		{"hop limit 254 (forwarded by a router)", solicit(t, mcast, cll, snm(t, vip), vip, true, func(b []byte) { b[ethLen+7] = 254 }), false, netip.Addr{}, false},
		{"bad checksum", solicit(t, mcast, cll, snm(t, vip), vip, true, func(b []byte) { b[ethLen+ipv6Len+2] ^= 0xff }), false, netip.Addr{}, false},
		{"code not 0", solicit(t, mcast, cll, snm(t, vip), vip, true, func(b []byte) { b[ethLen+ipv6Len+1] = 1 }), false, netip.Addr{}, false},
		{"DAD not sent to the solicited-node group", solicit(t, mcast, netip.IPv6Unspecified(), allNodes, vip, false, nil), false, netip.Addr{}, false},
		{"DAD with a source link-layer option", solicit(t, mcast, netip.IPv6Unspecified(), snm(t, vip), vip, true, nil), false, netip.Addr{}, false},
		{"source link-layer option is broadcast (a reflector)", func() []byte {
			ns := &ndp.NeighborSolicitation{TargetAddress: vip, Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}}}
			b, err := frameOf(client, mcast, cll, snm(t, vip), ns)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}(), false, netip.Addr{}, false},
		{"multicast Ethernet source without option", solicit(t, ours, cll, vip, vip, false, func(b []byte) { copy(b[6:12], []byte{0x33, 0x33, 0, 0, 0, 1}) }), false, netip.Addr{}, false},
		{"multicast IPv6 source", solicit(t, mcast, allNodes, snm(t, vip), vip, true, nil), false, netip.Addr{}, false},
		{"truncated", solicit(t, mcast, cll, snm(t, vip), vip, true, nil)[:ethLen+ipv6Len+10], false, netip.Addr{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, ip, ok := reply(tc.frame, ours, owns)
			if ok != tc.answered {
				t.Fatalf("answered = %v, want %v", ok, tc.answered)
			}
			if !ok {
				return
			}
			if ip != vip {
				t.Fatalf("answered for %s", ip)
			}
			hdr := out[ethLen : ethLen+ipv6Len]
			src, _ := netip.AddrFromSlice(hdr[8:24])
			dst, _ := netip.AddrFromSlice(hdr[24:40])
			if hdr[7] != 255 || src != vip || dst != tc.dst {
				t.Fatalf("advertisement %s -> %s hop limit %d, want %s -> %s hop limit 255", src, dst, hdr[7], vip, tc.dst)
			}
			wantMAC := client
			if tc.dst.IsMulticast() {
				wantMAC = multicastMAC(tc.dst)
			}
			if !bytes.Equal(out[0:6], wantMAC) || !bytes.Equal(out[6:12], ours) {
				t.Fatalf("frame %v -> %v, want %v -> %v", net.HardwareAddr(out[6:12]), net.HardwareAddr(out[0:6]), ours, wantMAC)
			}
			msg := out[ethLen+ipv6Len:]
			if checksum(src, dst, msg) != 0 {
				t.Fatal("advertisement checksum is wrong")
			}
			m, err := ndp.ParseMessage(msg)
			if err != nil {
				t.Fatal(err)
			}
			na := m.(*ndp.NeighborAdvertisement)
			if na.TargetAddress != vip || na.Solicited != tc.solicited || !na.Override || na.Router {
				t.Fatalf("advertisement %+v, want target %s solicited=%v override", na, vip, tc.solicited)
			}
			if len(na.Options) != 1 || !bytes.Equal(na.Options[0].(*ndp.LinkLayerAddress).Addr, ours) {
				t.Fatalf("advertisement options %v, want our MAC as target link-layer address", na.Options)
			}
		})
	}
}

func TestUnsolicitedAdvertisementGoesToAllNodes(t *testing.T) {
	b, err := advertisement(ours, allNodes, multicastMAC(allNodes), vip, false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[0:6], net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}) {
		t.Fatalf("destination MAC %v, want 33:33:00:00:00:01", net.HardwareAddr(b[0:6]))
	}
	if _, _, ok := reply(b, ours, func(netip.Addr) bool { return true }); ok {
		t.Fatal("an advertisement was taken for a solicitation")
	}
}
