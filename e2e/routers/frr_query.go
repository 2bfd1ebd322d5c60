package routers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// BGPNeighbor is FRR's view of one BGP session ("show bgp neighbors json").
type BGPNeighbor struct {
	Address  netip.Addr `json:"-"`
	RemoteAS uint32     `json:"remoteAs"`
	LocalAS  uint32     `json:"localAs"`
	State    string     `json:"bgpState"`
	// EstablishedEpoch is when the session last came up (Unix seconds).
	EstablishedEpoch int64 `json:"bgpTimerUpEstablishedEpoch"`
	// UpMsec is how long the session has been up.
	UpMsec                 int64  `json:"bgpTimerUpMsec"`
	ConnectionsEstablished int    `json:"connectionsEstablished"`
	ConnectionsDropped     int    `json:"connectionsDropped"`
	LastResetDueTo         string `json:"lastResetDueTo"`
	HostLocal              string `json:"hostLocal"`
	HostForeign            string `json:"hostForeign"`
	PeerGroup              string `json:"peerGroup"`
	HoldTimeMsecs          int64  `json:"bgpTimerHoldTimeMsecs"`
	KeepaliveMsecs         int64  `json:"bgpTimerKeepAliveIntervalMsecs"`
	AuthenticationEnabled  int    `json:"authenticationEnabled"`
	MessageStats           struct {
		UpdatesSent int `json:"updatesSent"`
		UpdatesRecv int `json:"updatesRecv"`
	} `json:"messageStats"`
	AddressFamilies map[string]struct {
		AcceptedPrefixes int `json:"acceptedPrefixCounter"`
		SentPrefixes     int `json:"sentPrefixCounter"`
	} `json:"addressFamilyInfo"`
	BFD *struct {
		Status string `json:"status"`
	} `json:"peerBfdInfo"`
	GracefulRestart struct {
		RemoteMode string `json:"remoteGrMode"` // "Restart" when the neighbor restarts gracefully
		Timers     struct {
			ReceivedRestartTimer int `json:"receivedRestartTimer"` // seconds
		} `json:"timers"`
	} `json:"gracefulRestartInfo"`
}

// Established reports whether the session is up.
func (n BGPNeighbor) Established() bool { return n.State == "Established" }

// Accepted is the number of prefixes accepted from the neighbor in family
// "ipv4Unicast" or "ipv6Unicast".
func (n BGPNeighbor) Accepted(family string) int { return n.AddressFamilies[family].AcceptedPrefixes }

// BGPNeighbors returns every BGP session, keyed by neighbor address.
func (r *FRR) BGPNeighbors(ctx context.Context) (map[netip.Addr]BGPNeighbor, error) {
	var raw map[string]json.RawMessage
	if err := r.vtyshJSON(ctx, &raw, "show bgp neighbors json"); err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]BGPNeighbor, len(raw))
	for k, v := range raw {
		addr, err := netip.ParseAddr(k)
		if err != nil {
			continue // not a neighbor entry
		}
		var n BGPNeighbor
		if err := json.Unmarshal(v, &n); err != nil {
			return nil, fmt.Errorf("routers: FRR %s: neighbor %s: %w", r.Config.Name, k, err)
		}
		n.Address = addr
		out[addr] = n
	}
	return out, nil
}

// BGPNeighbor returns one session; ErrNotFound if FRR has none for addr.
func (r *FRR) BGPNeighbor(ctx context.Context, addr netip.Addr) (BGPNeighbor, error) {
	all, err := r.BGPNeighbors(ctx)
	if err != nil {
		return BGPNeighbor{}, err
	}
	n, ok := all[addr]
	if !ok {
		return BGPNeighbor{}, fmt.Errorf("neighbor %s on %s: %w", addr, r.Config.Name, ErrNotFound)
	}
	return n, nil
}

// BGPPath is one path of a prefix in FRR's BGP RIB.
type BGPPath struct {
	ASPath           string
	Origin           string
	Valid            bool
	Best             bool
	Multipath        bool
	LocalPref        *uint32
	Communities      []string // "64512:100"
	LargeCommunities []string // "64512:1:2"
	NextHops         []BGPNextHop
	PeerID           string // the address of the neighbor it came from
	PeerType         string // "external" or "internal"
	// Stale marks a path kept for a neighbor that restarts gracefully.
	Stale bool
}

// BGPNextHop is one next hop of a BGP path.
type BGPNextHop struct {
	IP         netip.Addr
	Scope      string // "global" or "link-local" (IPv6)
	Accessible bool
	Used       bool
}

// BGPRoute is every path FRR holds for one prefix.
type BGPRoute struct {
	Prefix netip.Prefix
	Paths  []BGPPath
}

// bgpRouteJSON mirrors "show bgp ipv4|ipv6 unicast <prefix> json".
type bgpRouteJSON struct {
	Prefix string `json:"prefix"`
	Paths  []struct {
		ASPath struct {
			String string `json:"string"`
		} `json:"aspath"`
		Origin    string  `json:"origin"`
		Valid     bool    `json:"valid"`
		Stale     bool    `json:"stale"`
		Multipath bool    `json:"multipath"`
		LocPrf    *uint32 `json:"locPrf"`
		Bestpath  *struct {
			Overall bool `json:"overall"`
		} `json:"bestpath"`
		Community *struct {
			String string `json:"string"`
		} `json:"community"`
		LargeCommunity *struct {
			String string `json:"string"`
		} `json:"largeCommunity"`
		Nexthops []struct {
			IP         string `json:"ip"`
			Scope      string `json:"scope"`
			Accessible bool   `json:"accessible"`
			Used       bool   `json:"used"`
		} `json:"nexthops"`
		Peer struct {
			PeerID string `json:"peerId"`
			Type   string `json:"type"`
		} `json:"peer"`
	} `json:"paths"`
}

