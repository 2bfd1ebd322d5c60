package l2responder

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testkit"
	"golang.org/x/net/bpf"
)

var (
	ours   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	client = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	vip    = netip.MustParseAddr("198.51.100.5")
)

// fakeLink is a run's socket: frames pushed to it are read, frames written
// are recorded.
type fakeLink struct {
	in      chan []byte
	fail    chan error // a read error, as when the interface goes away
	closed  chan struct{}
	mu      sync.Mutex
	written [][]byte
	closes  int
}

func newFakeLink() *fakeLink {
	return &fakeLink{in: make(chan []byte), fail: make(chan error, 1), closed: make(chan struct{})}
}

func (l *fakeLink) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case f := <-l.in:
		return copy(b, f), nil, nil
	case err := <-l.fail:
		return 0, nil, err
	case <-l.closed:
		return 0, nil, net.ErrClosed
	}
}

func (l *fakeLink) WriteTo(b []byte, _ net.Addr) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closes > 0 {
		return 0, net.ErrClosed
	}
	l.written = append(l.written, slices.Clone(b))
	return len(b), nil
}

func (l *fakeLink) SetReadDeadline(time.Time) error   { return nil }
func (l *fakeLink) SetBPF([]bpf.RawInstruction) error { return nil }

func (l *fakeLink) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closes++
	if l.closes == 1 {
		close(l.closed)
	}
	return nil
}

func (l *fakeLink) sent() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.written)
}

// fakeProtocol asks about an IPv4 address in bytes 12-15 of a frame and
// answers with the frame sent back to its source.
type fakeProtocol struct {
	t     *testing.T
	mu    sync.Mutex
	links []*fakeLink
	owns  []map[netip.Addr]bool // what Own was told, in order
}

func (f *fakeProtocol) protocol() Protocol {
	return Protocol{
		Name:         "fake",
		Requests:     "fake requests",
		Announcement: "fake announcement",
		Accept: func(ip netip.Addr) (netip.Addr, bool) {
			ip = ip.Unmap()
			return ip, ip.Is4()
		},
		Filter: []bpf.Instruction{bpf.RetConstant{Val: 0xffff}},
		Open: func(*net.Interface, []bpf.RawInstruction, *slog.Logger) (Link, error) {
			l := newFakeLink()
			f.mu.Lock()
			f.links = append(f.links, l)
			f.mu.Unlock()
			return l, nil
		},
		Own: func(owned map[netip.Addr]bool) {
			f.mu.Lock()
			defer f.mu.Unlock()
			l := f.links[len(f.links)-1]
			l.mu.Lock()
			if l.closes > 0 {
				f.t.Error("Own called after the link was closed")
			}
			l.mu.Unlock()
			f.owns = append(f.owns, owned)
		},
		Parse: func(frame []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) (func() ([]byte, error), netip.Addr, bool) {
			if len(frame) < 16 {
				return nil, netip.Addr{}, false
			}
			ip := netip.AddrFrom4([4]byte(frame[12:16]))
			if !owns(ip) {
				return nil, netip.Addr{}, false
			}
			return func() ([]byte, error) { return slices.Concat(frame[6:12], mac, frame[12:16]), nil }, ip, true
		},
		Announce: func(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
			a := ip.As4()
			return slices.Concat(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac, a[:]), nil
		},
	}
}

func (f *fakeProtocol) link(i int) *fakeLink {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.links[i]
}

func (f *fakeProtocol) owned() []map[netip.Addr]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.owns)
}

func newResponder(t *testing.T) (*Responder, *fakeProtocol) {
	f := &fakeProtocol{t: t}
	r := New("eth0", nil, f.protocol())
	r.interfaceByName = func(name string) (*net.Interface, error) {
		return &net.Interface{Index: 2, MTU: 1500, Name: name, HardwareAddr: ours}, nil
	}
	return r, f
}

// waitFor waits with testkit.For for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.For(t, 5*time.Second, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

func request(ip netip.Addr) []byte {
	a := ip.As4()
	return slices.Concat(ours, client, a[:])
}

