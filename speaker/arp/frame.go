package arp

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"golang.org/x/net/bpf"

	"github.com/heraldlb/herald/speaker/l2guard"
	"github.com/heraldlb/herald/speaker/l2responder"
)

const (
	etherTypeARP = 0x0806
	// packetOutgoing is PACKET_OUTGOING, skb->pkt_type of frames this host
	// sends: a packet socket sees them too and must not answer itself.
	packetOutgoing = 4
	// arpOpOffset is where the ARP operation sits in an untagged frame.
	arpOpOffset = 14 + 6
)

// requestFilter passes only ARP requests that arrived from the wire, so the
// kernel wakes the responder for nothing else.
func requestFilter() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipTrue: 3},
		bpf.LoadAbsolute{Off: arpOpOffset, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(arp.OperationRequest), SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
}

// request decides whether frame is an ARP request this interface (hardware
// address mac) must answer, given which IPv4 addresses it owns. It answers
// only well-formed Ethernet/IPv4 requests sent to the broadcast address or
// to mac, whose target is owned, and not announcements (sender IP = target
// IP), which nobody waits an answer for. A request whose sender hardware
// address is a group (multicast or broadcast) address or zero is ignored:
// answering it would send the reply to every host of the LAN, a reflector
// for anyone who can send one frame.
func request(frame []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) (*arp.Packet, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil, false
	}
	if !bytes.Equal(f.Destination, ethernet.Broadcast) && !bytes.Equal(f.Destination, mac) {
		return nil, false
	}
	var req arp.Packet
	if err := req.UnmarshalBinary(f.Payload); err != nil {
		return nil, false
	}
	if req.Operation != arp.OperationRequest || req.HardwareType != 1 ||
		req.ProtocolType != uint16(ethernet.EtherTypeIPv4) ||
		req.HardwareAddrLength != 6 || req.IPLength != 4 ||
		bytes.Equal(req.SenderHardwareAddr, mac) || !l2guard.Unicast(req.SenderHardwareAddr) ||
		req.SenderIP == req.TargetIP || !owns(req.TargetIP) {
		return nil, false
	}
	return &req, true
}

// answer is the reply from mac to req, a request that passed request.
func answer(req *arp.Packet, mac net.HardwareAddr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationReply, mac, req.TargetIP, req.SenderHardwareAddr, req.SenderIP)
	if err != nil {
		return nil, err
	}
	return marshal(p, req.SenderHardwareAddr)
}

// parse is request with the reply built only when it is sent: the
// responder's decision.
func parse(frame []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) (func() ([]byte, error), netip.Addr, bool) {
	req, ok := request(frame, mac, owns)
	if !ok {
		return nil, netip.Addr{}, false
	}
	return func() ([]byte, error) { return answer(req, mac) }, req.TargetIP, true
}

// reply is parse with the reply built at once: the reply frame and the
// address asked for, if frame must be answered.
func reply(frame []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) ([]byte, netip.Addr, bool) {
	return l2responder.Parser(parse).Reply(frame, mac, owns)
}

// gratuitous is the announcement that mac now holds ip, in the request form
// (sender IP = target IP = ip, target MAC zero, broadcast). Linux moves an
// existing neighbour entry on it at once, while a gratuitous reply would be
// ignored within the entry's locktime (1 s by default).
func gratuitous(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, ip, make(net.HardwareAddr, 6), ip)
	if err != nil {
		return nil, err
	}
	return marshal(p, ethernet.Broadcast)
}

func marshal(p *arp.Packet, dst net.HardwareAddr) ([]byte, error) {
	payload, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := ethernet.Frame{
		Destination: dst,
		Source:      p.SenderHardwareAddr,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     payload,
	}
	return f.MarshalBinary()
}
