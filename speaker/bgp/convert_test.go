package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func TestAPIPeer(t *testing.T) {
	p := Peer{
		Name: "tor", Address: netip.MustParseAddr("10.0.0.1"), Port: 1179, MyASN: 64513, PeerASN: 64512,
		SourceAddress: netip.MustParseAddr("10.0.0.2"), HoldTime: 2500 * time.Millisecond, ConnectTime: 0,
		EBGPMultiHop: true, Password: "pw", GracefulRestart: true,
		BFD: &BFD{ReceiveInterval: 100 * time.Millisecond},
	}
	if apiPeer(p, "herald-1", false).GetBfd() != nil {
		t.Error("BFD settings given while BFD is held back")
	}
	a := apiPeer(p, "herald-1", true)
	c, tm := a.GetConf(), a.GetTimers().GetConfig()
	switch {
	case c.NeighborAddress != "10.0.0.1" || c.PeerAsn != 64512 || c.LocalAsn != 64513 || c.AuthPassword != "pw" || c.Vrf != "herald-1":
		t.Errorf("conf: %v", c)
	case tm.HoldTime != 3 || tm.KeepaliveInterval != 1 || tm.ConnectRetry != 5 || tm.IdleHoldTimeAfterReset != 5:
		t.Errorf("timers (hold rounded up, keepalive a third, connect 5 s): %v", tm)
	case a.GetTransport().GetLocalAddress() != "10.0.0.2" || a.GetTransport().GetRemotePort() != 1179:
		t.Errorf("transport: %v", a.GetTransport())
	case !a.GetEbgpMultihop().GetEnabled() || a.GetEbgpMultihop().GetMultihopTtl() != 255:
		t.Errorf("multihop: %v", a.GetEbgpMultihop())
	case !a.GetGracefulRestart().GetEnabled() || a.GetGracefulRestart().GetRestartTime() != 120:
		t.Errorf("graceful restart: %v", a.GetGracefulRestart())
	case len(a.GetAfiSafis()) != 2 || !a.GetAfiSafis()[1].GetMpGracefulRestart().GetConfig().GetEnabled():
		t.Errorf("families: %v", a.GetAfiSafis())
	case a.GetBfd().GetRequiredMinimumReceive() != 100000 || a.GetBfd().GetDesiredMinimumTxInterval() != 300000 || a.GetBfd().GetDetectionMultiplier() != 3:
		t.Errorf("BFD (µs, defaults 300 ms x 3): %v", a.GetBfd())
	}
}

func TestAPIPathAttributes(t *testing.T) {
	p := Path{Prefix: vip6, Communities: []uint32{Community(64512, 7)}, LargeCommunities: []LargeCommunity{{1, 2, 3}}, LocalPref: u32(150)}
	ap, err := apiPath(p, netip.MustParseAddr("2001:db8::2"))
	if err != nil {
		t.Fatal(err)
	}
	types := map[gobgp.BGPAttrType]gobgp.PathAttributeInterface{}
	for _, a := range ap.Attrs {
		types[a.GetType()] = a
	}
	if ap.Family != gobgp.RF_IPv6_UC || len(types) != 5 {
		t.Fatalf("family %v, attrs %v", ap.Family, ap.Attrs)
	}
	if mp := types[gobgp.BGP_ATTR_TYPE_MP_REACH_NLRI].(*gobgp.PathAttributeMpReachNLRI); mp.Nexthop != netip.MustParseAddr("2001:db8::2") {
		t.Errorf("next hop %v", mp.Nexthop)
	}
	if c := types[gobgp.BGP_ATTR_TYPE_COMMUNITIES].(*gobgp.PathAttributeCommunities); c.Value[0] != 64512<<16|7 {
		t.Errorf("communities %v", c.Value)
	}
	if lp := types[gobgp.BGP_ATTR_TYPE_LOCAL_PREF].(*gobgp.PathAttributeLocalPref); lp.Value != 150 {
		t.Errorf("local pref %v", lp.Value)
	}
	v4, err := apiPath(Path{Prefix: vip4}, netip.IPv4Unspecified())
	if err != nil || v4.Family != gobgp.RF_IPv4_UC || v4.Attrs[1].GetType() != gobgp.BGP_ATTR_TYPE_NEXT_HOP {
		t.Fatalf("IPv4 path: %v %v", v4, err)
	}
}

// TestLogAdapterReportsConnectErrors: the reason gobgp cannot connect,
// logged at Debug on a per-peer logger, reaches the report callback even
// though the project logger is at Info; gobgp's Info goes out at Debug.
func TestLogAdapterReportsConnectErrors(t *testing.T) {
	var got []string
	var stopping atomic.Bool
	inner := &recordingHandler{level: slog.LevelInfo}
	log := newGobgpLogger(inner, func(peer netip.Addr, err string) { got = append(got, peer.String()+" "+err) }, &stopping)
	peerLog := log.With(slog.String("Topic", "Peer"), slog.String("Key", "10.0.0.1"))
	peerLog.Debug("failed to connect", slog.String("Error", "connection refused"))
	peerLog.Info("Peer Up")
	log.Warn("something odd")
	if len(got) != 1 || got[0] != "10.0.0.1 connection refused" {
		t.Fatalf("reported %v", got)
	}
	if len(inner.msgs) != 1 || inner.msgs[0] != "something odd" {
		t.Fatalf("forwarded %v; want only the warning (Info demoted below the Info threshold)", inner.msgs)
	}
}

type recordingHandler struct {
	level slog.Level
	msgs  []string
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }
