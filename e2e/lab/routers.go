package lab

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
)

// Router is a router namespace of the lab. FRR is set on the FRR router,
// BIRD on the BIRD router (both nil with Options.NoRouters).
type Router struct {
	Host
	FRR  *routers.FRR
	BIRD *routers.BIRD
}

// FRRConfig is the lab's FRR router: AS 64512, accepting eBGP sessions from
// any LAN address (a listen range, so nodes need no router-side config),
// BFD on every session, ECMP over up to 16 next hops.
func FRRConfig() routers.FRRConfig {
	return routers.FRRConfig{
		Name:     "frr",
		ASN:      FRRASN,
		RouterID: hostAddr(LANv4, hostFRR),
		PeerGroups: []routers.PeerGroup{{
			Name:           "nodes",
			SessionOptions: routers.SessionOptions{RemoteAS: routers.External, BFDProfile: "lab"},
			ListenRanges:   []netip.Prefix{LANv4, LANv6},
		}},
		BFDProfiles:  []routers.BFDProfile{{Name: "lab", ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3}},
		MaximumPaths: 16,
	}
}

// BIRDConfig is the lab's BIRD router: AS 64513, accepting sessions from
// nodes of AS 64500 anywhere on the LAN (one protocol per family), BFD on,
// BGP routes merged into ECMP kernel routes.
func BIRDConfig() routers.BIRDConfig {
	return routers.BIRDConfig{
		Name:     "bird",
		ASN:      BIRDASN,
		RouterID: hostAddr(LANv4, hostBIRD),
		Neighbors: []routers.BIRDNeighbor{
			{Name: "nodes4", Range: LANv4, ASN: NodeASN, BFD: true},
			{Name: "nodes6", Range: LANv6, ASN: NodeASN, BFD: true},
		},
		BFD: routers.BFDProfile{ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3},
	}
}

// startRouters starts FRR and BIRD side by side.
func (l *Lab) startRouters(ctx context.Context) error {
	frrc := make(chan error, 1)
	go func() { frrc <- l.StartFRR(ctx, FRRConfig()) }()
	birdErr := l.StartBIRD(ctx, BIRDConfig())
	return errors.Join(<-frrc, birdErr)
}

// StartFRR (re)starts the FRR router with cfg, stopping a running one first:
// a router restart, or a new configuration, in one call.
func (l *Lab) StartFRR(ctx context.Context, cfg routers.FRRConfig) error {
	if l.FRR.FRR != nil {
		old := l.FRR.FRR
		if err := old.Close(); err != nil {
			return err
		}
		l.FRR.FRR = nil
		// Stale vty sockets would look like a ready daemon to the new start.
		stale, _ := filepath.Glob(filepath.Join(old.Dir, "*.vty"))
		for _, f := range append(stale, filepath.Join(old.Dir, "zserv.api")) {
			_ = os.Remove(f)
		}
	}
	r, err := routers.StartFRR(ctx, l.Reg, l.FRR.NS, cfg)
	if err != nil {
		return err
	}
	l.FRR.FRR = r
	return nil
}

// StartBIRD (re)starts the BIRD router with cfg, stopping a running one first.
func (l *Lab) StartBIRD(ctx context.Context, cfg routers.BIRDConfig) error {
	if l.BIRD.BIRD != nil {
		old := l.BIRD.BIRD
		if err := old.Close(); err != nil {
			return err
		}
		l.BIRD.BIRD = nil
		_ = os.Remove(filepath.Join(old.Dir, "bird.ctl"))
	}
	r, err := routers.StartBIRD(ctx, l.Reg, l.BIRD.NS, cfg)
	if err != nil {
		return err
	}
	l.BIRD.BIRD = r
	return nil
}
