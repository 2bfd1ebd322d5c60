// Package takeover holds the rule a reader of Herald's Layer 2 mode must
// trust: when this node may start answering for an address that it does
// not answer for yet. Election (speaker/election) says which node ranks
// first for an address; this package says whether the node that ranks first
// may act on it now, and what it must tell the others.
//
// The danger is a node that believes it is alone. A node whose link is cut,
// whose memberlist port is blocked by a firewall, or that sits on one side
// of a partition sees every other speaker fail, exactly as a node whose
// peers all crashed does. If it then answered for their addresses, two MACs
// would answer for one IP and clients would flip between them. So:
//
//  1. Quorum. A node takes over an address only while it sees a strict
//     majority of the speakers it should see. What it should see does not
//     come from its own memberlist history alone: it is every speaker the API
//     server shows present (a fresh Lease, see speaker/presence), every
//     member memberlist shows alive, and itself. Members its own probes
//     suspect count as unseen. So a node that just started behind a
//     firewall, a node cut off from the LAN, and both halves of an even
//     split take nothing over; a node never drops what it already announces
//     for lack of quorum.
//  2. Settle. When a node's view turns trustworthy (it joins, or sees a
//     majority again) its view may be ahead of the others': it sees them,
//     they may not see it. It then publishes that it is settling and waits
//     until every member it sees has answered it with a release message
//     (each sends one, at least once a second, to every member that
//     publishes it is settling, settled or not; a member that has not
//     published that it settled counts too: it may be announcing, and
//     only its answer shows that it sees this node). There is no timeout: a node that hears
//     from nobody (a firewall drops what is sent to it) stays settling and
//     takes nothing over, however well it sees the others. After that it
//     waits a grace period in which it takes only what is released to it,
//     so that the others, who now count it, stop before it starts: an
//     address moves back once, when both sides agree. After a stall or when
//     its data path came back, a node only waits the grace period.
//  3. Confirmation. A member that (re)appears becomes a candidate for
//     addresses only once it has published that it sees a majority and
//     has settled (see Published). A node whose memberlist port is blocked
//     one way keeps re-joining; without this rule the others would hand it
//     addresses at every re-join and nobody would answer for them. Until
//     it confirms, though, it may still answer for the addresses it ranks
//     first for (it kept them through a split, and a node never drops what
//     it announces for lack of quorum), and its published state may reach
//     the others seconds after the heal. So no node takes over an address
//     whose first-ranked node among all the members seen is such an
//     unconfirmed member (Decision.Unconfirmed), until that member confirms
//     or leaves; what is released or handed over may still be taken (its
//     sender just let go, and the unconfirmed member did not hold it then,
//     or two would have answered already).
//  4. Reach. Memberlist detects failures one probe at a time, so a node
//     cut off with half the cluster may declare the first of the others
//     dead while it still counts the rest as seen. Before it takes over
//     anything after a member failed, a node therefore probes the live
//     members at once (Decision.Probe) and goes on only if it reaches a
//     strict majority of the speakers it expects. It probes the failed
//     members too: one that still answers was declared dead by stale or
//     slow gossip (a node back from a cut link spreads its old view; a
//     loaded peer refutes a suspicion too late), not by a crash, and it
//     may still answer for its addresses, so nothing is taken over until
//     memberlist sees it again or it stops answering. A real failure pays
//     one probe timeout for this.
//  5. Messages. A stopping node hands its addresses to their successors
//     (hand-over); an incumbent releases addresses to the member that now
//     ranks first (release). Both may be taken at once, quorum or not: the
//     only other claimant just let go.
//  6. Exclusion. A node excluded from load balancing (drained, labelled
//     node.kubernetes.io/exclude-from-external-load-balancers, network
//     unavailable) is no candidate, neither for itself (Input.Excluded)
//     nor for the others (Published.Excluded). It stops answering first,
//     then publishes that it is excluded and releases each address to its
//     successor, which may take it at once. It keeps counting for quorum
//     and answering settling members, and forgets what is released to it
//     meanwhile (the sender did not know yet, and may take it back). It
//     stays out for a few seconds at least (Config.ExcludedHold), longer
//     than any such release travels, so a flapping exclusion never lets it
//     take a stale one. When it is back in service it takes only what is
//     released to it since,
//     for the grace period, and the others, who see it return as a
//     candidate, greet it and release to it, as to a member that
//     rejoined: one move per address, and never two owners.
//
// A Guard is pure: the caller passes the time and what memberlist, the API
// server and the messages say, and acts on the Decision.
package takeover

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Defaults for Config's zero fields.
const (
	DefaultGrace       = 2 * time.Second
	DefaultReleaseHold = 2 * time.Second
	DefaultGreetEvery  = time.Second
	// DefaultExcludedHold: a node stays out of Layer 2 at least this long
	// once excluded (rule 6), longer than a release is held.
	DefaultExcludedHold = 3 * time.Second
)

