package lab

import (
	"context"
	"fmt"
)

// Faults seen from inside a node, as its own kernel or an administrator on
// it would cause them (the faults in faults.go act on the LAN bridge).

// NodeLinkDown takes the node's LAN interface down from inside the node, as
// `ip link set eth0 down` does: the kernel drops every route through it,
// the on-link route toward the Layer 2 pool among them. Memberlist, whose
// address stays, loses the others too.
func (l *Lab) NodeLinkDown(ctx context.Context, node string) error {
	return l.onNode(ctx, node, "link set eth0 down")
}

// NodeLinkUp brings the node's LAN interface up again. The routes the
// kernel dropped stay lost (RestoreNodeRoutes puts them back), as on a host
// whose link flapped under a network manager that does not restore them.
func (l *Lab) NodeLinkUp(ctx context.Context, node string) error {
	return l.onNode(ctx, node, "link set eth0 up")
}

// RestoreNodeRoutes puts the node's static routes back (see nodeRoutes).
func (l *Lab) RestoreNodeRoutes(ctx context.Context, node string) error {
	n := l.Node(node)
	if n == nil {
		return fmt.Errorf("lab: no node %q", node)
	}
	return ipBatch(ctx, n.NS, l.nodeRoutes(n, "replace")...)
}

func (l *Lab) onNode(ctx context.Context, node string, lines ...string) error {
	n := l.Node(node)
	if n == nil {
		return fmt.Errorf("lab: no node %q", node)
	}
	return ipBatch(ctx, n.NS, lines...)
}

// nodeFirewall is the nftables table a node's own firewall rules go in.
const nodeFirewall = "herald_lab_firewall"

// BlockPort drops, on the node's own input, every TCP and UDP packet to
// port: a host firewall that forgot to open it (stateless, so replies to
// the node's own connections from that port are dropped too).
func (l *Lab) BlockPort(ctx context.Context, node string, port int) error {
	n := l.Node(node)
	if n == nil {
		return fmt.Errorf("lab: no node %q", node)
	}
	rules := fmt.Sprintf(`table inet %[1]s {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport %[2]d drop
		udp dport %[2]d drop
	}
}
`, nodeFirewall, port)
	return nftLoad(ctx, n.NS, rules)
}

// UnblockPorts removes the node's firewall rules.
func (l *Lab) UnblockPorts(ctx context.Context, node string) error {
	n := l.Node(node)
	if n == nil {
		return fmt.Errorf("lab: no node %q", node)
	}
	if _, err := n.NS.Run(ctx, "nft", "delete", "table", "inet", nodeFirewall); err != nil {
		return fmt.Errorf("lab: unblock ports on %s: %w", node, err)
	}
	return nil
}
