package routers

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// BIRDProtocol is one protocol of "show protocols all".
type BIRDProtocol struct {
	Name, Proto, Table, State string
	// Since is when the protocol last changed state (ms precision); it stays
	// the same as long as a BGP session is not reset.
	Since    string
	Info     string
	BGPState string // "Established", "Idle", "Connect", ...
	// NeighborAddress and LastError come from the BGP section.
	NeighborAddress string
	LastError       string
	// Channels maps "ipv4"/"ipv6" to the channel's route counts.
	Channels map[string]BIRDChannel
}

// birdSinceJitter bounds how far BIRD's printed state-change time of one
// unchanged session moves between queries: BIRD keeps it on its monotonic
// clock and prints it as wall-clock time, and the printed value moves (1 ms
// on an idle machine; up to 66 ms seen in make test, 2026-12-03). A reset
// moves it much further: gobgp and BIRD wait at least a second before they
// reconnect.
const birdSinceJitter = 500 * time.Millisecond

// SameSession reports whether q shows the same established session as p:
// both established, and the state-change time the same up to BIRD's
// rounding.
func (p BIRDProtocol) SameSession(q BIRDProtocol) bool {
	if !p.Established() || !q.Established() {
		return false
	}
	const layout = "2006-01-02 15:04:05.000"
	a, errA := time.Parse(layout, p.Since)
	b, errB := time.Parse(layout, q.Since)
	if errA != nil || errB != nil {
		return p.Since == q.Since
	}
	return b.Sub(a).Abs() <= birdSinceJitter
}

// BIRDChannel is one channel of a protocol.
type BIRDChannel struct {
	State    string
	Imported int
	Exported int
	NextHop  string // "BGP Next hop" for BGP channels
}

// Established reports whether a BGP protocol's session is up.
func (p BIRDProtocol) Established() bool { return p.BGPState == "Established" }

// Protocols returns every protocol keyed by name.
func (r *BIRD) Protocols(ctx context.Context) (map[string]BIRDProtocol, error) {
	out, err := r.Birdc(ctx, "show protocols all")
	if err != nil {
		return nil, err
	}
	return parseProtocols(out), nil
}

// Protocol returns one protocol by name, or ErrNotFound.
func (r *BIRD) Protocol(ctx context.Context, name string) (BIRDProtocol, error) {
	all, err := r.Protocols(ctx)
	if err != nil {
		return BIRDProtocol{}, err
	}
	p, ok := all[name]
	if !ok {
		return BIRDProtocol{}, fmt.Errorf("protocol %s on %s: %w", name, r.Config.Name, ErrNotFound)
	}
	return p, nil
}

func parseProtocols(out string) map[string]BIRDProtocol {
	protos := map[string]BIRDProtocol{}
	var cur *BIRDProtocol
	var channel string
	flush := func() {
		if cur != nil {
			protos[cur.Name] = *cur
		}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "BIRD ") || strings.HasPrefix(line, "Name ") {
			continue
		}
		if line[0] != ' ' {
			flush()
			f := strings.Fields(line)
			if len(f) < 4 {
				cur = nil
				continue
			}
			cur = &BIRDProtocol{Name: f[0], Proto: f[1], Table: f[2], State: f[3], Channels: map[string]BIRDChannel{}}
			// "Since" is a date and a time with "iso long ms".
			if len(f) >= 6 {
				cur.Since = f[4] + " " + f[5]
				cur.Info = strings.Join(f[6:], " ")
			}
			channel = ""
			continue
		}
		if cur == nil {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		value = strings.TrimSpace(value)
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "Channel "):
			channel = strings.TrimPrefix(strings.TrimSpace(line), "Channel ")
			cur.Channels[channel] = BIRDChannel{}
		case !ok:
		case key == "BGP state":
			cur.BGPState = value
		case key == "Neighbor address":
			cur.NeighborAddress = value
		case key == "Last error":
			cur.LastError = value
		case channel != "":
			ch := cur.Channels[channel]
			switch key {
			case "State":
				ch.State = value
			case "Routes":
				// "1 imported, 2 exported, 0 preferred"
				for _, part := range strings.Split(value, ",") {
					f := strings.Fields(part)
					if len(f) == 2 {
						n, _ := strconv.Atoi(f[0])
						switch f[1] {
						case "imported":
							ch.Imported = n
						case "exported":
							ch.Exported = n
						}
					}
				}
			case "BGP Next hop":
				ch.NextHop = value
			}
			cur.Channels[channel] = ch
		}
	}
	flush()
	return protos
}