// heardSlack: a release this much older than the start of settling still
// counts (it may arrive just before this node's own view changed).
const heardSlack = time.Second

// keyMismatchWindow is how recent undecryptable gossip must be to name a
// different memberlist key as the likely reason a node sees only itself.
const keyMismatchWindow = time.Minute

// Config configures a Guard.
type Config struct {
	// Self is this node's name.
	Self string
	// Grace is how long a node that settled (or was stalled, or can announce
	// again) takes only what is released to it, while the others catch up.
	Grace time.Duration
	// ReleaseHold is how long an address released to this node may be
	// taken over even while it settles (its own view may lag the sender's).
	ReleaseHold time.Duration
	// GreetEvery is how often a member that publishes it is settling is
	// sent a release message.
	GreetEvery time.Duration
	// ExcludedHold is how long a node stays excluded at least once it is
	// (rule 6), however soon its exclusion ends.
	ExcludedHold time.Duration
}

// Message is a hand-over or release received from another node.
type Message struct {
	From string
	IPs  []netip.Addr
}

// Input is one observation of the world.
type Input struct {
	Now time.Time
	// Alive are memberlist's live members, suspects included, this node
	// included; empty while this node is not a member (memberlist not
	// running or its first join not done).
	Alive []string
	// Suspects are live members this node's own probes suspect.
	Suspects []string
	// Present are the speakers the API server shows running (a fresh Lease).
	Present []string
	// Published is what the other members published (see Published; a
	// member that published nothing is absent).
	Published map[string]Published
	// KeyMismatch is when gossip this node could not decrypt last arrived
	// (zero if never).
	KeyMismatch time.Time
	// Stalled: the caller found its loop stalled (SIGSTOP, a frozen VM).
	Stalled bool
	// Regained: this node can announce addresses it could not announce
	// before (its data path came back).
	Regained bool
	// Grown are members whose published data path grew: they may now rank
	// first for addresses others announce, as if they had rejoined.
	Grown []string
	// Handovers and Releases received since the last observation.
	Handovers, Releases []Message
	// Reach is the latest probe of the live members (see Decision.Probe).
	Reach Reach
	// Excluded: this node is excluded from load balancing and must
	// announce nothing (rule 6).
	Excluded bool
}

// Reach is the result of probing live members at once.
type Reach struct {
	// At is when the probes were sent (zero: never).
	At time.Time
	// Live counts the live members other than this one when they were
	// sent; Asked of them were probed (a sample in large clusters) and
	// Answered answered.
	Live, Asked, Answered int
	// Revived are the failed members probed (Decision.ProbeFailed) that
	// answered anyway.
	Revived []string
}

// Quorum is the majority check of one observation.
type Quorum struct {
	// OK: this node sees a strict majority of the speakers it expects.
	OK bool
	// Seen and Expected are the counts the check used; Unseen names the
	// expected speakers not seen, sorted.
	Seen, Expected int
	Unseen         []string
	// Why says why not, empty when OK.
	Why string
}

