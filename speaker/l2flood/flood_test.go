package l2flood

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"

	"github.com/heraldlb/herald/internal/testkit/child"
	"github.com/heraldlb/herald/speaker/announce/lantest"
	speakerarp "github.com/heraldlb/herald/speaker/arp"
	"github.com/heraldlb/herald/speaker/l2guard"
	"github.com/heraldlb/herald/speaker/l2responder"
	speakerndp "github.com/heraldlb/herald/speaker/ndp"
)

func TestMain(m *testing.M) {
	if child.Name() == "flooder" {
		os.Exit(child.Main(startFlooder))
	}
	os.Exit(m.Run())
}

// The flooding host asks from a made-up MAC and link-local address.
var (
	flooderMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	flooderIP4 = netip.MustParseAddr("10.70.0.99")
	flooderIP6 = netip.MustParseAddr("fe80::99")
)

// startFlooder serves "flood <seconds> <ip>": requests for ip (ARP for
// IPv4, Neighbor Solicitations for IPv6) sent from eth0 as fast as the
// socket takes them; it answers how many it sent.
func startFlooder(ctx context.Context) (func(string) string, func() error, error) {
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return nil, nil, err
	}
	handle := func(cmd string) string {
		var secs float64
		var target string
		if _, err := fmt.Sscanf(cmd, "flood %g %s", &secs, &target); err != nil {
			return err.Error()
		}
		ip := netip.MustParseAddr(target)
		frame, etherType, err := requestFrame(ip)
		if err != nil {
			return err.Error()
		}
		conn, err := packet.Listen(ifi, packet.Raw, etherType, nil)
		if err != nil {
			return err.Error()
		}
		defer conn.Close() //nolint:errcheck // packets sent are already gone
		to := &packet.Addr{HardwareAddr: frame[:6]}
		sent := 0
		for end := time.Now().Add(time.Duration(secs * float64(time.Second))); ctx.Err() == nil && time.Now().Before(end); {
			for range 64 {
				if _, err := conn.WriteTo(frame, to); err == nil {
					sent++
				}
			}
		}
		return strconv.Itoa(sent)
	}
	return handle, func() error { <-ctx.Done(); return nil }, nil
}

// requestFrame is an ARP request (broadcast) or a Neighbor Solicitation
// (to the solicited-node group) for ip from the flooder.
func requestFrame(ip netip.Addr) ([]byte, int, error) {
	if ip.Is4() {
		p, err := arp.NewPacket(arp.OperationRequest, flooderMAC, flooderIP4, make(net.HardwareAddr, 6), ip)
		if err != nil {
			return nil, 0, err
		}
		payload, err := p.MarshalBinary()
		if err != nil {
			return nil, 0, err
		}
		f, err := (&ethernet.Frame{Destination: ethernet.Broadcast, Source: flooderMAC, EtherType: ethernet.EtherTypeARP, Payload: payload}).MarshalBinary()
		return f, int(ethernet.EtherTypeARP), err
	}
	group, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return nil, 0, err
	}
	msg, err := ndp.MarshalMessageChecksum(&ndp.NeighborSolicitation{TargetAddress: ip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: flooderMAC}}}, flooderIP6, group)
	if err != nil {
		return nil, 0, err
	}
	g := group.As16()
	f := make([]byte, 14+40, 14+40+len(msg))
	copy(f[0:6], []byte{0x33, 0x33, g[12], g[13], g[14], g[15]})
	copy(f[6:12], flooderMAC)
	binary.BigEndian.PutUint16(f[12:14], uint16(ethernet.EtherTypeIPv6))
	f[14] = 6 << 4
	binary.BigEndian.PutUint16(f[14+4:14+6], uint16(len(msg)))
	f[14+6], f[14+7] = 58, 255 // ICMPv6, hop limit
	s := flooderIP6.As16()
	copy(f[14+8:14+24], s[:])
	copy(f[14+24:14+40], g[:])
	return append(f, msg...), int(ethernet.EtherTypeIPv6), nil
}

