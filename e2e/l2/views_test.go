package l2

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
)

// What the SpeakerStatus objects and the LAN client say, as a user would
// read it.

// waitMembers waits until every node's SpeakerStatus counts n live members.
func (e *env) waitMembers(ctx context.Context, n int) error {
	return lab.Poll(ctx, 100*time.Millisecond, func() error {
		st, err := e.SpeakerStatuses(ctx)
		if err != nil {
			return err
		}
		for _, node := range e.Nodes {
			if got := st[node.Name].MembersAlive; got != int32(n) {
				return fmt.Errorf("%s sees %d members, want %d", node.Name, got, n)
			}
		}
		return nil
	})
}

// owners lists the nodes whose SpeakerStatus says they announce ip.
func (e *env) owners(ctx context.Context, ip string) ([]string, error) {
	st, err := e.SpeakerStatuses(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for node, s := range st {
		for _, a := range s.L2Announcements {
			if a.IP == ip {
				out = append(out, node)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// waitOwner waits until exactly one node announces ip (and not one of
// except) and returns it.
func (e *env) waitOwner(ctx context.Context, ip string, except ...string) (string, error) {
	var owner string
	err := lab.Poll(ctx, 50*time.Millisecond, func() error {
		o, err := e.owners(ctx, ip)
		if err != nil {
			return err
		}
		if len(o) != 1 || slices.Contains(except, o[0]) {
			return fmt.Errorf("%s announced by %v", ip, o)
		}
		owner = o[0]
		return nil
	})
	return owner, err
}

// answerers returns the nodes whose MACs answer the client's ARP requests
// (IPv4) or Neighbor Solicitations (IPv6) for ip, all of them.
func (e *env) answerers(ctx context.Context, ip string) ([]string, error) {
	var out string
	var err error
	if strings.Contains(ip, ":") {
		out, err = e.Client.Run(ctx, "ndisc6", "-m", "-n", "-r", "2", "-w", "700", ip, "eth0")
	} else {
		out, err = e.Client.Run(ctx, "arping", "-c", "2", "-w", "2", "-i", "eth0", ip)
	}
	set := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		var macText string
		if _, rest, ok := strings.Cut(line, " bytes from "); ok {
			macText, _, _ = strings.Cut(rest, " ")
		} else if _, rest, ok := strings.Cut(line, "Target link-layer address:"); ok {
			macText = strings.TrimSpace(rest)
		}
		if mac, perr := net.ParseMAC(macText); perr == nil {
			name := e.macs[mac.String()]
			if name == "" {
				name = mac.String()
			}
			set[name] = true
		}
	}
	if len(set) == 0 && err != nil {
		return nil, nil // no answer at all
	}
	return slices.Sorted(maps.Keys(set)), nil
}

// get sends a request to ip from the LAN client, retrying while
// kube-proxy catches up, and returns the node that answered.
func (e *env) get(ctx context.Context, ip string) (node string, err error) {
	rep, err := e.Client.GetEventually(ctx, lab.URL(ip, 80))
	return rep.Node, err
}
