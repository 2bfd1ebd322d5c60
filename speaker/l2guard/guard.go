// Package l2guard protects the Layer 2 responders (speaker/arp,
// speaker/ndp) from the LAN: anyone on it can send them requests. It
// decides which senders may be answered and how often, which senders the
// kernel should drop before the responder even reads their frames, and
// what is worth a log line. It opens no socket: the responders apply its
// socket filter and do the I/O.
package l2guard

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"

	"github.com/heraldlb/herald/internal/ratelimit"
)

// Limits. A sender (by source MAC) gets 100 answers a second after a burst
// of 100: a host asks once per address and neighbour timeout, a router a
// few hundred times after a restart. A responder answers 2,000 a second in
// all, so forged sources cost a bounded number of replies. A sender refused
// MuteAfter times within a second is flooding: the kernel drops its frames
// for MuteFor, so the flood costs the responder nothing and cannot crowd
// other senders' requests out of the socket's queue.
const (
	Rate        = 100
	Burst       = 100
	TotalRate   = 2000
	TotalBurst  = 2000
	Senders     = 4096
	MuteAfter   = 1000
	MuteFor     = 30 * time.Second
	MaxMuted    = 32
	ReportEvery = ratelimit.ReportEvery
)

// MAC is a sender's Ethernet address.
type MAC [6]byte

func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// Unicast reports whether a is an individual, non-zero Ethernet address:
// the only kind a responder may answer, since an answer to a group address
// reaches every host of the LAN (a reflector for anyone who can send one
// frame).
func Unicast(a net.HardwareAddr) bool {
	return len(a) == 6 && a[0]&1 == 0 && !bytes.Equal(a, make(net.HardwareAddr, 6))
}

// Guard is one responder's guard. It is not safe for concurrent use: the
// responder's read loop owns it.
type Guard struct {
	what string // "ARP requests", in log lines
	log  *slog.Logger

	per *ratelimit.Keyed[MAC]
	all ratelimit.Bucket

	// refusals within the current second, per sender, to spot floods.
	second     time.Time
	refused    map[MAC]int
	muted      map[MAC]time.Time // until
	changed    bool              // muted changed since Muted last reported it
	nextUnmute time.Time         // the earliest until; zero when none

	// for the summary line
	sinceReport uint64
	mostFrom    MAC
	mostCount   int
	report      time.Time
	failures    ratelimit.Throttle // failed writes
}

// New returns a guard whose log lines speak of what ("ARP requests").
func New(what string, log *slog.Logger) *Guard {
	return &Guard{
		what:    what,
		log:     log,
		per:     ratelimit.NewKeyed[MAC](Rate, Burst, Senders),
		all:     ratelimit.NewBucket(TotalRate, TotalBurst),
		refused: map[MAC]int{},
		muted:   map[MAC]time.Time{},
	}
}

// Allow reports whether a request from src that deserves an answer is
// answered at now. A refusal may mute src (see Muted) and is logged in a
// summary at most every ReportEvery.
func (g *Guard) Allow(src MAC, now time.Time) bool {
	if g.per.Allow(src, now) && g.all.Allow(now) {
		return true
	}
	if now.Sub(g.second) >= time.Second {
		g.second = now
		clear(g.refused)
	}
	g.refused[src]++
	n := g.refused[src]
	if n >= MuteAfter && len(g.muted) < MaxMuted {
		if _, already := g.muted[src]; !already {
			g.log.Warn("muting a sender that floods "+g.what, "sender", src.String(), "for", MuteFor, "refusedInOneSecond", n)
			until := now.Add(MuteFor)
			g.muted[src] = until
			g.changed = true
			if g.nextUnmute.IsZero() || until.Before(g.nextUnmute) {
				g.nextUnmute = until
			}
		}
	}
	g.sinceReport++
	if n > g.mostCount {
		g.mostFrom, g.mostCount = src, n
	}
	if !now.Before(g.report) {
		g.log.Warn(g.what+" over the rate limit left unanswered", "refused", g.sinceReport, "mostFrom", g.mostFrom.String(),
			"since", ReportEvery, "mutedSenders", len(g.muted))
		g.sinceReport, g.mostCount, g.report = 0, 0, now.Add(ReportEvery)
	}
	return false
}