// countingHandler counts log lines.
type countingHandler struct {
	slog.Handler
	n *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.n.Add(1)
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(as), h.n}
}

func (h countingHandler) WithGroup(name string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(name), h.n}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// responder is what both protocols' responders offer the test.
type responder interface {
	lantest.Runner
	Set([]netip.Addr)
	Stats() l2responder.Stats
}

// A flood of requests from one host on the LAN is answered at the
// per-sender rate until the sender is muted in the kernel (within a
// second), costs the responder a small part of a core, adds a log line per
// ten seconds at most, and another host asking meanwhile is still answered
// every time. HERALD_FLOOD_SECONDS sets the flood's length (default 4).
func TestFloodIsRateLimited(t *testing.T) {
	secs := 4.0
	if s := os.Getenv("HERALD_FLOOD_SECONDS"); s != "" {
		secs, _ = strconv.ParseFloat(s, 64)
	}
	for _, proto := range []string{"ARP", "NDP"} {
		t.Run(proto, func(t *testing.T) {
			lan := lantest.New(t)
			var lines atomic.Int64
			log := slog.New(countingHandler{slog.NewTextHandler(os.Stderr, nil), &lines})
			var r responder
			vip, ask := lantest.VIP4, func() []string { return lan.Arping(t, lantest.VIP4, 3) }
			if proto == "ARP" {
				r = speakerarp.New("eth0", log)
			} else {
				r = speakerndp.New("eth0", log)
				vip = lantest.VIP6
				ask = func() []string {
					var got []string
					for range 3 {
						got = append(got, lan.Ndisc(t, lantest.VIP6)...)
					}
					return got
				}
			}
			r.Set([]netip.Addr{netip.MustParseAddr(vip)})
			lantest.Serve(t, lan.NodeA, r)
			macA := lantest.MAC(t, lan.NodeA, "eth0")
			fl := child.Start(t, lan.Reg, lan.Client, "flooder")
			if legit := ask(); len(legit) != 3 {
				t.Fatalf("before the flood: answers %v", legit)
			}

			before := r.Stats()
			cpu0, lines0, t0 := cpuTime(), lines.Load(), time.Now()
			sent := make(chan string, 1)
			go func() { sent <- fl.Call(t, fmt.Sprintf("flood %g %s", secs, vip)) }()
			time.Sleep(time.Second) // into the flood
			legit := ask()
			n, err := strconv.Atoi(<-sent)
			if err != nil {
				t.Fatalf("flooder: %v", err)
			}
			wall, cpu := time.Since(t0), cpuTime()-cpu0
			after := r.Stats()
			answered, limited := after.Answered-before.Answered, after.Limited-before.Limited
			t.Logf("MEASURE %s flood: %d requests in %.0f s (%.0f/s); responder: %.1f%% of one core, answered %d, left unanswered %d, %d log lines",
				proto, n, secs, float64(n)/secs, 100*cpu.Seconds()/wall.Seconds(), answered, limited, lines.Load()-lines0)

			if !slices.Equal(legit, []string{macA, macA, macA}) {
				t.Errorf("another host asking during the flood got answers from %v, want three from %s", legit, macA)
			}
			if n < 1000 || limited == 0 {
				t.Fatalf("%d requests sent, %d refused: no flood", n, limited)
			}
			// One requester gets its burst and rate, the other host its three.
			if limit := uint64(l2guard.Burst + l2guard.Rate*(secs+1) + 3); answered > limit {
				t.Errorf("answered %d requests, more than the %d the rate allows", answered, limit)
			}
			if got := lines.Load() - lines0; got > int64(secs/l2guard.ReportEvery.Seconds())+2 {
				t.Errorf("%d log lines during the flood", got)
			}
			if share := cpu.Seconds() / wall.Seconds(); share > 0.9 {
				t.Errorf("the responder spent %.0f%% of a core", 100*share)
			}
		})
	}
}
