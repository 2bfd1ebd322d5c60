package ndp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"

	"github.com/heraldlb/herald/speaker/l2guard"
	"github.com/heraldlb/herald/speaker/l2responder"
)

const (
	etherTypeIPv6  = 0x86dd
	packetOutgoing = 4 // PACKET_OUTGOING: frames this host sends
	ethLen         = 14
	ipv6Len        = 40
	protoICMPv6    = 58
	// hopLimit is required of every NDP message (RFC 4861 7.1.1): a message
	// with a lower one was forwarded by a router and must be ignored.
	hopLimit = 255
	// nsLen is the ICMPv6 header plus reserved field and target.
	nsLen = 24
)

// solicitationFilter passes only untagged IPv6 frames from the wire that
// carry ICMPv6 type 135 (Neighbor Solicitation) with hop limit 255.
func solicitationFilter() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipTrue: 7},
		bpf.LoadAbsolute{Off: ethLen + 6, Size: 1}, // next header
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 5},
		bpf.LoadAbsolute{Off: ethLen + 7, Size: 1}, // hop limit
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: hopLimit, SkipTrue: 3},
		bpf.LoadAbsolute{Off: ethLen + ipv6Len, Size: 1}, // ICMPv6 type
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(ipv6.ICMPTypeNeighborSolicitation), SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
}

// checksum is the ICMPv6 checksum of msg between src and dst (RFC 4443 2.3):
// the ones' complement of the ones' complement sum over the pseudo-header
// and msg. Over a received message, checksum field included, it is 0 when
// the message is intact.
func checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var tail [8]byte
	binary.BigEndian.PutUint32(tail[:4], uint32(len(msg)))
	tail[7] = protoICMPv6
	add(tail[:])
	add(msg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// solicitation is a Neighbor Solicitation that passed validation.
type solicitation struct {
	src, dst netip.Addr
	srcMAC   net.HardwareAddr // where to send the answer
	target   netip.Addr
}

// parseSolicitation validates frame as RFC 4861 7.1.1 asks of a Neighbor
// Solicitation (hop limit 255, correct checksum, code 0, length, target not
// multicast, a source of :: only toward a solicited-node group and without a
// source link-layer option) and accepts only frames sent to mac or to an IPv6
// multicast MAC, from a unicast source that can be answered alone. Extension headers are not followed: NDP messages carry none
// in practice.
func parseSolicitation(frame []byte, mac net.HardwareAddr) (solicitation, bool) {
	var s solicitation
	if len(frame) < ethLen+ipv6Len+nsLen || binary.BigEndian.Uint16(frame[12:14]) != etherTypeIPv6 {
		return s, false
	}
	ethDst := net.HardwareAddr(frame[0:6])
	if !bytes.Equal(ethDst, mac) && !(ethDst[0] == 0x33 && ethDst[1] == 0x33) {
		return s, false
	}
	if bytes.Equal(frame[6:12], mac) {
		return s, false // our own, looped back
	}
	ip := frame[ethLen:]
	payloadLen := int(binary.BigEndian.Uint16(ip[4:6]))
	if ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != hopLimit || len(ip) < ipv6Len+payloadLen {
		return s, false
	}
	s.src, _ = netip.AddrFromSlice(ip[8:24])
	s.dst, _ = netip.AddrFromSlice(ip[24:40])
	msg := ip[ipv6Len : ipv6Len+payloadLen]
	if len(msg) < nsLen || msg[0] != byte(ipv6.ICMPTypeNeighborSolicitation) || msg[1] != 0 || checksum(s.src, s.dst, msg) != 0 {
		return s, false
	}
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		return s, false
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok || ns.TargetAddress.IsMulticast() {
		return s, false
	}
	s.target = ns.TargetAddress
	for _, o := range ns.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source {
			s.srcMAC = lla.Addr
		}
	}
	if s.src.IsUnspecified() {
		if snm, err := ndp.SolicitedNodeMulticast(s.target); err != nil || s.dst != snm || s.srcMAC != nil {
			return s, false
		}
	}
	if s.srcMAC == nil {
		s.srcMAC = net.HardwareAddr(frame[6:12])
	}
	// Answers go to the soliciting host alone: a group (or zero) link-layer
	// address or a multicast source would make every host of the LAN
	// receive them, a reflector for anyone who can send one frame.
	if !l2guard.Unicast(s.srcMAC) || s.src.IsMulticast() {
		return s, false
	}
	return s, true
}

// allNodes is ff02::1, where unsolicited advertisements go.
var allNodes = netip.MustParseAddr("ff02::1")

// advertisement builds the Ethernet frame of a Neighbor Advertisement for
// target from mac to dst. Solicited answers a solicitation; an unsolicited
// one (solicited false, dst all-nodes) announces a takeover. The override
// flag is always set: the receiver must replace whatever MAC it has.
//
// The source address is target itself, as Linux does for its own addresses:
// the node stands in for the address, and some tools (ndisc6) ignore
// advertisements from any other source.
func advertisement(mac net.HardwareAddr, dst netip.Addr, dstMAC net.HardwareAddr, target netip.Addr, solicited bool) ([]byte, error) {
	return frameOf(mac, dstMAC, target, dst, &ndp.NeighborAdvertisement{
		Solicited:     solicited,
		Override:      true,
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	})
}

// frameOf wraps an NDP message in an IPv6 header (hop limit 255, checksum
// over the pseudo-header) and an Ethernet header.
func frameOf(mac, dstMAC net.HardwareAddr, src, dst netip.Addr, m ndp.Message) ([]byte, error) {
	msg, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return nil, err
	}
	b := make([]byte, ethLen+ipv6Len, ethLen+ipv6Len+len(msg))
	copy(b[0:6], dstMAC)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	ip := b[ethLen:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(msg)))
	ip[6], ip[7] = protoICMPv6, hopLimit
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	return append(b, msg...), nil
}

// multicastMAC is the Ethernet address of IPv6 multicast group ip (RFC 2464).
func multicastMAC(ip netip.Addr) net.HardwareAddr {
	a := ip.As16()
	return net.HardwareAddr{0x33, 0x33, a[12], a[13], a[14], a[15]}
}

// parse decides whether frame is a Neighbor Solicitation this interface
// (mac) must answer, given the owned addresses, and returns how to build
// the answer (built only when it is sent) and the address asked for.
func parse(frame []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) (func() ([]byte, error), netip.Addr, bool) {
	s, ok := parseSolicitation(frame, mac)
	if !ok || !owns(s.target) {
		return nil, netip.Addr{}, false
	}
	return func() ([]byte, error) { return answer(s, mac) }, s.target, true
}

// reply is parse with the answer built at once.
func reply(frame []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) ([]byte, netip.Addr, bool) {
	return l2responder.Parser(parse).Reply(frame, mac, owns)
}

// answer is the advertisement from mac that answers s. A solicitation from
// :: is duplicate address detection by a host that wants the address: it is
// answered to all-nodes without the solicited flag, which defends the
// address.
func answer(s solicitation, mac net.HardwareAddr) ([]byte, error) {
	dst, dstMAC, solicited := s.src, s.srcMAC, true
	if s.src.IsUnspecified() {
		dst, dstMAC, solicited = allNodes, multicastMAC(allNodes), false
	}
	return advertisement(mac, dst, dstMAC, s.target, solicited)
}
