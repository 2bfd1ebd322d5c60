// Package lantest holds the lab pieces the tests of arp, ndp, announce and
// members share: a bridge namespace ("switch") that host namespaces plug into
// with veth pairs, and the small Layer 2 LAN below built on it (tests run
// code inside it with internal/testkit/child). Everything is made through
// internal/netns and removed when the test ends.
//
//	nodeA eth0 10.70.0.1/24   2001:db8:70::1/64  --+
//	nodeA eth1 10.71.0.1/24   2001:db8:71::1/64  --+-- br0 (switch)
//	nodeB eth0 10.70.0.2/24   2001:db8:70::2/64  --+
//	client eth0 10.70.0.100/24 2001:db8:70::100/64 -+  on-link routes to
//	                                   198.51.100.0/24 and 2001:db8:100::/64
//
// The nodes route everything else to gateways that do not exist (so the
// kernel's choice of interface toward a service IP is eth0); no address of
// the service subnets is configured anywhere.
package lantest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
)

// Service addresses the tests announce; never configured on an interface.
const (
	VIP4 = "198.51.100.5"
	VIP6 = "2001:db8:100::5"
)

// LAN is the built lab.
type LAN struct {
	Reg                          *netns.Registry
	Switch, NodeA, NodeB, Client *netns.NS
}

// Switch is a bridge namespace that hosts can be plugged into.
type Switch struct {
	Reg *netns.Registry
	NS  *netns.NS
	n   int
}

// NewSwitch makes a registry and a namespace "sw" with bridge br0, or skips
// the test without root. Everything the registry made is removed when the
// test ends, and the test fails if anything is left behind.
func NewSwitch(t testing.TB) *Switch {
	t.Helper()
	if err := netns.RequireRoot(); err != nil {
		t.Skip(err)
	}
	reg := netns.New(netns.UniquePrefix(), nil)
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Errorf("lab teardown: %v", err)
		}
		if left, err := netns.Leftovers(reg.Prefix()); err != nil || len(left) > 0 {
			t.Errorf("lab left behind %v (%v)", left, err)
		}
	})
	s := &Switch{Reg: reg}
	s.NS = s.AddHost(t, "sw")
	s.NS.MustRun(context.Background(), "ip", "link", "add", "br0", "type", "bridge")
	s.NS.MustRun(context.Background(), "ip", "link", "set", "br0", "up")
	return s
}

// AddHost makes a namespace with duplicate address detection off, so
// addresses are usable at once.
func (s *Switch) AddHost(t testing.TB, short string) *netns.NS {
	t.Helper()
	ctx := context.Background()
	ns, err := s.Reg.Add(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"all", "default"} {
		ns.MustRun(ctx, "sysctl", "-qw", "net.ipv6.conf."+k+".accept_dad=0")
	}
	return ns
}

// Plug links ns (interface ifname, with addrs) to the bridge.
func (s *Switch) Plug(t testing.TB, ns *netns.NS, ifname string, addrs ...string) {
	t.Helper()
	ctx := context.Background()
	s.n++
	port := fmt.Sprintf("p%d", s.n)
	if err := s.Reg.Veth(ctx, ns, ifname, s.NS, port); err != nil {
		t.Fatal(err)
	}
	s.NS.MustRun(ctx, "ip", "link", "set", port, "master", "br0")
	for _, a := range addrs {
		ns.MustRun(ctx, "ip", "addr", "add", a, "dev", ifname, "nodad")
	}
}

