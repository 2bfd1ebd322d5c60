package reconcile

import (
	"sync"

	"github.com/heraldlb/herald/speaker/announce"
	"github.com/heraldlb/herald/speaker/bgp"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/heraldlb/herald/speaker/takeover"
)

// Inbox collects what the speaker's components report from their own
// goroutines (memberlist messages, announcer changes, BGP session events)
// for the reconcile loop. Its methods never block, so they are safe as
// callbacks that must return quickly. Make it first and hand its methods to
// the components' options.
type Inbox struct {
	mu        sync.Mutex
	handovers []takeover.Message
	releases  []takeover.Message
	l2        []announce.Status
	links     bool // links, addresses or routes changed
	reach     *takeover.Reach
	bgp       []bgp.Event
	signal    chan struct{}
}

// NewInbox returns an empty inbox.
func NewInbox() *Inbox { return &Inbox{signal: make(chan struct{}, 1)} }

// Message is members.Options.OnMessage: it keeps hand-over and release
// messages and drops anything else.
func (in *Inbox) Message(b []byte) {
	m, err := members.ParseMessage(b)
	if err != nil {
		return
	}
	msg := takeover.Message{From: m.From, IPs: m.IPs}
	in.mu.Lock()
	if m.Kind == members.KindHandover {
		in.handovers = append(in.handovers, msg)
	} else {
		in.releases = append(in.releases, msg)
	}
	in.mu.Unlock()
	in.wake()
}

// L2Changed is announce.Options.OnChange.
func (in *Inbox) L2Changed(s announce.Status) {
	in.mu.Lock()
	in.l2 = append(in.l2, s)
	in.mu.Unlock()
	in.wake()
}

// LinksChanged is announce.Options.OnLinkChange.
func (in *Inbox) LinksChanged() {
	in.mu.Lock()
	in.links = true
	in.mu.Unlock()
	in.wake()
}

// reached reports the result of probing the live members.
func (in *Inbox) reached(r takeover.Reach) {
	in.mu.Lock()
	in.reach = &r
	in.mu.Unlock()
	in.wake()
}

// BGPEvent is bgp.Options.OnEvent.
func (in *Inbox) BGPEvent(e bgp.Event) {
	in.mu.Lock()
	in.bgp = append(in.bgp, e)
	in.mu.Unlock()
	in.wake()
}

func (in *Inbox) wake() {
	select {
	case in.signal <- struct{}{}:
	default:
	}
}

// inboxBatch is what the loop takes from the inbox at each step.
type inboxBatch struct {
	handovers, releases []takeover.Message
	links               bool
	reach               *takeover.Reach
	bgp                 []bgp.Event
}

// take empties the hand-overs, releases, link flag and BGP events.
func (in *Inbox) take() inboxBatch {
	in.mu.Lock()
	defer in.mu.Unlock()
	b := inboxBatch{in.handovers, in.releases, in.links, in.reach, in.bgp}
	in.handovers, in.releases, in.links, in.reach, in.bgp = nil, nil, false, nil, nil
	return b
}

// takeL2 empties the announcer's changes.
func (in *Inbox) takeL2() []announce.Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	l := in.l2
	in.l2 = nil
	return l
}
