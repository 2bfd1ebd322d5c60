package routers

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// BIRDNeighbor is one BGP protocol of a BIRD router.
type BIRDNeighbor struct {
	// Name is the protocol name (letters, digits, underscores); "" means "peer<index>".
	Name string
	// Address is the neighbor (a link-local one with its zone, fe80::1%eth1);
	// or Range for dynamic BGP (any address inside may connect).
	Address netip.Addr
	Range   netip.Prefix
	ASN     uint32
	// Port is the neighbor's TCP port; 0 means 179.
	Port uint16
	// LocalAddress pins the session's source address.
	LocalAddress netip.Addr
	Password     string
	// Multihop > 0 allows that many hops; 0 is a directly connected session.
	Multihop                      int
	BFD                           bool
	Hold, Keepalive, ConnectRetry time.Duration
	Passive                       bool
	GracefulRestart               bool
	// NextHop6 is the IPv6 next hop BIRD sets when it exports IPv6 routes
	// over an IPv4 session; zero lets BIRD choose.
	NextHop6 netip.Addr
	// ExtendedNextHop accepts IPv4 routes with an IPv6 next hop (RFC 8950),
	// as an IPv6 link-local session carries them.
	ExtendedNextHop bool
}

// BIRDConfig describes one BIRD 2 router.
type BIRDConfig struct {
	// Name names the router's directory.
	Name      string
	ASN       uint32
	RouterID  netip.Addr
	Neighbors []BIRDNeighbor
	// Statics are exported to every neighbor (blackhole if Via is invalid).
	Statics []StaticRoute
	// BFD sets the intervals of BIRD's BFD protocol for all sessions; zero
	// values keep BIRD's defaults.
	BFD BFDProfile
	// ECMPLimit caps "merge paths" in the kernel protocols; 0 means 16.
	ECMPLimit int
	// RAInterfaces get Router Advertisements (router lifetime 0), so that
	// BGP unnumbered neighbors there find BIRD's link-local address.
	RAInterfaces []string
}

func (c BIRDConfig) validate() error {
	if c.Name == "" || strings.ContainsAny(c.Name, "/ \t\n") {
		return fmt.Errorf("routers: BIRD name %q must be a plain word", c.Name)
	}
	if c.ASN == 0 || !c.RouterID.Is4() {
		return fmt.Errorf("routers: BIRD %s needs an ASN and an IPv4 router id", c.Name)
	}
	for i, n := range c.Neighbors {
		if (!n.Address.IsValid() && !n.Range.IsValid()) || n.ASN == 0 {
			return fmt.Errorf("routers: BIRD %s: neighbor %d needs an address or range and an ASN", c.Name, i)
		}
	}
	return nil
}

// protocolName is the BGP protocol's name as birdc shows it.
func (n BIRDNeighbor) protocolName(i int) string {
	if n.Name != "" {
		return n.Name
	}
	return fmt.Sprintf("peer%d", i)
}

