package lab

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/heraldlb/herald/internal/poll"
)

// What the SpeakerStatus objects and the LAN client say about Layer 2
// addresses, as a user would read it.

// NodeOfMAC names the node whose eth0 has mac ("" if none).
func (l *Lab) NodeOfMAC(mac string) string {
	l.macsOnce.Do(func() {
		l.macs = map[string]string{}
		for _, n := range l.Nodes {
			if m, err := n.MAC(); err == nil {
				l.macs[m.String()] = n.Name
			}
		}
	})
	return l.macs[mac]
}

// WaitMembers waits until every node's SpeakerStatus counts n live members.
func (h *Herald) WaitMembers(ctx context.Context, n int) error {
	return poll.Until(ctx, 100*time.Millisecond, func() error {
		st, err := h.SpeakerStatuses(ctx)
		if err != nil {
			return err
		}
		for _, node := range h.Nodes {
			if got := st[node.Name].MembersAlive; got != int32(n) {
				return fmt.Errorf("%s sees %d members, want %d", node.Name, got, n)
			}
		}
		return nil
	})
}

// Owners lists the nodes whose SpeakerStatus says they announce ip.
func (h *Herald) Owners(ctx context.Context, ip string) ([]string, error) {
	st, err := h.SpeakerStatuses(ctx)
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

// WaitOwner waits until exactly one node announces ip (and not one of
// except) and returns it.
func (h *Herald) WaitOwner(ctx context.Context, ip string, except ...string) (string, error) {
	var owner string
	err := poll.Until(ctx, 50*time.Millisecond, func() error {
		o, err := h.Owners(ctx, ip)
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

// Answerers returns the nodes whose MACs answer the LAN client's ARP
// requests (IPv4) or Neighbor Solicitations (IPv6) for ip, all of them
// (two requests each).
func (h *Herald) Answerers(ctx context.Context, ip string) ([]string, error) {
	var out string
	var err error
	if strings.Contains(ip, ":") {
		out, err = h.Client.Run(ctx, "ndisc6", "-m", "-n", "-r", "2", "-w", "700", ip, "eth0")
	} else {
		out, err = h.Client.Run(ctx, "arping", "-c", "2", "-w", "2", "-i", "eth0", ip)
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
			name := h.NodeOfMAC(mac.String())
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

// OneAnswerEach checks that every address is answered by exactly one node
// (all of ARP and NDP's answers counted), and not by one of except.
func (h *Herald) OneAnswerEach(ctx context.Context, ips []string, except ...string) error {
	for _, ip := range ips {
		ans, err := h.Answerers(ctx, ip)
		if err != nil {
			return err
		}
		if len(ans) != 1 || slices.Contains(except, ans[0]) {
			return fmt.Errorf("%s answered by %v, want exactly one node (not %v)", ip, ans, except)
		}
	}
	return nil
}

// Holders folds captured messages into, per address, the nodes that said
// they hold it, in the order they first did after since, each node once
// per run (A, B, A: two moves).
func (l *Lab) Holders(msgs []L2Message, since time.Time) map[string][]string {
	out := map[string][]string{}
	for _, m := range msgs {
		if m.At.Before(since) {
			continue
		}
		node := l.NodeOfMAC(m.MAC)
		if node == "" {
			continue // the client or a router
		}
		if seq := out[m.IP]; len(seq) == 0 || seq[len(seq)-1] != node {
			out[m.IP] = append(seq, node)
		}
	}
	return out
}