// Decision is what the caller must do.
type Decision struct {
	// Live are the members that may own addresses: memberlist's live
	// members that have published, since they appeared, that they see a
	// majority and have settled, minus those that handed their addresses
	// over and those excluded from load balancing. This node is among them
	// while it is a member and not excluded.
	Live []string
	// Unconfirmed are the members seen alive that may own addresses once
	// they confirm (rule 3), sorted: not this node, not confirmed, not
	// published as excluded. No node takes over an address one of them
	// ranks first for.
	Unconfirmed []string
	// TakeOver: the node may start announcing addresses it ranks first for.
	TakeOver bool
	Quorum   Quorum
	// Settling: the node waits for the others' releases (see the package
	// doc); it publishes so. Waiting names the members it has not heard from.
	Settling bool
	Waiting  []string
	// Given are addresses handed over or released to this node: it may take
	// them when it ranks first, whatever TakeOver says.
	Given map[netip.Addr]bool
	// Reannounce are addresses released to this node: if it announces one
	// already (kept while cut off or stalled), clients may follow the
	// releaser, so it must send its gratuitous burst again.
	Reannounce []netip.Addr
	// Greet are members that just became candidates, can announce more, or
	// are settling: send each a release (with the addresses it now ranks
	// first for, or none).
	Greet []string
	// Probe asks the caller to probe the live members now and report
	// the result in Input.Reach: a member failed since the last probe.
	// ProbeFailed are the members that failed since: probe them too.
	Probe       bool
	ProbeFailed []string
	// Excluded: this node is out of Layer 2 (Input.Excluded, held for
	// Config.ExcludedHold at least); it publishes so.
	Excluded bool
	// Notes are log lines about changes of state, in order.
	Notes []Note
}

// Note is a change worth a log line.
type Note struct {
	Warning bool
	Message string
}

// Guard keeps the state the rule needs between observations. Not safe for
// concurrent use.
type Guard struct {
	cfg Config

	prevLive []string
	prevSeen []string
	lastLoss time.Time // when a member last failed (left without handing over)
	// failed: members that failed since the last probe that allowed a
	// takeover, and are not seen again.
	failed       []string
	revivedNoted time.Time // the probe whose revived members were noted
	quorum       bool
	why          string
	// gone are members that handed over: they left, they did not fail. The
	// value turns true once memberlist showed them gone; a member seen
	// alive after that is a restarted speaker and counts again.
	gone map[string]bool
	// confirmed: members that published they see a majority and have
	// settled, since they last appeared in memberlist.
	confirmed map[string]bool
	// unconfirmedSince: when each seen member not confirmed yet appeared.
	unconfirmedSince map[string]time.Time
	// released: addresses released to this node, until when they count.
	released map[netip.Addr]time.Time

	excluded      bool // this node is excluded from load balancing
	excludedSince time.Time
	settling      bool // waiting for releases
	settleSince   time.Time
	settleSlack   time.Duration        // how much older than settleSince a release may be
	graceUntil    time.Time            // takes only what is released until then
	heard         map[string]time.Time // release senders and when
	greeted       map[string]time.Time // settling members, when last greeted
}

// New returns a Guard.
func New(c Config) *Guard {
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.ReleaseHold <= 0 {
		c.ReleaseHold = DefaultReleaseHold
	}
	if c.GreetEvery <= 0 {
		c.GreetEvery = DefaultGreetEvery
	}
	if c.ExcludedHold <= 0 {
		c.ExcludedHold = DefaultExcludedHold
	}
	return &Guard{cfg: c, gone: map[string]bool{}, confirmed: map[string]bool{}, unconfirmedSince: map[string]time.Time{}, released: map[netip.Addr]time.Time{},
		heard: map[string]time.Time{}, greeted: map[string]time.Time{}}
}

