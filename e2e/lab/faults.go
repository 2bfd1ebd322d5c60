package lab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Failure tools: each is one call and acts on the LAN bridge, so the member
// itself (its speaker, its kernel) sees only what a real network fault shows:
// lost carrier, silence, or lost frames.

// faults is the bridge filter state; the nftables table is rewritten whole.
type faults struct {
	mu    sync.Mutex
	pairs [][2]string // bridge ports that must not exchange frames
	loss  map[string]int
}

const faultTable = "herald_lab_faults"

// Host returns the LAN member or client called name ("node1", "client",
// "frr", "bird", "ext"), or nil.
func (l *Lab) Host(name string) *Host {
	if n := l.Node(name); n != nil {
		return &n.Host
	}
	for _, h := range []*Host{l.Client, l.Ext, &l.FRR.Host, &l.BIRD.Host} {
		if h != nil && h.Name == name {
			return h
		}
	}
	return nil
}

func (l *Lab) lanPort(member string) (string, error) {
	h := l.Host(member)
	if h == nil || h.Port == "" {
		return "", fmt.Errorf("lab: %q is not on the LAN", member)
	}
	return h.Port, nil
}

// CutLink takes member's LAN link down at the switch: its eth0 loses
// carrier and nothing passes until RestoreLink.
func (l *Lab) CutLink(ctx context.Context, member string) error {
	return l.setPort(ctx, member, "down")
}

// RestoreLink brings member's LAN link back.
func (l *Lab) RestoreLink(ctx context.Context, member string) error {
	return l.setPort(ctx, member, "up")
}

func (l *Lab) setPort(ctx context.Context, member, state string) error {
	port, err := l.lanPort(member)
	if err != nil {
		return err
	}
	return ipBatch(ctx, l.LAN, "link set "+port+" "+state)
}

// Partition drops every frame between each member of a and each member of
// b, both ways, at the LAN bridge (ARP, NDP and memberlist included); each
// side still talks among itself. Partitions add up until Heal.
func (l *Lab) Partition(ctx context.Context, a, b []string) error {
	var pairs [][2]string
	for _, x := range a {
		px, err := l.lanPort(x)
		if err != nil {
			return err
		}
		for _, y := range b {
			py, err := l.lanPort(y)
			if err != nil {
				return err
			}
			pairs = append(pairs, [2]string{px, py}, [2]string{py, px})
		}
	}
	l.faults.mu.Lock()
	defer l.faults.mu.Unlock()
	l.faults.pairs = append(l.faults.pairs, pairs...)
	return l.applyFaults(ctx)
}

// Heal removes every partition.
func (l *Lab) Heal(ctx context.Context) error {
	l.faults.mu.Lock()
	defer l.faults.mu.Unlock()
	l.faults.pairs = nil
	return l.applyFaults(ctx)
}

// SetLoss drops percent of the frames member sends and of those it
// receives, at random (nftables numgen); 0 removes the loss.
func (l *Lab) SetLoss(ctx context.Context, member string, percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("lab: loss %d%% is not a percentage", percent)
	}
	port, err := l.lanPort(member)
	if err != nil {
		return err
	}
	l.faults.mu.Lock()
	defer l.faults.mu.Unlock()
	if l.faults.loss == nil {
		l.faults.loss = map[string]int{}
	}
	if percent == 0 {
		delete(l.faults.loss, port)
	} else {
		l.faults.loss[port] = percent
	}
	return l.applyFaults(ctx)
}

// ClearFaults heals partitions, removes loss and restores every cut link.
func (l *Lab) ClearFaults(ctx context.Context) error {
	l.faults.mu.Lock()
	l.faults.pairs, l.faults.loss = nil, nil
	err := l.applyFaults(ctx)
	l.faults.mu.Unlock()
	if err != nil {
		return err
	}
	var lines []string
	for _, h := range l.lanHosts() {
		lines = append(lines, "link set "+h.Port+" up")
	}
	return ipBatch(ctx, l.LAN, lines...)
}

func (l *Lab) lanHosts() []*Host {
	hs := []*Host{&l.FRR.Host, &l.BIRD.Host, l.Client}
	for _, n := range l.Nodes {
		hs = append(hs, &n.Host)
	}
	return hs
}

// applyFaults replaces the bridge filter table with the current rules.
// The caller holds l.faults.mu.
func (l *Lab) applyFaults(ctx context.Context) error {
	return nftLoad(ctx, l.LAN, faultRules(l.faults.pairs, l.faults.loss))
}

// faultRules renders the bridge table: drops between partitioned ports and
// random drops on lossy ports. The first two lines make the load idempotent.
func faultRules(pairs [][2]string, loss map[string]int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "add table bridge %s\ndelete table bridge %s\n", faultTable, faultTable)
	fmt.Fprintf(&b, "table bridge %s {\n\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n", faultTable)
	for _, p := range pairs {
		fmt.Fprintf(&b, "\t\tiifname %q oifname %q drop\n", p[0], p[1])
	}
	ports := make([]string, 0, len(loss))
	for p := range loss {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	for _, p := range ports {
		match := fmt.Sprintf("numgen random mod 100 < %d ", loss[p])
		if loss[p] >= 100 {
			match = "" // numgen values stop at 99
		}
		fmt.Fprintf(&b, "\t\tiifname %q %sdrop\n", p, match)
		fmt.Fprintf(&b, "\t\toifname %q %sdrop\n", p, match)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}