// Muted returns the senders the kernel should drop, and whether that set
// changed since the last call; mutes that ran out end at now.
func (g *Guard) Muted(now time.Time) ([]MAC, bool) {
	if !g.nextUnmute.IsZero() && !now.Before(g.nextUnmute) {
		g.nextUnmute = time.Time{}
		for m, until := range g.muted {
			switch {
			case !now.Before(until):
				delete(g.muted, m)
				g.changed = true
			case g.nextUnmute.IsZero() || until.Before(g.nextUnmute):
				g.nextUnmute = until
			}
		}
	}
	if !g.changed {
		return nil, false
	}
	g.changed = false
	out := make([]MAC, 0, len(g.muted))
	for m := range g.muted {
		out = append(out, m)
	}
	return out, true
}

// NextUnmute is when the next mute runs out (zero: nobody is muted): the
// responder must look at Muted then even if no frame arrives.
func (g *Guard) NextUnmute() time.Time { return g.nextUnmute }

// Conn is the responder's packet socket (*packet.Conn).
type Conn interface {
	ReadFrom(b []byte) (int, net.Addr, error)
	WriteTo(b []byte, addr net.Addr) (int, error)
	SetReadDeadline(t time.Time) error
	SetBPF(filter []bpf.RawInstruction) error
}

// Counters are what Serve counts for the responder's Stats.
type Counters struct {
	Answered, Limited *atomic.Uint64
}

// Serve reads frames from conn into buf and answers the requests parse
// finds, within the guard's limits, until reading fails (the responder
// closes conn to stop it). parse returns how to build the answer (built
// only when it is sent) and the address asked about. Senders that flood
// are muted with a socket filter of Filter(muted, accept), accept being the
// filter conn was opened with.
func (g *Guard) Serve(conn Conn, buf []byte, accept []bpf.Instruction,
	parse func(frame []byte) (answer func() ([]byte, error), about netip.Addr, ok bool), c Counters) error {
	var deadline time.Time
	for {
		if next := g.NextUnmute(); !next.Equal(deadline) {
			deadline = next
			_ = conn.SetReadDeadline(deadline) // zero: none
		}
		n, _, err := conn.ReadFrom(buf)
		now := time.Now()
		switch {
		case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
			return err
		case err == nil && n >= 12:
			answer, about, ok := parse(buf[:n])
			if !ok {
				break
			}
			if !g.Allow(MAC(buf[6:12]), now) {
				c.Limited.Add(1)
				break
			}
			out, err := answer()
			if err == nil {
				_, err = conn.WriteTo(out, &packet.Addr{HardwareAddr: out[:6]})
			}
			if err != nil {
				if n, ok := g.failures.Add(now); ok {
					g.log.Warn("reply failed", "ip", about, "err", err, "failures", n, "since", ReportEvery)
				}
				break
			}
			c.Answered.Add(1)
		}
		if muted, changed := g.Muted(now); changed {
			filter, err := Filter(muted, accept)
			if err == nil {
				err = conn.SetBPF(filter)
			}
			if err != nil {
				g.log.Error("socket filter not updated", "mutedSenders", len(muted), "err", err)
			}
		}
	}
}

// Filter is a socket filter that drops frames whose Ethernet source is
// muted, then runs accept (the responder's own filter).
func Filter(muted []MAC, accept []bpf.Instruction) ([]bpf.RawInstruction, error) {
	prog := make([]bpf.Instruction, 0, 5*len(muted)+len(accept))
	for _, m := range muted {
		prog = append(prog,
			bpf.LoadAbsolute{Off: 6, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3]), SkipTrue: 3},
			bpf.LoadAbsolute{Off: 10, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(m[4])<<8 | uint32(m[5]), SkipTrue: 1},
			bpf.RetConstant{Val: 0},
		)
	}
	return bpf.Assemble(append(prog, accept...))
}