// Observe takes one observation and decides.
func (g *Guard) Observe(in Input) Decision {
	now := in.Now
	d := Decision{Given: map[netip.Addr]bool{}}
	note := func(warn bool, format string, args ...any) {
		d.Notes = append(d.Notes, Note{Warning: warn, Message: fmt.Sprintf(format, args...)})
	}

	// Messages: a hand-over's sender left; a release's sender has seen us.
	for ip, until := range g.released {
		if now.After(until) {
			delete(g.released, ip)
		}
	}
	for _, h := range in.Handovers {
		g.gone[h.From] = false
		for _, ip := range h.IPs {
			d.Given[ip.Unmap()] = true
		}
	}
	// Exclusion (rule 6) lasts ExcludedHold at least: a release sent to
	// this node before it left, which the sender may have taken back since
	// it saw the node leave, arrives well within that; so an exclusion
	// that flaps never lets such a release be taken.
	excluded := in.Excluded || (g.excluded && now.Before(g.excludedSince.Add(g.cfg.ExcludedHold)))
	if excluded && !g.excluded {
		g.excludedSince = now
	}
	d.Excluded = excluded
	if excluded != g.excluded {
		// What was released to this node before it left or returned was
		// meant for a node the sender saw otherwise: the sender may have
		// taken it back since.
		clear(g.released)
	}
	for _, r := range in.Releases {
		g.heard[r.From] = now
		if excluded {
			continue // sent before the sender saw the exclusion: stale
		}
		for _, ip := range r.IPs {
			ip = ip.Unmap()
			g.released[ip] = now.Add(g.cfg.ReleaseHold)
			d.Reannounce = append(d.Reannounce, ip)
		}
	}
	for ip := range g.released {
		d.Given[ip] = true
	}

	seen := g.live(in.Alive)
	d.Quorum = g.check(in, seen)
	q := d.Quorum
	d.Live = slices.DeleteFunc(g.confirm(seen, in.Published), func(n string) bool {
		return (n == g.cfg.Self && excluded) || (n != g.cfg.Self && in.Published[n].Excluded)
	})
	for _, n := range slices.Sorted(maps.Keys(g.unconfirmedSince)) {
		switch {
		case !slices.Contains(seen, n):
			delete(g.unconfirmedSince, n)
		case g.confirmed[n]:
			note(false, "%s confirmed: it sees a majority and has settled, %v after it appeared", n, now.Sub(g.unconfirmedSince[n]).Round(time.Millisecond))
			delete(g.unconfirmedSince, n)
		}
	}
	for _, n := range seen {
		if n != g.cfg.Self && !g.confirmed[n] && !in.Published[n].Excluded {
			d.Unconfirmed = append(d.Unconfirmed, n)
			if _, ok := g.unconfirmedSince[n]; !ok {
				g.unconfirmedSince[n] = now
			}
		}
	}
	switch {
	case excluded && !g.excluded:
		note(false, "excluded from load balancing: hands its addresses over and takes none")
	case !excluded && g.excluded:
		// The others still announce what this node ranks first for: they
		// release it once they see it back.
		note(false, "back in service: taking its addresses only when released, for a while")
		g.graceUntil = now.Add(g.cfg.Grace)
	}
	g.excluded = excluded

	// Whenever the view turns trustworthy, the others may not have seen
	// this node yet: settle. After a stall or when the data path came
	// back, only wait the grace period.
	switch {
	case q.OK && !g.quorum:
		why := "joined the speakers"
		if g.why != "" && !strings.HasPrefix(g.why, "not a member") {
			why = "sees a majority of the speakers again"
		}
		note(false, "%s (%d of %d): settling before taking anything over", why, q.Seen, q.Expected)
		g.settling, g.settleSince, g.settleSlack = true, now, heardSlack
	case !q.OK && (g.quorum || g.why != q.Why):
		note(true, "takes over no address: %s", q.Why)
	}
	g.quorum, g.why = q.OK, q.Why
	if in.Stalled {
		note(true, "this speaker was stalled: taking only what is released to it for a while")
		g.graceUntil = now.Add(g.cfg.Grace)
	}
	if in.Regained {
		note(false, "can announce addresses again: taking them only when released, for a while")
		g.graceUntil = now.Add(g.cfg.Grace)
	}
	var ended string
	ended, d.Waiting = g.checkSettle(now, seen)
	if ended != "" {
		note(false, "settled (%s)", ended)
	}
	d.Settling = g.settling
	reached, probe, revived := g.reached(now, in, seen, d.Quorum.Expected)
	d.Probe = probe && q.OK && !g.settling
	if d.Probe {
		d.ProbeFailed = slices.Clone(g.failed)
	}
	if len(revived) > 0 {
		note(true, "takes over nothing for now: %s declared failed but still answering (a false failure, memberlist will see it again)", strings.Join(revived, ", "))
	}
	d.TakeOver = q.OK && !g.settling && !now.Before(g.graceUntil) && reached

	// Greet every member that just became a candidate or can announce
	// more, and, at most every GreetEvery, those that are settling.
	for _, n := range d.Live {
		if n != g.cfg.Self && !slices.Contains(g.prevLive, n) {
			d.Greet = append(d.Greet, n)
		}
	}
	for _, n := range in.Grown {
		if n != g.cfg.Self && slices.Contains(d.Live, n) && !slices.Contains(d.Greet, n) {
			d.Greet = append(d.Greet, n)
		}
	}
	for n := range g.greeted {
		if !slices.Contains(seen, n) || !in.Published[n].Settling {
			delete(g.greeted, n)
		}
	}
	for _, n := range seen {
		if n == g.cfg.Self || !in.Published[n].Settling || slices.Contains(d.Greet, n) {
			continue
		}
		if at, ok := g.greeted[n]; !ok || now.Sub(at) >= g.cfg.GreetEvery {
			g.greeted[n] = now
			d.Greet = append(d.Greet, n)
		}
	}
	slices.Sort(d.Greet)
	g.prevLive = d.Live
	return d
}