// BIRDRoute is one route of a prefix in BIRD's table.
type BIRDRoute struct {
	Prefix   netip.Prefix
	Type     string // "unicast", "blackhole", ...
	Protocol string // the protocol that brought it, e.g. the BGP protocol name
	Since    string
	// Primary is BIRD's best route for the prefix (marked "*").
	Primary          bool
	Via              []BIRDNextHop
	ASPath           string
	BGPNextHop       []string // global (and link-local) next hop as received
	LocalPref        *uint32
	Communities      []string // "64512:100"
	LargeCommunities []string // "64512:1:2"
	Attrs            map[string]string
}

// BIRDNextHop is where BIRD forwards: "via <addr> on <iface>".
type BIRDNextHop struct {
	Addr  netip.Addr
	Iface string
}

// Routes returns every route BIRD holds for exactly prefix, or ErrNotFound.
func (r *BIRD) Routes(ctx context.Context, prefix netip.Prefix) ([]BIRDRoute, error) {
	out, err := r.Birdc(ctx, "show route "+prefix.Masked().String()+" all")
	if strings.Contains(out, "Network not found") {
		return nil, fmt.Errorf("BIRD route %s on %s: %w", prefix, r.Config.Name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	routes := parseRoutes(out, prefix.Masked())
	if len(routes) == 0 {
		return nil, fmt.Errorf("BIRD route %s on %s: %w", prefix, r.Config.Name, ErrNotFound)
	}
	return routes, nil
}

// parseRoutes reads "show route <prefix> all". A route starts with a header
// "[prefix] type [proto time (from addr)] (*) (pref) [...]"; its details
// follow on tab-indented lines.
func parseRoutes(out string, prefix netip.Prefix) []BIRDRoute {
	var routes []BIRDRoute
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "BIRD ") || strings.HasPrefix(line, "Table ") {
			continue
		}
		if line[0] == '\t' {
			if len(routes) > 0 {
				routes[len(routes)-1].addDetail(strings.TrimSpace(line))
			}
			continue
		}
		f := strings.Fields(line)
		if line[0] != ' ' && len(f) > 0 {
			f = f[1:] // the prefix itself
		}
		if len(f) < 2 {
			continue
		}
		rt := BIRDRoute{Prefix: prefix, Type: f[0], Attrs: map[string]string{}}
		if i := strings.Index(line, "["); i >= 0 {
			if j := strings.Index(line[i:], "]"); j > 0 {
				inner := strings.Fields(line[i+1 : i+j])
				if len(inner) > 0 {
					rt.Protocol = inner[0]
				}
				if len(inner) >= 3 {
					rt.Since = inner[1] + " " + inner[2]
				}
				rt.Primary = strings.HasPrefix(strings.TrimSpace(line[i+j+1:]), "*")
			}
		}
		routes = append(routes, rt)
	}
	return routes
}

func (rt *BIRDRoute) addDetail(line string) {
	if rest, ok := strings.CutPrefix(line, "via "); ok {
		f := strings.Fields(rest)
		nh := BIRDNextHop{}
		nh.Addr, _ = netip.ParseAddr(f[0])
		if len(f) >= 3 && f[1] == "on" {
			nh.Iface = f[2]
		}
		rt.Via = append(rt.Via, nh)
		return
	}
	key, value, ok := strings.Cut(line, ": ")
	if !ok {
		return
	}
	rt.Attrs[key] = value
	switch key {
	case "BGP.as_path":
		rt.ASPath = value
	case "BGP.next_hop":
		rt.BGPNextHop = strings.Fields(value)
	case "BGP.local_pref":
		if n, err := strconv.ParseUint(value, 10, 32); err == nil {
			v := uint32(n)
			rt.LocalPref = &v
		}
	case "BGP.community":
		rt.Communities = tuples(value)
	case "BGP.large_community":
		rt.LargeCommunities = tuples(value)
	}
}

// tuples turns BIRD's "(64512,100) (64512, 1, 2)" into "64512:100", "64512:1:2".
func tuples(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ")") {
		part = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(part), "("))
		if part == "" {
			continue
		}
		var nums []string
		for _, n := range strings.Split(part, ",") {
			nums = append(nums, strings.TrimSpace(n))
		}
		out = append(out, strings.Join(nums, ":"))
	}
	return out
}

// BIRDBFDSession is one line of "show bfd sessions".
type BIRDBFDSession struct {
	Address netip.Addr
	Iface   string
	State   string // "Up", "Down", "Init"
}

// BFDSessions returns BIRD's BFD sessions.
func (r *BIRD) BFDSessions(ctx context.Context) ([]BIRDBFDSession, error) {
	out, err := r.Birdc(ctx, "show bfd sessions")
	if err != nil {
		return nil, err
	}
	var sessions []BIRDBFDSession
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		addr, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		sessions = append(sessions, BIRDBFDSession{Address: addr, Iface: f[1], State: f[2]})
	}
	return sessions, nil
}