// One run: the owned addresses are announced and told to Own when the link
// opens, owned requests are answered, and when ctx ends the link is
// forgotten before it is closed, once, and Own never hears of it again.
func TestRunAnswersAnnouncesAndClosesOnce(t *testing.T) {
	r, f := newResponder(t)
	r.Set([]netip.Addr{vip, netip.MustParseAddr("2001:db8::5")})
	if err := r.Gratuitous(vip); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Gratuitous before Run: %v, want ErrNotRunning", err)
	}
	if !r.Owns(vip) || !r.Owns(netip.MustParseAddr("::ffff:198.51.100.5")) || r.Owns(netip.MustParseAddr("2001:db8::5")) {
		t.Fatal("Owns disagrees with Set and Accept")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, "Running", r.Running)
	if err := r.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Fatalf("a second Run: %v, want ErrRunning", err)
	}
	link := f.link(0)
	if got := f.owned(); len(got) != 1 || len(got[0]) != 1 || !got[0][vip] {
		t.Fatalf("Own was told %v when the link opened, want {%v}", got, vip)
	}
	if s := link.sent(); len(s) != 1 || netip.AddrFrom4([4]byte(s[0][12:16])) != vip {
		t.Fatalf("Run sent %x, want one announcement of %v", s, vip)
	}

	link.in <- request(vip)
	link.in <- request(netip.MustParseAddr("198.51.100.6")) // not owned
	link.in <- request(vip)
	waitFor(t, "two answers", func() bool { return r.Stats().Answered == 2 })
	if s := link.sent(); len(s) != 3 || !slices.Equal(s[1][:6], client) {
		t.Fatalf("sent %x, want the announcement and two answers to the client", s)
	}
	if err := r.Gratuitous(vip); err != nil {
		t.Fatal(err)
	}
	r.Set(nil)
	if err := r.Gratuitous(vip); !errors.Is(err, ErrNotOwned) || !strings.HasPrefix(err.Error(), "fake: ") {
		t.Fatalf("Gratuitous for an address no longer owned: %v", err)
	}
	if got := f.owned(); len(got) != 2 || len(got[1]) != 0 {
		t.Fatalf("Own was told %v, want the empty set last", got)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after ctx ended: %v, want nil", err)
	}
	if r.Running() {
		t.Fatal("still running after Run returned")
	}
	r.Set([]netip.Addr{vip})
	if err := r.Gratuitous(vip); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Gratuitous after Run: %v, want ErrNotRunning", err)
	}
	if got := len(f.owned()); got != 2 {
		t.Fatalf("Own was called %d times, want 2: never after the run", got)
	}
	if link.closes != 1 {
		t.Fatalf("the link was closed %d times, want once", link.closes)
	}
	if s := r.Stats(); s != (Stats{Answered: 2, Gratuitous: 2}) {
		t.Fatalf("stats %+v", s)
	}
}

// A failing read (the interface went away) ends Run with the error; Run
// may then be called again, on a new link.
func TestRunEndsOnReadFailureAndRunsAgain(t *testing.T) {
	r, f := newResponder(t)
	gone := errors.New("network is down")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, "Running", r.Running)
	f.link(0).fail <- gone
	if err := <-done; !errors.Is(err, gone) || !strings.Contains(err.Error(), "fake: read on eth0") {
		t.Fatalf("Run after a read failure: %v", err)
	}
	if r.Running() || f.link(0).closes != 1 {
		t.Fatalf("after the failure: running %v, link closed %d times", r.Running(), f.link(0).closes)
	}

	go func() { done <- r.Run(ctx) }()
	waitFor(t, "Running again", r.Running)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.link(1).closes != 1 {
		t.Fatal("the second link was not closed")
	}
}

// Run refuses an interface without an Ethernet address and opens nothing.
func TestRunNeedsAnEthernetAddress(t *testing.T) {
	r, f := newResponder(t)
	r.interfaceByName = func(name string) (*net.Interface, error) {
		return &net.Interface{Index: 1, MTU: 65536, Name: name}, nil
	}
	if err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no Ethernet address") {
		t.Fatalf("Run on an interface without MAC: %v", err)
	}
	if len(f.links) != 0 {
		t.Fatal("sockets were opened")
	}
}

func TestReply(t *testing.T) {
	p := (&fakeProtocol{t: t}).protocol().Parse
	owns := func(ip netip.Addr) bool { return ip == vip }
	if out, ip, ok := p.Reply(request(vip), ours, owns); !ok || ip != vip || !slices.Equal(out[:6], client) {
		t.Fatalf("Reply to an owned request: %x %v %v", out, ip, ok)
	}
	if out, ip, ok := p.Reply(request(vip.Next()), ours, owns); ok || out != nil || ip.IsValid() {
		t.Fatalf("Reply to a request not owned: %x %v %v", out, ip, ok)
	}
}
