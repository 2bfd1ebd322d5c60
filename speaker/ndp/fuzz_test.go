package ndp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

// FuzzReply feeds arbitrary frames, as any host on the LAN can send them,
// to the responder's decision. It must never panic, and whatever it
// answers must be a valid Neighbor Advertisement (hop limit 255, correct
// checksum) from this interface for an owned address, sent to the
// soliciting host or, for duplicate address detection, to all nodes.
func FuzzReply(f *testing.F) {
	g := snm(f, vip)
	seed := func(ethDst net.HardwareAddr, src, dst netip.Addr, withSLLA bool) []byte {
		return solicit(f, ethDst, src, dst, vip, withSLLA, nil)
	}
	mcast := multicastMAC(g)
	f.Add(seed(mcast, cll, g, true))
	f.Add(seed(ours, cll, vip, false))
	f.Add(seed(mcast, netip.IPv6Unspecified(), g, false))
	f.Add(seed(mcast, netip.IPv6Unspecified(), g, true))
	f.Add(seed(other, cll, vip, false))
	f.Add(seed(mcast, cll, g, true)[:ethLen+ipv6Len+10])
	if a, err := advertisement(ours, allNodes, multicastMAC(allNodes), vip, false); err == nil {
		f.Add(a)
	}
	f.Add([]byte{})

	owns := func(ip netip.Addr) bool { return ip == vip }
	f.Fuzz(func(t *testing.T, frame []byte) {
		in := bytes.Clone(frame)
		out, ip, ok := reply(frame, ours, owns)
		if !bytes.Equal(in, frame) {
			t.Fatal("reply modified the received frame")
		}
		if !ok {
			if out != nil || ip.IsValid() {
				t.Fatalf("no answer, but returned %x for %v", out, ip)
			}
			return
		}
		if ip != vip {
			t.Fatalf("answered for %v, which is not owned", ip)
		}
		if len(out) < ethLen+ipv6Len+nsLen {
			t.Fatalf("answer of %d bytes", len(out))
		}
		if !bytes.Equal(out[6:12], ours) {
			t.Fatalf("answer from %v", net.HardwareAddr(out[6:12]))
		}
		hdr := out[ethLen : ethLen+ipv6Len]
		src, _ := netip.AddrFromSlice(hdr[8:24])
		dst, _ := netip.AddrFromSlice(hdr[24:40])
		if hdr[7] != hopLimit || src != vip {
			t.Fatalf("advertisement from %v with hop limit %d", src, hdr[7])
		}
		msg := out[ethLen+ipv6Len:]
		if checksum(src, dst, msg) != 0 {
			t.Fatal("advertisement checksum is wrong")
		}
		m, err := ndp.ParseMessage(msg)
		if err != nil {
			t.Fatalf("advertisement does not parse: %v", err)
		}
		na, isNA := m.(*ndp.NeighborAdvertisement)
		if !isNA || na.TargetAddress != vip || !na.Override {
			t.Fatalf("answer %#v", m)
		}
		reqSrc, _ := netip.AddrFromSlice(frame[ethLen+8 : ethLen+24])
		switch {
		case reqSrc.IsUnspecified():
			if dst != allNodes || na.Solicited || !bytes.Equal(out[0:6], multicastMAC(allNodes)) {
				t.Fatalf("duplicate address detection answered to %v/%v, solicited %v", dst, net.HardwareAddr(out[0:6]), na.Solicited)
			}
		default:
			if dst != reqSrc || !na.Solicited {
				t.Fatalf("solicitation from %v answered to %v, solicited %v", reqSrc, dst, na.Solicited)
			}
			if out[0]&1 == 1 {
				t.Fatalf("solicitation from %v answered to the group address %v", reqSrc, net.HardwareAddr(out[0:6]))
			}
		}
	})
}