// conf renders bird.conf. The kernel protocols export everything with
// "merge paths", so equal BGP routes from several nodes become one ECMP
// kernel route; the statics and all BGP routes are exported to every neighbor.
func (c BIRDConfig) conf() string {
	var b strings.Builder
	b.WriteString("log stderr all;\n")
	fmt.Fprintf(&b, "router id %s;\n", c.RouterID)
	b.WriteString("timeformat protocol iso long ms;\ntimeformat route iso long ms;\n")
	b.WriteString("protocol device { scan time 10; }\n")
	limit := c.ECMPLimit
	if limit == 0 {
		limit = 16
	}
	for _, af := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, "protocol kernel kernel_%s { %s { import none; export all; }; merge paths on limit %d; }\n", af, af, limit)
		var routes []string
		for _, r := range c.Statics {
			if r.Prefix.Addr().Is4() != (af == "ipv4") {
				continue
			}
			via := "blackhole"
			if r.Via.IsValid() {
				via = "via " + r.Via.String()
			}
			routes = append(routes, fmt.Sprintf("route %s %s;", r.Prefix.Masked(), via))
		}
		fmt.Fprintf(&b, "protocol static static_%s { %s; %s }\n", af, af, strings.Join(routes, " "))
	}
	needBFD := false
	for _, n := range c.Neighbors {
		needBFD = needBFD || n.BFD
	}
	if needBFD {
		b.WriteString("protocol bfd {\n interface \"*\" {\n")
		if c.BFD.ReceiveInterval > 0 {
			fmt.Fprintf(&b, "  min rx interval %d ms;\n", c.BFD.ReceiveInterval.Milliseconds())
		}
		if c.BFD.TransmitInterval > 0 {
			fmt.Fprintf(&b, "  min tx interval %d ms;\n", c.BFD.TransmitInterval.Milliseconds())
		}
		if c.BFD.DetectMultiplier > 0 {
			fmt.Fprintf(&b, "  multiplier %d;\n", c.BFD.DetectMultiplier)
		}
		b.WriteString(" };\n}\n")
	}
	if len(c.RAInterfaces) > 0 {
		b.WriteString("protocol radv {\n")
		for _, ifname := range c.RAInterfaces {
			fmt.Fprintf(&b, " interface %q { min ra interval 3; max ra interval 4; default lifetime 0; };\n", ifname)
		}
		b.WriteString("}\n")
	}
	for i, n := range c.Neighbors {
		c.writeNeighbor(&b, i, n)
	}
	return b.String()
}

func (c BIRDConfig) writeNeighbor(b *strings.Builder, i int, n BIRDNeighbor) {
	fmt.Fprintf(b, "protocol bgp %s {\n", n.protocolName(i))
	if n.LocalAddress.IsValid() {
		fmt.Fprintf(b, " local %s as %d;\n", n.LocalAddress, c.ASN)
	} else {
		fmt.Fprintf(b, " local as %d;\n", c.ASN)
	}
	port := ""
	if n.Port != 0 {
		port = fmt.Sprintf(" port %d", n.Port)
	}
	if n.Range.IsValid() {
		fmt.Fprintf(b, " neighbor range %s%s as %d;\n", n.Range.Masked(), port, n.ASN)
	} else {
		fmt.Fprintf(b, " neighbor %s%s as %d;\n", n.Address, port, n.ASN)
	}
	// BIRD treats iBGP as multihop unless told otherwise; a directly
	// connected session resolves next hops on the link.
	if n.Multihop > 0 {
		fmt.Fprintf(b, " multihop %d;\n", n.Multihop)
	} else {
		b.WriteString(" direct;\n")
	}
	// BIRD waits 60 s or more after an error before it tries again; a lab
	// wants the session back as soon as the other side is.
	b.WriteString(" error wait time 1, 5;\n")
	if n.Password != "" {
		fmt.Fprintf(b, " password %q;\n", n.Password)
	}
	if n.BFD {
		b.WriteString(" bfd on;\n")
	}
	if n.Hold > 0 {
		fmt.Fprintf(b, " hold time %d;\n", seconds(n.Hold))
	}
	if n.Keepalive > 0 {
		fmt.Fprintf(b, " keepalive time %d;\n", seconds(n.Keepalive))
	}
	if n.ConnectRetry > 0 {
		fmt.Fprintf(b, " connect retry time %d;\n", seconds(n.ConnectRetry))
	}
	if n.Passive {
		b.WriteString(" passive on;\n")
	}
	if n.GracefulRestart {
		b.WriteString(" graceful restart on;\n")
	}
	if n.ExtendedNextHop {
		b.WriteString(" ipv4 { import all; export all; extended next hop on; };\n")
	} else {
		b.WriteString(" ipv4 { import all; export all; };\n")
	}
	if n.NextHop6.IsValid() {
		fmt.Fprintf(b, " ipv6 { import all; export all; next hop address %s; };\n", n.NextHop6)
	} else {
		b.WriteString(" ipv6 { import all; export all; };\n")
	}
	b.WriteString("}\n")
}
