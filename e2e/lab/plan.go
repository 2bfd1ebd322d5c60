package lab

import (
	"fmt"
	"net/netip"
	"strconv"
)

// The address plan (docs/lab.md). Links use 10.x and fd00::/8; service IPs
// come from 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32. Nothing here
// is routed to or from the host.
var (
	// LANv4 and LANv6 are the shared segment: the bridge in the "lan" namespace.
	LANv4 = netip.MustParsePrefix("10.0.0.0/24")
	LANv6 = netip.MustParsePrefix("fd00:10::/64")

	// ExtFRRv4/v6 link the external client to the FRR router (.1 router, .2 client).
	ExtFRRv4 = netip.MustParsePrefix("10.1.0.0/24")
	ExtFRRv6 = netip.MustParsePrefix("fd00:11::/64")
	// ExtBIRDv4/v6 link the external client to the BIRD router.
	ExtBIRDv4 = netip.MustParsePrefix("10.2.0.0/24")
	ExtBIRDv6 = netip.MustParsePrefix("fd00:12::/64")

	// ClusterCIDRv4/v6 hold the nodes' pod CIDRs (node i: 10.244.i.0/24, fd00:244:i::/64).
	ClusterCIDRv4 = netip.MustParsePrefix("10.244.0.0/16")
	ClusterCIDRv6 = netip.MustParsePrefix("fd00:244::/32")

	// L2PoolV4/V6 are on-link for the LAN: the LAN client and the FRR router
	// ARP/NDP for them, so a Layer 2 speaker must answer.
	L2PoolV4 = netip.MustParsePrefix("198.51.100.0/24")
	L2PoolV6 = netip.MustParsePrefix("2001:db8:100::/64")
)

// AS numbers of the lab's BGP speakers.
const (
	FRRASN  = 64512
	BIRDASN = 64513
	NodeASN = 64500
)

// APIServerPort is where processes inside a node namespace reach the API
// server: 127.0.0.1:6443 of that namespace, proxied by the lab to the host's
// loopback. No link joins a lab namespace to the host.
const APIServerPort = 6443

// Fixed host numbers on each segment.
const (
	hostFRR    = 1
	hostBIRD   = 2
	hostNode0  = 10 // node i has host number 10+i
	hostClient = 100
	hostExt    = 2 // the external client on its links to the routers
	hostRouter = 1 // a router on its link to the external client
)

// hostAddr returns the address with host number n (< 1000) in p. In IPv6
// the decimal digits are written as they are (host 11 is ::11, not ::b), so
// a host's two addresses read alike: 10.0.0.11 and fd00:10::11.
func hostAddr(p netip.Prefix, n int) netip.Addr {
	b := p.Addr().AsSlice()
	if p.Addr().Is4() {
		b[len(b)-1] = byte(n)
	} else {
		v, _ := strconv.ParseUint(strconv.Itoa(n), 16, 16)
		b[len(b)-2], b[len(b)-1] = byte(v>>8), byte(v)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// nodeName is the Kubernetes name of lab node i (from 1).
func nodeName(i int) string { return fmt.Sprintf("node%d", i) }

// podCIDRs returns node i's pod CIDRs.
func podCIDRs(i int) (netip.Prefix, netip.Prefix) {
	return netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", i)),
		netip.MustParsePrefix(fmt.Sprintf("fd00:244:%d::/64", i))
}

// withLen formats a as a prefix of p's length: 10.0.0.11/24.
func withLen(a netip.Addr, p netip.Prefix) string {
	return netip.PrefixFrom(a, p.Bits()).String()
}
