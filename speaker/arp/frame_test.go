package arp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

var (
	ours   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	client = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xcc}
	other  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}
	vip    = netip.MustParseAddr("198.51.100.5")
	cip    = netip.MustParseAddr("10.70.0.100")
)

func frameOf(t testing.TB, op arp.Operation, ethDst, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, sha, spa, tha, tpa)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := p.MarshalBinary()
	b, err := (&ethernet.Frame{Destination: ethDst, Source: sha, EtherType: ethernet.EtherTypeARP, Payload: payload}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t *testing.T, b []byte) (*ethernet.Frame, *arp.Packet) {
	t.Helper()
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatal(err)
	}
	return &f, &p
}

func TestReply(t *testing.T) {
	zero := make(net.HardwareAddr, 6)
	owns := func(ip netip.Addr) bool { return ip == vip }
	for _, tc := range []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"broadcast request for owned address", frameOf(t, arp.OperationRequest, ethernet.Broadcast, client, cip, zero, vip), true},
		{"unicast request to us (refresh)", frameOf(t, arp.OperationRequest, ours, client, cip, zero, vip), true},
		{"probe from 0.0.0.0 is defended", frameOf(t, arp.OperationRequest, ethernet.Broadcast, client, netip.IPv4Unspecified(), zero, vip), true},
		{"request for an address not owned", frameOf(t, arp.OperationRequest, ethernet.Broadcast, client, cip, zero, vip.Next()), false},
		{"unicast request to another host", frameOf(t, arp.OperationRequest, other, client, cip, zero, vip), false},
		{"reply, not a request", frameOf(t, arp.OperationReply, ethernet.Broadcast, client, cip, zero, vip), false},
		{"our own request looped back", frameOf(t, arp.OperationRequest, ethernet.Broadcast, ours, cip, zero, vip), false},
		{"someone else's announcement", frameOf(t, arp.OperationRequest, ethernet.Broadcast, other, vip, zero, vip), false},
		{"sender hardware address is broadcast (a reflector)", frameOf(t, arp.OperationRequest, ethernet.Broadcast, ethernet.Broadcast, cip, zero, vip), false},
		{"sender hardware address is multicast", frameOf(t, arp.OperationRequest, ethernet.Broadcast, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, cip, zero, vip), false},
		{"sender hardware address is zero", frameOf(t, arp.OperationRequest, ethernet.Broadcast, zero, cip, zero, vip), false},
		{"truncated", frameOf(t, arp.OperationRequest, ethernet.Broadcast, client, cip, zero, vip)[:30], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, ip, ok := reply(tc.frame, ours, owns)
			if ok != tc.want {
				t.Fatalf("answered = %v, want %v", ok, tc.want)
			}
			if !ok {
				return
			}
			_, req := decode(t, tc.frame)
			f, p := decode(t, out)
			if ip != vip || !bytes.Equal(f.Destination, client) || !bytes.Equal(f.Source, ours) {
				t.Fatalf("reply frame %v -> %v for %s", f.Source, f.Destination, ip)
			}
			if p.Operation != arp.OperationReply || !bytes.Equal(p.SenderHardwareAddr, ours) || p.SenderIP != vip ||
				!bytes.Equal(p.TargetHardwareAddr, client) || p.TargetIP != req.SenderIP {
				t.Fatalf("reply %+v", p)
			}
		})
	}
}

func TestGratuitousIsARequestToBroadcast(t *testing.T) {
	b, err := gratuitous(ours, vip)
	if err != nil {
		t.Fatal(err)
	}
	f, p := decode(t, b)
	if !bytes.Equal(f.Destination, ethernet.Broadcast) || !bytes.Equal(f.Source, ours) {
		t.Fatalf("frame %v -> %v, want ours -> broadcast", f.Source, f.Destination)
	}
	if p.Operation != arp.OperationRequest || p.SenderIP != vip || p.TargetIP != vip ||
		!bytes.Equal(p.SenderHardwareAddr, ours) || !bytes.Equal(p.TargetHardwareAddr, make(net.HardwareAddr, 6)) {
		t.Fatalf("gratuitous ARP %+v, want request with sender = target = %s and zero target MAC", p, vip)
	}
	// Our own responder must never answer it when the socket sees it.
	if _, _, ok := reply(b, ours, func(netip.Addr) bool { return true }); ok {
		t.Fatal("the responder would answer its own gratuitous ARP")
	}
}
