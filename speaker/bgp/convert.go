package bgp

import (
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Defaults that differ from gobgp's where gobgp's are not what users want.
const (
	defaultHoldTime    = 90 * time.Second
	defaultConnectTime = 5 * time.Second // gobgp: 120 s
	defaultRestartTime = 120 * time.Second
	defaultBFDInterval = 300 * time.Millisecond // gobgp: 1 s
	defaultBFDMult     = 3
)

// wholeSeconds rounds up: gobgp's timers are whole seconds.
func wholeSeconds(d time.Duration) uint64 {
	return uint64((d + time.Second - 1) / time.Second)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// globalFamilies are the RIB's address families: unicast for the sessions,
// VPN for the per-peer VRFs, and route-target constraint, which gobgp's
// DeleteVrf needs (it panics without that table). gobgp sizes tables for
// every family it is given, about 0.5 MiB each, and defaults to all ~20.
func globalFamilies() []uint32 {
	var fs []uint32
	for _, f := range []oc.AfiSafiType{
		oc.AFI_SAFI_TYPE_IPV4_UNICAST, oc.AFI_SAFI_TYPE_IPV6_UNICAST,
		oc.AFI_SAFI_TYPE_L3VPN_IPV4_UNICAST, oc.AFI_SAFI_TYPE_L3VPN_IPV6_UNICAST,
		oc.AFI_SAFI_TYPE_RTC,
	} {
		fs = append(fs, uint32(oc.AfiSafiTypeToIntMap[f]))
	}
	return fs
}

var unicastFamilies = []*api.Family{
	{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
	{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST},
}

// apiPeer is the gobgp neighbor for p, bound to the peer's own VRF so that
// it is sent exactly the paths of that VRF. The node dials the router,
// unless p is passive (passive.go). With bfd, it carries
// p's BFD settings (see bfdgate.go for when they are given).
func apiPeer(p Peer, vrf string, bfd bool) *api.Peer {
	hold := orDefault(p.HoldTime, defaultHoldTime)
	keepalive := orDefault(p.KeepaliveTime, hold/3)
	connect := orDefault(p.ConnectTime, defaultConnectTime)
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.peerASN(),
			LocalAsn:        p.MyASN,
			AuthPassword:    p.Password,
			Vrf:             vrf,
			Description:     p.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      wholeSeconds(connect),
			HoldTime:          wholeSeconds(hold),
			KeepaliveInterval: wholeSeconds(keepalive),
			// After a reset (BFD down, say) gobgp waits this long; its default is 30 s.
			IdleHoldTimeAfterReset: wholeSeconds(connect),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port), PassiveMode: p.Passive},
	}
	if p.SourceAddress.IsValid() {
		peer.Transport.LocalAddress = p.SourceAddress.String()
	}
	if p.EBGPMultiHop {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	if p.GracefulRestart {
		peer.GracefulRestart = &api.GracefulRestart{
			Enabled:     true,
			RestartTime: uint32(wholeSeconds(orDefault(p.RestartTime, defaultRestartTime))),
		}
	}
	for _, f := range unicastFamilies {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}, PrefixLimits: prefixLimit(p, f)}
		if p.GracefulRestart {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		peer.AfiSafis = append(peer.AfiSafis, af)
	}
	if b := p.BFD; b != nil && bfd {
		mult := b.DetectMultiplier
		if mult == 0 {
			mult = defaultBFDMult
		}
		peer.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			DesiredMinimumTxInterval: uint32(orDefault(b.TransmitInterval, defaultBFDInterval).Microseconds()),
			RequiredMinimumReceive:   uint32(orDefault(b.ReceiveInterval, defaultBFDInterval).Microseconds()),
			DetectionMultiplier:      mult,
		}
	}
	return peer
}

// apiVrf is the VRF that holds one peer's paths. Its route distinguisher
// and route target are made from id, unique per peer; they never leave the
// process, since no session negotiates a VPN family.
func apiVrf(name string, id uint32) (*api.Vrf, error) {
	rd, err := apiutil.MarshalRD(gobgp.NewRouteDistinguisherTwoOctetAS(0, id))
	if err != nil {
		return nil, err
	}
	rt, err := apiutil.MarshalRT(gobgp.NewTwoOctetAsSpecificExtended(gobgp.EC_SUBTYPE_ROUTE_TARGET, 0, id, true))
	if err != nil {
		return nil, err
	}
	return &api.Vrf{Name: name, Id: id, Rd: rd, ImportRt: []*api.RouteTarget{rt}, ExportRt: []*api.RouteTarget{rt}}, nil
}

func family(p netip.Prefix) gobgp.Family {
	if p.Addr().Is4() {
		return gobgp.RF_IPv4_UC
	}
	return gobgp.RF_IPv6_UC
}

// apiPath is the gobgp path for p with next hop nh. An unspecified nh
// (0.0.0.0 or ::) makes gobgp use the session's local address, which is
// right for paths of the session's own family.
func apiPath(p Path, nh netip.Addr) (*apiutil.Path, error) {
	nlri, err := gobgp.NewIPAddrPrefix(p.Prefix)
	if err != nil {
		return nil, fmt.Errorf("prefix %v: %w", p.Prefix, err)
	}
	attrs := []gobgp.PathAttributeInterface{gobgp.NewPathAttributeOrigin(gobgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if p.Prefix.Addr().Is4() && nh.Is4() {
		a, err := gobgp.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	} else {
		a, err := gobgp.NewPathAttributeMpReachNLRI(family(p.Prefix), []gobgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	if len(p.Communities) > 0 {
		attrs = append(attrs, gobgp.NewPathAttributeCommunities(p.Communities))
	}
	if len(p.LargeCommunities) > 0 {
		lcs := make([]*gobgp.LargeCommunity, 0, len(p.LargeCommunities))
		for _, c := range p.LargeCommunities {
			lcs = append(lcs, gobgp.NewLargeCommunity(c[0], c[1], c[2]))
		}
		attrs = append(attrs, gobgp.NewPathAttributeLargeCommunities(lcs))
	}
	if p.LocalPref != nil {
		attrs = append(attrs, gobgp.NewPathAttributeLocalPref(*p.LocalPref))
	}
	return &apiutil.Path{Family: family(p.Prefix), Nlri: nlri, Attrs: attrs}, nil
}

// apiWithdrawal identifies a path to delete.
func apiWithdrawal(p netip.Prefix) (*apiutil.Path, error) {
	nlri, err := gobgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, fmt.Errorf("prefix %v: %w", p, err)
	}
	return &apiutil.Path{Family: family(p), Nlri: nlri, Withdrawal: true}, nil
}

// sessionState maps gobgp's FSM state to ours.
func sessionState(s gobgp.FSMState) SessionState {
	switch s {
	case gobgp.BGP_FSM_IDLE:
		return StateIdle
	case gobgp.BGP_FSM_CONNECT:
		return StateConnect
	case gobgp.BGP_FSM_ACTIVE:
		return StateActive
	case gobgp.BGP_FSM_OPENSENT:
		return StateOpenSent
	case gobgp.BGP_FSM_OPENCONFIRM:
		return StateOpenConfirm
	case gobgp.BGP_FSM_ESTABLISHED:
		return StateEstablished
	}
	return StateIdle
}

func bfdState(s api.BfdSessionState) string {
	switch s {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return "up"
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return "init"
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return "admin_down"
	}
	return "down"
}
