package reconcile

import (
	"sync"

	"github.com/heraldlb/herald/speaker/announce"
	"github.com/heraldlb/herald/speaker/bgp"
	"github.com/heraldlb/herald/speaker/members"
)

// Inbox collects what the speaker's components report from their own
// goroutines (memberlist messages, announcer changes, BGP session events)
// for the reconcile loop. Its methods never block, so they are safe as
// callbacks that must return quickly. Make it first and hand its methods to
// the components' options.
type Inbox struct {
	mu        sync.Mutex
	handovers []members.Handover
	releases  []release
	l2        []announce.Status
	bgp       []bgp.Event
	signal    chan struct{}
}

// NewInbox returns an empty inbox.
func NewInbox() *Inbox { return &Inbox{signal: make(chan struct{}, 1)} }

// Message is members.Options.OnMessage: it keeps hand-over and release
// messages.
func (in *Inbox) Message(b []byte) {
	h, herr := members.ParseHandover(b)
	r, rerr := parseRelease(b)
	if herr != nil && rerr != nil {
		return
	}
	in.mu.Lock()
	if herr == nil {
		in.handovers = append(in.handovers, h)
	} else {
		in.releases = append(in.releases, r)
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

// takeMessages empties the hand-overs, releases and BGP events.
func (in *Inbox) takeMessages() ([]members.Handover, []release, []bgp.Event) {
	in.mu.Lock()
	defer in.mu.Unlock()
	h, r, b := in.handovers, in.releases, in.bgp
	in.handovers, in.releases, in.bgp = nil, nil, nil
	return h, r, b
}

// takeL2 empties the announcer's changes.
func (in *Inbox) takeL2() []announce.Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	l := in.l2
	in.l2 = nil
	return l
}
