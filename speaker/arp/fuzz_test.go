package arp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// FuzzReply feeds arbitrary frames, as any host on the LAN can send them,
// to the responder's decision. It must never panic, and whatever it
// answers must be a well-formed ARP reply from this interface to the
// requester for an address it owns.
func FuzzReply(f *testing.F) {
	zero := make(net.HardwareAddr, 6)
	seed := func(op arp.Operation, ethDst, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
		return frameOf(f, op, ethDst, sha, spa, tha, tpa)
	}
	request := seed(arp.OperationRequest, ethernet.Broadcast, client, cip, zero, vip)
	f.Add(request)
	f.Add(seed(arp.OperationRequest, ours, client, cip, zero, vip))
	f.Add(seed(arp.OperationRequest, ethernet.Broadcast, client, netip.IPv4Unspecified(), zero, vip))
	f.Add(seed(arp.OperationReply, ethernet.Broadcast, client, cip, zero, vip))
	f.Add(seed(arp.OperationRequest, ethernet.Broadcast, other, vip, zero, vip))
	f.Add(request[:30])
	tagged := append(append(append([]byte(nil), request[:12]...), 0x81, 0x00, 0x00, 0x0a), request[12:]...)
	f.Add(tagged)
	if g, err := gratuitous(ours, vip); err == nil {
		f.Add(g)
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
		var reqFrame ethernet.Frame
		var req arp.Packet
		if reqFrame.UnmarshalBinary(frame) != nil || req.UnmarshalBinary(reqFrame.Payload) != nil {
			t.Fatal("answered a frame that does not parse as ARP")
		}
		var rf ethernet.Frame
		if err := rf.UnmarshalBinary(out); err != nil {
			t.Fatalf("reply frame does not parse: %v", err)
		}
		var rp arp.Packet
		if err := rp.UnmarshalBinary(rf.Payload); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		switch {
		case rp.Operation != arp.OperationReply:
			t.Fatalf("answer is operation %v, not a reply", rp.Operation)
		case !bytes.Equal(rf.Source, ours) || !bytes.Equal(rp.SenderHardwareAddr, ours):
			t.Fatalf("answer claims to come from %v/%v", rf.Source, rp.SenderHardwareAddr)
		case rp.SenderIP != vip:
			t.Fatalf("answer is about %v", rp.SenderIP)
		case !bytes.Equal(rf.Destination, req.SenderHardwareAddr) || !bytes.Equal(rp.TargetHardwareAddr, req.SenderHardwareAddr) || rp.TargetIP != req.SenderIP:
			t.Fatalf("answer goes to %v/%v %v, the request came from %v %v", rf.Destination, rp.TargetHardwareAddr, rp.TargetIP, req.SenderHardwareAddr, req.SenderIP)
		case rf.Destination[0]&1 == 1:
			t.Fatalf("answer sent to a group address %v", rf.Destination)
		}
	})
}
