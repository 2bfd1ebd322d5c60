package routers

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// RemoteAS is a neighbor's AS as FRR writes it: a number, "internal" or
// "external" (the keywords suit listen ranges, where nodes come and go).
type RemoteAS string

// The keywords: the peer's AS is learnt from its OPEN message.
const (
	Internal RemoteAS = "internal"
	External RemoteAS = "external"
)

// ASN is the RemoteAS for a fixed AS number.
func ASN(n uint32) RemoteAS { return RemoteAS(strconv.FormatUint(uint64(n), 10)) }

// SessionOptions are the per-session settings shared by neighbors and peer groups.
type SessionOptions struct {
	RemoteAS RemoteAS
	Password string
	// EBGPMultihop > 0 allows that many hops (FRR's ebgp-multihop).
	EBGPMultihop int
	// BFDProfile enables BFD with the named profile of FRRConfig.BFDProfiles;
	// BFD enables it with bfdd's defaults.
	BFDProfile string
	BFD        bool
	// Keepalive and Hold set "timers" (both or neither); ConnectRetry sets
	// "timers connect". Zero keeps FRR's defaults.
	Keepalive, Hold, ConnectRetry time.Duration
	Passive                       bool
	// UpdateSource names the local address or interface for the session.
	UpdateSource string
	// RouteMapIn names a route map (FRRConfig.Policy) applied to what the
	// session receives, in both address families.
	RouteMapIn string
}

// Neighbor is one configured BGP neighbor.
type Neighbor struct {
	Address netip.Addr
	SessionOptions
}

// PeerGroup is a peer group, optionally filled by listen ranges so that
// any node inside a range may connect without being configured.
type PeerGroup struct {
	Name string
	SessionOptions
	ListenRanges []netip.Prefix
}

// BFDProfile is a bfdd profile. Zero values keep bfdd's defaults.
type BFDProfile struct {
	Name                              string
	ReceiveInterval, TransmitInterval time.Duration
	DetectMultiplier                  uint32
	Passive                           bool
}

// StaticRoute is a staticd route: blackhole if Via is invalid.
type StaticRoute struct {
	Prefix netip.Prefix
	Via    netip.Addr
}

// FRRConfig describes one FRR router.
type FRRConfig struct {
	// Name is the router's hostname and the name of its directory.
	Name       string
	ASN        uint32
	RouterID   netip.Addr
	Neighbors  []Neighbor
	PeerGroups []PeerGroup
	// Networks are announced with "network"; add a StaticRoute for them when
	// the prefix must also exist in zebra (import-check is off either way).
	Networks    []netip.Prefix
	Statics     []StaticRoute
	BFDProfiles []BFDProfile
	// MaximumPaths for eBGP and iBGP multipath per address family; 0 means 16.
	MaximumPaths int
	// GracefulRestart turns on "bgp graceful-restart" (FRR is a helper by default).
	GracefulRestart bool
	// ExtraBGP lines go inside "router bgp" before the address families.
	ExtraBGP []string
	// Policy lines (community lists, route maps) go before "router bgp".
	Policy []string
}

func (c FRRConfig) validate() error {
	if c.Name == "" || strings.ContainsAny(c.Name, "/ \t\n") {
		return fmt.Errorf("routers: FRR name %q must be a plain word", c.Name)
	}
	if c.ASN == 0 {
		return fmt.Errorf("routers: FRR %s has no ASN", c.Name)
	}
	if !c.RouterID.Is4() {
		return fmt.Errorf("routers: FRR %s needs an IPv4 router-id, got %v", c.Name, c.RouterID)
	}
	for _, n := range c.Neighbors {
		if !n.Address.IsValid() || n.RemoteAS == "" {
			return fmt.Errorf("routers: FRR %s: neighbor %v needs an address and a remote AS", c.Name, n.Address)
		}
	}
	for _, g := range c.PeerGroups {
		if g.Name == "" || g.RemoteAS == "" {
			return fmt.Errorf("routers: FRR %s: peer group %q needs a name and a remote AS", c.Name, g.Name)
		}
	}
	return nil
}

// zebraConf is zebra's file: only the hostname and logging.
func (c FRRConfig) zebraConf() string {
	return header(c.Name)
}

func header(name string) string {
	return fmt.Sprintf("hostname %s\nlog stdout informational\n!\n", name)
}

// staticdConf holds the static routes.
func (c FRRConfig) staticdConf() string {
	var b strings.Builder
	b.WriteString(header(c.Name))
	for _, r := range c.Statics {
		family := "ip"
		if r.Prefix.Addr().Is6() {
			family = "ipv6"
		}
		via := "blackhole"
		if r.Via.IsValid() {
			via = r.Via.String()
		}
		fmt.Fprintf(&b, "%s route %s %s\n", family, r.Prefix.Masked(), via)
	}
	return b.String()
}