// BGPRoute returns the paths for exactly prefix in the BGP RIB, or ErrNotFound.
func (r *FRR) BGPRoute(ctx context.Context, prefix netip.Prefix) (BGPRoute, error) {
	family := "ipv4"
	if prefix.Addr().Is6() {
		family = "ipv6"
	}
	var raw bgpRouteJSON
	if err := r.vtyshJSON(ctx, &raw, fmt.Sprintf("show bgp %s unicast %s json", family, prefix.Masked())); err != nil {
		return BGPRoute{}, err
	}
	if raw.Prefix == "" || len(raw.Paths) == 0 {
		return BGPRoute{}, fmt.Errorf("BGP route %s on %s: %w", prefix, r.Config.Name, ErrNotFound)
	}
	route := BGPRoute{Prefix: prefix.Masked()}
	for _, p := range raw.Paths {
		path := BGPPath{
			ASPath:    p.ASPath.String,
			Origin:    p.Origin,
			Valid:     p.Valid,
			Best:      p.Bestpath != nil && p.Bestpath.Overall,
			Multipath: p.Multipath,
			LocalPref: p.LocPrf,
			PeerID:    p.Peer.PeerID,
			PeerType:  p.Peer.Type,
			Stale:     p.Stale,
		}
		if p.Community != nil {
			path.Communities = strings.Fields(p.Community.String)
		}
		if p.LargeCommunity != nil {
			path.LargeCommunities = strings.Fields(p.LargeCommunity.String)
		}
		for _, nh := range p.Nexthops {
			ip, _ := netip.ParseAddr(nh.IP)
			path.NextHops = append(path.NextHops, BGPNextHop{IP: ip, Scope: nh.Scope, Accessible: nh.Accessible, Used: nh.Used})
		}
		route.Paths = append(route.Paths, path)
	}
	return route, nil
}

// RIBRoute is zebra's entry for a prefix ("show ip[v6] route <prefix> json").
type RIBRoute struct {
	Prefix    string       `json:"prefix"`
	Protocol  string       `json:"protocol"`
	Selected  bool         `json:"selected"`
	Installed bool         `json:"installed"`
	NextHops  []RIBNextHop `json:"nexthops"`
}

// RIBNextHop is one next hop of a zebra route.
type RIBNextHop struct {
	IP        string `json:"ip"`
	Interface string `json:"interfaceName"`
	Active    bool   `json:"active"`
	FIB       bool   `json:"fib"`
}

// RIBRoutes returns zebra's routes for exactly prefix (one per protocol), or ErrNotFound.
func (r *FRR) RIBRoutes(ctx context.Context, prefix netip.Prefix) ([]RIBRoute, error) {
	family := "ip"
	if prefix.Addr().Is6() {
		family = "ipv6"
	}
	var raw map[string][]RIBRoute
	if err := r.vtyshJSON(ctx, &raw, fmt.Sprintf("show %s route %s json", family, prefix.Masked())); err != nil {
		return nil, err
	}
	routes := raw[prefix.Masked().String()]
	if len(routes) == 0 {
		return nil, fmt.Errorf("RIB route %s on %s: %w", prefix, r.Config.Name, ErrNotFound)
	}
	return routes, nil
}

// BFDPeer is bfdd's view of one BFD session ("show bfd peers json").
type BFDPeer struct {
	Peer             string `json:"peer"`
	Local            string `json:"local"`
	Interface        string `json:"interface"`
	Multihop         bool   `json:"multihop"`
	Status           string `json:"status"` // "up", "down", "init", "shutdown"
	Uptime           int64  `json:"uptime"`
	Diagnostic       string `json:"diagnostic"`
	RemoteDiagnostic string `json:"remote-diagnostic"`
	ReceiveInterval  int    `json:"receive-interval"`  // ms
	TransmitInterval int    `json:"transmit-interval"` // ms
	DetectMultiplier int    `json:"detect-multiplier"`
	RemoteReceive    int    `json:"remote-receive-interval"`
	RemoteTransmit   int    `json:"remote-transmit-interval"`
	RemoteMultiplier int    `json:"remote-detect-multiplier"`
}

// BFDPeers returns every BFD session bfdd knows.
func (r *FRR) BFDPeers(ctx context.Context) ([]BFDPeer, error) {
	var peers []BFDPeer
	err := r.vtyshJSON(ctx, &peers, "show bfd peers json")
	return peers, err
}

// vtyshJSON runs one JSON command and decodes its output.
func (r *FRR) vtyshJSON(ctx context.Context, v any, cmd string) error {
	out, err := r.Vtysh(ctx, cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("routers: FRR %s: %q: %w: %.200s", r.Config.Name, cmd, err, out)
	}
	return nil
}