// Stopped tells the guard that this node stopped announcing ips: a release
// it received for one of them is used up and must not make it take the
// address back later.
func (g *Guard) Stopped(ips []netip.Addr) {
	for _, ip := range ips {
		delete(g.released, ip.Unmap())
	}
}

// reprobeAfter is how soon a probe that did not reach a majority is
// repeated while the node still counts one (a lost ping, say).
const reprobeAfter = 500 * time.Millisecond

// reached says whether the node may take over with respect to the reach
// rule, and whether it should probe now. It notes a failure (a member
// gone from view without handing over) first. revived are the failed
// members that answered the latest probe, when that just blocked a
// takeover.
func (g *Guard) reached(now time.Time, in Input, seen []string, expected int) (ok, probe bool, revived []string) {
	for _, n := range g.prevSeen {
		if _, handedOver := g.gone[n]; !handedOver && !slices.Contains(seen, n) {
			g.lastLoss = now
			if !slices.Contains(g.failed, n) {
				g.failed = append(g.failed, n)
			}
		}
	}
	g.failed = slices.DeleteFunc(g.failed, func(n string) bool { return slices.Contains(seen, n) })
	slices.Sort(g.failed)
	g.prevSeen = seen
	if g.lastLoss.IsZero() || len(seen) <= 1 {
		return true, false, nil // nothing failed, or nobody to probe: quorum says it all
	}
	r := in.Reach
	if r.At.Before(g.lastLoss) {
		return false, true, nil
	}
	for _, n := range r.Revived {
		if slices.Contains(g.failed, n) {
			revived = append(revived, n)
		}
	}
	reachable := 1.0
	if r.Asked > 0 {
		reachable += float64(r.Answered) * float64(r.Live) / float64(r.Asked)
	}
	if 2*reachable > float64(expected) && len(revived) == 0 {
		g.failed = nil
		return true, false, nil
	}
	if !r.At.After(g.revivedNoted) {
		revived = nil // noted once per probe
	} else if len(revived) > 0 {
		g.revivedNoted = r.At
	}
	return false, now.Sub(r.At) >= reprobeAfter, revived
}