// bfddConf holds the BFD profiles.
func (c FRRConfig) bfddConf() string {
	var b strings.Builder
	b.WriteString(header(c.Name))
	if len(c.BFDProfiles) == 0 {
		return b.String()
	}
	b.WriteString("bfd\n")
	for _, p := range c.BFDProfiles {
		fmt.Fprintf(&b, " profile %s\n", p.Name)
		if p.ReceiveInterval > 0 {
			fmt.Fprintf(&b, "  receive-interval %d\n", p.ReceiveInterval.Milliseconds())
		}
		if p.TransmitInterval > 0 {
			fmt.Fprintf(&b, "  transmit-interval %d\n", p.TransmitInterval.Milliseconds())
		}
		if p.DetectMultiplier > 0 {
			fmt.Fprintf(&b, "  detect-multiplier %d\n", p.DetectMultiplier)
		}
		if p.Passive {
			b.WriteString("  passive-mode\n")
		}
		b.WriteString(" exit\n")
	}
	b.WriteString("exit\n")
	return b.String()
}

// bgpdConf is the "router bgp" block. Every neighbor and peer group is
// activated for IPv4 and IPv6 unicast, so IPv6 prefixes may ride an IPv4
// session and the other way round.
func (c FRRConfig) bgpdConf() string {
	var b strings.Builder
	b.WriteString(header(c.Name))
	for _, line := range c.Policy {
		fmt.Fprintf(&b, "%s\n", line)
	}
	fmt.Fprintf(&b, "router bgp %d\n", c.ASN)
	fmt.Fprintf(&b, " bgp router-id %s\n", c.RouterID)
	b.WriteString(" no bgp ebgp-requires-policy\n")
	b.WriteString(" no bgp default ipv4-unicast\n")
	b.WriteString(" no bgp network import-check\n")
	b.WriteString(" bgp bestpath as-path multipath-relax\n")
	if c.GracefulRestart {
		b.WriteString(" bgp graceful-restart\n")
	}
	for _, g := range c.PeerGroups {
		fmt.Fprintf(&b, " neighbor %s peer-group\n", g.Name)
		writeSession(&b, g.Name, g.SessionOptions)
		for _, r := range g.ListenRanges {
			fmt.Fprintf(&b, " bgp listen range %s peer-group %s\n", r.Masked(), g.Name)
		}
	}
	for _, n := range c.Neighbors {
		writeSession(&b, n.Address.String(), n.SessionOptions)
	}
	for _, line := range c.ExtraBGP {
		fmt.Fprintf(&b, " %s\n", strings.TrimSpace(line))
	}
	maxPaths := c.MaximumPaths
	if maxPaths == 0 {
		maxPaths = 16
	}
	for _, af := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, " address-family %s unicast\n", af)
		for _, p := range c.Networks {
			if p.Addr().Is4() == (af == "ipv4") {
				fmt.Fprintf(&b, "  network %s\n", p.Masked())
			}
		}
		for _, name := range c.sessionNames() {
			fmt.Fprintf(&b, "  neighbor %s activate\n", name)
			if rm := c.routeMapIn(name); rm != "" {
				fmt.Fprintf(&b, "  neighbor %s route-map %s in\n", name, rm)
			}
		}
		fmt.Fprintf(&b, "  maximum-paths %d\n", maxPaths)
		fmt.Fprintf(&b, "  maximum-paths ibgp %d\n", maxPaths)
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("exit\n")
	return b.String()
}

// routeMapIn is the inbound route map of a neighbor or peer group.
func (c FRRConfig) routeMapIn(name string) string {
	for _, g := range c.PeerGroups {
		if g.Name == name {
			return g.RouteMapIn
		}
	}
	for _, n := range c.Neighbors {
		if n.Address.String() == name {
			return n.RouteMapIn
		}
	}
	return ""
}

// sessionNames are the neighbors and peer groups as "neighbor <name>" takes them.
func (c FRRConfig) sessionNames() []string {
	var names []string
	for _, g := range c.PeerGroups {
		names = append(names, g.Name)
	}
	for _, n := range c.Neighbors {
		names = append(names, n.Address.String())
	}
	return names
}

func writeSession(b *strings.Builder, name string, o SessionOptions) {
	fmt.Fprintf(b, " neighbor %s remote-as %s\n", name, o.RemoteAS)
	if o.Password != "" {
		fmt.Fprintf(b, " neighbor %s password %s\n", name, o.Password)
	}
	if o.EBGPMultihop > 0 {
		fmt.Fprintf(b, " neighbor %s ebgp-multihop %d\n", name, o.EBGPMultihop)
	}
	if o.BFD || o.BFDProfile != "" {
		fmt.Fprintf(b, " neighbor %s bfd\n", name)
	}
	if o.BFDProfile != "" {
		fmt.Fprintf(b, " neighbor %s bfd profile %s\n", name, o.BFDProfile)
	}
	if o.Keepalive > 0 && o.Hold > 0 {
		fmt.Fprintf(b, " neighbor %s timers %d %d\n", name, seconds(o.Keepalive), seconds(o.Hold))
	}
	if o.ConnectRetry > 0 {
		fmt.Fprintf(b, " neighbor %s timers connect %d\n", name, seconds(o.ConnectRetry))
	}
	if o.Passive {
		fmt.Fprintf(b, " neighbor %s passive\n", name)
	}
	if o.UpdateSource != "" {
		fmt.Fprintf(b, " neighbor %s update-source %s\n", name, o.UpdateSource)
	}
}

// seconds rounds up to whole seconds, the unit of FRR's BGP timers.
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
