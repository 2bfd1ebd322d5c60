package lab

import (
	"context"
	"fmt"
	"time"
)

// NodeFault is one way a node fails as Herald sees it, and how to undo it.
// The Layer 2 suite takes an address's owner out with them, the BGP suite
// a next hop.
type NodeFault struct {
	// Name is one word, for test names and flags ("kill"); What says it.
	Name, What      string
	Inject, Restore func(ctx context.Context, l *Lab, node string) error
}

// The node faults. SIGKILL and SIGTERM close the speaker's sockets (its
// kernel resets the TCP sessions); SIGSTOP and a cut link leave them open,
// so peers notice only by their timers.
var (
	FaultKill = NodeFault{Name: "kill", What: "SIGKILL of the speaker",
		Inject:  onSpeaker(func(c *Component) error { return c.Kill() }),
		Restore: onSpeaker((*Component).Start)}
	FaultTerm = NodeFault{Name: "term", What: "SIGTERM of the speaker",
		Inject:  onSpeaker(func(c *Component) error { return c.Terminate(10 * time.Second) }),
		Restore: onSpeaker((*Component).Start)}
	FaultStop = NodeFault{Name: "stop", What: "SIGSTOP of the speaker (hung)",
		Inject:  onSpeaker((*Component).Pause),
		Restore: onSpeaker((*Component).Resume)}
	FaultCut = NodeFault{Name: "cut", What: "the node's LAN link cut",
		Inject:  func(ctx context.Context, l *Lab, node string) error { return l.CutLink(ctx, node) },
		Restore: func(ctx context.Context, l *Lab, node string) error { return l.RestoreLink(ctx, node) }}
)

func onSpeaker(do func(*Component) error) func(context.Context, *Lab, string) error {
	return func(_ context.Context, l *Lab, node string) error {
		c := l.Speaker(node)
		if c == nil {
			return fmt.Errorf("lab: no speaker on %s", node)
		}
		return do(c)
	}
}
