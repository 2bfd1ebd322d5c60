package announce_test

import (
	"context"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/heraldlb/herald/speaker/announce"
	"github.com/heraldlb/herald/speaker/election"
	"github.com/heraldlb/herald/speaker/members"
)

// How the speaker glues the Layer 2 pieces together: memberlist says who is
// alive, election says which IPs this node owns, the announcer makes the node
// answer for exactly those. On SIGTERM the node hands its IPs to their
// successors directly, then leaves. (Compiled, not run.)
func Example() {
	const self = "node-a"
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	// For each service IP, the nodes allowed to announce it (L2Advertisement
	// node selectors, and endpoints for externalTrafficPolicy: Local).
	eligible := map[netip.Addr][]string{
		netip.MustParseAddr("198.51.100.5"):    {"node-a", "node-b", "node-c"},
		netip.MustParseAddr("2001:db8:100::5"): {"node-a", "node-b", "node-c"},
	}
	// Nodes that handed their IPs over are treated as dead at once; the
	// value says whether memberlist has since seen them go, so a later
	// return (a restarted speaker) counts as alive again.
	gone := map[string]bool{}
	handovers := make(chan members.Handover, 16)

	m, err := members.New(members.Options{
		Name:     self,
		BindAddr: netip.MustParseAddr("10.0.0.1"), // the node's InternalIP
		Key:      make([]byte, 32),                // from the memberlist Secret
		OnMessage: func(b []byte) {
			if h, err := members.ParseHandover(b); err == nil {
				handovers <- h // never block memberlist for long
			}
		},
	})
	if err != nil {
		panic(err)
	}
	m.SetPeers([]string{"10.0.0.2", "10.0.0.3"}) // other nodes' InternalIPs

	l2, err := announce.New(announce.Options{
		OnChange: func(s announce.Status) {
			// Event on the Service: "announcing 198.51.100.5 from node-a on eth0"
			// or a warning when s.Interfaces is empty but the IP is owned.
		},
	})
	if err != nil {
		panic(err)
	}
	go func() { _ = m.Run(ctx) }()
	go func() { _ = l2.Run(ctx) }()

	alive := func() []string {
		return slices.DeleteFunc(m.Alive(), func(n string) bool { return gone[n] })
	}
	apply := func() {
		var desired []announce.Announcement
		for _, ip := range election.OwnedBy(self, alive(), eligible) {
			desired = append(desired, announce.Announcement{IP: ip})
		}
		l2.Set(desired)
	}
	for {
		select {
		case <-m.Changes(): // also on configuration and endpoint changes
			live := m.Alive()
			for n, seenOut := range gone {
				switch in := slices.Contains(live, n); {
				case !in:
					gone[n] = true
				case seenOut:
					delete(gone, n) // it came back
				}
			}
			apply()
		case h := <-handovers:
			gone[h.From] = false
			apply()
		case <-ctx.Done():
			// Graceful stop: tell each IP's successor to take it now.
			live := alive()
			byNode := map[string][]netip.Addr{}
			for _, ip := range election.OwnedBy(self, live, eligible) {
				candidates := slices.DeleteFunc(slices.Clone(eligible[ip]), func(n string) bool {
					return n == self || !slices.Contains(live, n)
				})
				if next := election.Owner(ip, candidates); next != "" {
					byNode[next] = append(byNode[next], ip)
				}
			}
			l2.Set(nil)
			for node, ips := range byNode {
				_ = m.Send(node, members.Handover{From: self, IPs: ips}.Marshal())
			}
			_ = m.Leave(time.Second)
			os.Exit(0)
		}
	}
}