// New builds the LAN, or skips the test without root.
func New(t testing.TB) *LAN {
	t.Helper()
	ctx := context.Background()
	sw := NewSwitch(t)
	l := &LAN{Reg: sw.Reg, Switch: sw.NS}
	l.NodeA, l.NodeB, l.Client = sw.AddHost(t, "na"), sw.AddHost(t, "nb"), sw.AddHost(t, "cl")
	sw.Plug(t, l.NodeA, "eth0", "10.70.0.1/24", "2001:db8:70::1/64")
	sw.Plug(t, l.NodeA, "eth1", "10.71.0.1/24", "2001:db8:71::1/64")
	sw.Plug(t, l.NodeB, "eth0", "10.70.0.2/24", "2001:db8:70::2/64")
	sw.Plug(t, l.Client, "eth0", "10.70.0.100/24", "2001:db8:70::100/64")
	for _, n := range []*netns.NS{l.NodeA, l.NodeB} {
		n.MustRun(ctx, "ip", "route", "add", "default", "via", "10.70.0.254", "dev", "eth0")
		n.MustRun(ctx, "ip", "-6", "route", "add", "default", "via", "2001:db8:70::fe", "dev", "eth0")
	}
	l.Client.MustRun(ctx, "ip", "route", "add", "198.51.100.0/24", "dev", "eth0")
	l.Client.MustRun(ctx, "ip", "-6", "route", "add", "2001:db8:100::/64", "dev", "eth0")
	for _, n := range []*netns.NS{l.NodeA, l.NodeB, l.Client} {
		testkit.For(t, 5*time.Second, "duplicate address detection done", func() error {
			if out, _ := n.Run(ctx, "ip", "-6", "addr", "show", "tentative"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s: tentative addresses: %s", n.Name, out)
			}
			return nil
		})
	}
	return l
}

// MAC is the hardware address of ifname in ns, lower case.
func MAC(t testing.TB, ns *netns.NS, ifname string) string {
	t.Helper()
	out, err := ns.Run(context.Background(), "cat", "/sys/class/net/"+ifname+"/address")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

var macRe = regexp.MustCompile(`(?i)\b([0-9a-f]{2}(?::[0-9a-f]{2}){5})\b`)

// Arping sends count ARP requests for ip from the client's eth0 and returns
// the sender MAC of every reply (none if nobody answers).
func (l *LAN) Arping(t testing.TB, ip string, count int) []string {
	t.Helper()
	out, _ := l.Client.Run(context.Background(), "arping", "-i", "eth0", "-c", fmt.Sprint(count), "-W", "0.1", "-w", fmt.Sprint(0.1*float64(count)+0.3), ip)
	var macs []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "bytes from") {
			continue
		}
		if m := macRe.FindString(line); m != "" {
			macs = append(macs, strings.ToLower(m))
		}
	}
	return macs
}

// Ndisc sends one Neighbor Solicitation for ip from the client's eth0 and
// returns the target link-layer address of every advertisement received.
func (l *LAN) Ndisc(t testing.TB, ip string) []string {
	t.Helper()
	out, _ := l.Client.Run(context.Background(), "ndisc6", "-m", "-n", "-r", "1", "-w", "400", ip, "eth0")
	var macs []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "Target link-layer address") {
			if m := macRe.FindString(line); m != "" {
				macs = append(macs, strings.ToLower(m))
			}
		}
	}
	return macs
}

// Neigh is the client's neighbour entry for ip on eth0: MAC ("" if the entry
// has none) and state (REACHABLE, STALE, ...).
func (l *LAN) Neigh(t testing.TB, ip string) (mac, state string) {
	t.Helper()
	out, err := l.Client.Run(context.Background(), "ip", "neigh", "show", ip, "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", ""
	}
	if i := indexOf(f, "lladdr"); i >= 0 && i+1 < len(f) {
		mac = strings.ToLower(f[i+1])
	}
	return mac, f[len(f)-1]
}

// Resolve makes the client's kernel resolve ip (one ping, answered or not),
// which leaves a neighbour entry if some node answered ARP or NDP for it.
func (l *LAN) Resolve(ip string) {
	_, _ = l.Client.Run(context.Background(), "ping", "-c", "1", "-W", "0.3", ip)
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// Runner is what Serve runs: an arp or ndp responder.
type Runner interface {
	Run(ctx context.Context) error
	Running() bool
}

// Serve runs r inside ns (so its sockets live there) until the test ends,
// and waits until it is running. Run must return nil when stopped.
func Serve(t testing.TB, ns *netns.NS, r Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ns.Do(func() error { return r.Run(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run in %s: %v", ns.Name, err)
		}
	})
	testkit.For(t, 5*time.Second, "responder running", func() error {
		if !r.Running() {
			return fmt.Errorf("responder in %s not running", ns.Name)
		}
		return nil
	})
}