// live is memberlist's view minus the members that handed over; one that
// handed over counts again once memberlist has shown it gone and back.
func (g *Guard) live(alive []string) []string {
	for n, seenOut := range g.gone {
		switch in := slices.Contains(alive, n); {
		case !in:
			g.gone[n] = true
		case seenOut:
			delete(g.gone, n)
		}
	}
	out := slices.DeleteFunc(slices.Clone(alive), func(n string) bool { _, g := g.gone[n]; return g })
	slices.Sort(out)
	return slices.Compact(out)
}

// confirm keeps, of the live members, this node and those that have
// published, since they last appeared, that they see a majority and have
// settled.
func (g *Guard) confirm(live []string, published map[string]Published) []string {
	for n := range g.confirmed {
		if !slices.Contains(live, n) {
			delete(g.confirmed, n)
		}
	}
	out := make([]string, 0, len(live))
	for _, n := range live {
		if p := published[n]; n == g.cfg.Self || (p.Quorum && !p.Settling) {
			g.confirmed[n] = true
		}
		if g.confirmed[n] {
			out = append(out, n)
		}
	}
	return out
}

// check is the quorum rule.
func (g *Guard) check(in Input, live []string) Quorum {
	expected := map[string]bool{g.cfg.Self: true}
	for _, n := range in.Present {
		expected[n] = true
	}
	for _, n := range live {
		expected[n] = true
	}
	for n := range g.gone {
		delete(expected, n) // it handed over: it announces nothing
	}
	seen := map[string]bool{}
	for _, n := range live {
		if !slices.Contains(in.Suspects, n) || n == g.cfg.Self {
			seen[n] = true
		}
	}
	q := Quorum{Seen: len(seen), Expected: len(expected)}
	for n := range expected {
		if !seen[n] {
			q.Unseen = append(q.Unseen, n)
		}
	}
	slices.Sort(q.Unseen)
	switch {
	case len(in.Alive) == 0:
		q.Why = "not a member of the speakers' cluster yet (memberlist not running or not joined)"
	case 2*q.Seen <= q.Expected && q.Seen == 1 && !in.KeyMismatch.IsZero() && in.Now.Sub(in.KeyMismatch) < keyMismatchWindow:
		q.Why = fmt.Sprintf("sees only itself of %d speakers and receives gossip it cannot decrypt: the other speakers use a different memberlist key (check the memberlist Secret)", q.Expected)
	case 2*q.Seen <= q.Expected:
		q.Why = fmt.Sprintf("sees %d of the %d speakers it should see (unseen: %s): this node may be cut off, or TCP and UDP to the memberlist port are blocked between nodes", q.Seen, q.Expected, names(q.Unseen))
	default:
		q.OK = true
	}
	return q
}

func names(ns []string) string {
	const show = 5
	if len(ns) <= show {
		return strings.Join(ns, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ns[:show], ", "), len(ns)-show)
}

// checkSettle ends settling once every member this node sees but itself
// has sent a release since it began; the grace period follows when there
// are others. Every seen member, not only the confirmed ones: a node whose
// memberlist port is blocked inbound sees the others through its own
// connections while their published state may not say yet that they have
// settled (they restarted, or all started at once); counting only
// confirmed members, it found "no other speaker", settled at once and took
// every address while the others announced them. A member that is itself
// settling greets settling members too, so nodes that start together
// still settle. It returns why settling just ended, and the members not
// heard from yet.
func (g *Guard) checkSettle(now time.Time, seen []string) (ended string, waiting []string) {
	if !g.settling {
		return "", nil
	}
	others := 0
	for _, n := range seen {
		if n == g.cfg.Self {
			continue
		}
		others++
		if at, ok := g.heard[n]; !ok || at.Before(g.settleSince.Add(-g.settleSlack)) {
			waiting = append(waiting, n)
		}
	}
	switch {
	case !g.quorum || len(waiting) > 0:
		return "", waiting
	case others == 0:
		ended = "no other speaker"
	default:
		ended = "every live speaker has answered; taking only what is released to it for a while"
		g.graceUntil = now.Add(g.cfg.Grace)
	}
	g.settling = false
	g.lastLoss, g.failed = time.Time{}, nil // the answers show whom it reaches
	g.prevSeen = seen
	return ended, nil
}
