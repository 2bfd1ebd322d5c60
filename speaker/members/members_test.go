package members

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/heraldlb/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var key32 = bytes.Repeat([]byte{7}, 32)

func mustNew(t *testing.T, o Options) *Members {
	t.Helper()
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewChecksOptions(t *testing.T) {
	addr := netip.MustParseAddr("10.77.0.1")
	for _, tc := range []struct {
		name string
		o    Options
		want error
	}{
		{"short key", Options{Name: "a", BindAddr: addr, Key: key32[:15]}, ErrKeySize},
		{"no key", Options{Name: "a", BindAddr: addr}, ErrKeySize},
		{"no name", Options{BindAddr: addr, Key: key32}, nil},
		{"no address", Options{Name: "a", Key: key32}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("New: %v, want an error (%v)", err, tc.want)
			}
		})
	}
	m := mustNew(t, Options{Name: "a", BindAddr: addr, Key: key32, Timings: Timings{ProbeInterval: time.Second}})
	if got := m.Timings(); got.ProbeInterval != time.Second || got.ProbeTimeout != DefaultTimings.ProbeTimeout || got.SuspicionMult != 2 {
		t.Fatalf("timings %+v: the set field must stay, the others take the defaults", got)
	}
	if m.self.Port() != DefaultPort {
		t.Fatalf("port %d, want %d", m.self.Port(), DefaultPort)
	}
}

func TestNotRunning(t *testing.T) {
	m := mustNew(t, Options{Name: "a", BindAddr: netip.MustParseAddr("10.77.0.1"), Key: key32})
	if got := m.Alive(); got != nil {
		t.Fatalf("Alive before Run = %v, want nothing (not even self)", got)
	}
	if err := m.Send("b", []byte("x")); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Send before Run: %v", err)
	}
	if err := m.Leave(time.Second); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Leave before Run: %v", err)
	}
}

func TestSetPeersNormalizes(t *testing.T) {
	m := mustNew(t, Options{Name: "a", BindAddr: netip.MustParseAddr("10.77.0.1"), Key: key32})
	m.SetPeers([]string{"10.77.0.3", "10.77.0.2:8000", "not-an-ip", "10.77.0.1", "10.77.0.3:7946", "2001:db8::2", "[2001:db8::3]:9000", "::ffff:10.77.0.4"})
	var got []string
	for _, p := range m.peers {
		got = append(got, p.String())
	}
	want := []string{"10.77.0.2:8000", "10.77.0.3:7946", "10.77.0.4:7946", "[2001:db8::2]:7946", "[2001:db8::3]:9000"}
	if !slices.Equal(got, want) {
		t.Fatalf("peers %v, want %v (own address, duplicates and garbage dropped)", got, want)
	}
}

func TestMessage(t *testing.T) {
	h := Message{Kind: KindHandover, From: "node-a", IPs: []netip.Addr{netip.MustParseAddr("198.51.100.5"), netip.MustParseAddr("2001:db8:100::5")}}
	b := h.Marshal()
	if want := `{"kind":"handover/v1","from":"node-a","ips":["198.51.100.5","2001:db8:100::5"]}`; string(b) != want {
		t.Fatalf("wire format %s, want %s", b, want)
	}
	got, err := ParseMessage(b)
	if err != nil || got.Kind != KindHandover || got.From != h.From || !slices.Equal(got.IPs, h.IPs) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	r, err := ParseMessage(Message{Kind: KindRelease, From: "b"}.Marshal())
	if err != nil || r.Kind != KindRelease || r.IPs != nil {
		t.Fatalf("empty release: %+v, %v", r, err)
	}
	if got, err := ParseMessage([]byte(`{"kind":"release/v1","from":"a","ips":["::ffff:198.51.100.5"]}`)); err != nil || got.IPs[0] != netip.MustParseAddr("198.51.100.5") {
		t.Fatalf("mapped address: %+v, %v, want it unmapped", got, err)
	}
	for _, bad := range []string{`{"kind":"other","from":"a"}`, `{"kind":"handover/v1"}`, `not json`, `{"kind":"handover/v1","from":"a","ips":["x"]}`, `{"kind":"release/v1","from":"a","ips":["fe80::1%eth0"]}`} {
		if _, err := ParseMessage([]byte(bad)); !errors.Is(err, ErrBadMessage) {
			t.Fatalf("ParseMessage(%s) = %v, want ErrBadMessage", bad, err)
		}
	}
}

// Messages arrive from the network: whatever the bytes, parsing must not
// panic, and what parses must encode and parse back the same.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`{"kind":"handover/v1","from":"node-a","ips":["198.51.100.5","2001:db8:100::5"]}`))
	f.Add([]byte(`{"kind":"release/v1","from":"b"}`))
	f.Add([]byte(`{"kind":"release/v1","from":"b","ips":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(data)
		if err != nil {
			return
		}
		again, err := ParseMessage(m.Marshal())
		if err != nil || again.Kind != m.Kind || again.From != m.From || !slices.Equal(again.IPs, m.IPs) {
			t.Fatalf("%q parsed as %+v, which does not survive a round trip: %+v, %v", data, m, again, err)
		}
	})
}

func TestLogWriterLevelsAndSuspects(t *testing.T) {
	var out bytes.Buffer
	m := mustNew(t, Options{
		Name: "a", BindAddr: netip.MustParseAddr("10.77.0.1"), Key: key32,
		Logger: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	w := &logWriter{m: m}
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=10.77.0.2:40000\n",
		"[WARN] memberlist: Refuting a suspect message (from: b)\n",
		"[ERR] memberlist: Failed to send ping\n",
		"[INFO] memberlist: Suspect node-b has failed, no acks received\n",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{
		`level=DEBUG msg="Stream connection from=10.77.0.2:40000"`,
		`level=WARN msg="Refuting a suspect message (from: b)"`,
		`level=ERROR msg="Failed to send ping"`,
		`level=INFO msg="Suspect node-b has failed, no acks received"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("log lacks %s:\n%s", want, out.String())
		}
	}
	if !m.suspects["node-b"] {
		t.Fatal("the suspect was not noted")
	}
	if got := m.Suspects(); got != nil {
		t.Fatalf("Suspects while not running = %v, want none", got)
	}
	if !m.LastKeyMismatch().IsZero() {
		t.Fatal("a key mismatch before any undecryptable gossip")
	}
	if _, err := w.Write([]byte("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.77.0.3:7946\n")); err != nil {
		t.Fatal(err)
	}
	if time.Since(m.LastKeyMismatch()) > time.Minute {
		t.Fatal("undecryptable gossip was not noted")
	}

	// Metrics: a suspect with the member list not running counts as
	// nothing alive; a gone member counts as dead and as a departure; the
	// suspicion raised and the one refuted above are counted.
	(&delegate{m: m}).NotifyLeave(&memberlist.Node{Name: "node-c"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{m})
	want := `
# HELP herald_memberlist_members Speakers in this node's view of the cluster by state: alive (this one included), suspect (this node's probes failed, not yet declared dead), dead (failed or left in the last 5 minutes and not back).
# TYPE herald_memberlist_members gauge
herald_memberlist_members{state="alive"} 0
herald_memberlist_members{state="dead"} 1
herald_memberlist_members{state="suspect"} 0
# HELP herald_memberlist_departures_total Members this node saw declared dead or leave. Growth without node failures or restarts means false deaths.
# TYPE herald_memberlist_departures_total counter
herald_memberlist_departures_total 1
# HELP herald_memberlist_refutations_total Times other members suspected or declared this node dead while it ran, and it refuted. Steady growth means failure detection is too tight for this cluster's size or load.
# TYPE herald_memberlist_refutations_total counter
herald_memberlist_refutations_total 1
# HELP herald_memberlist_suspicions_total Members this node's probes suspected (no answer directly, through other members or over TCP). A suspect that lives refutes in time; one that does not is declared dead.
# TYPE herald_memberlist_suspicions_total counter
herald_memberlist_suspicions_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// Suspects lists live members our probes suspect, and nothing else: not a
// name that is no member, and not a member once a probe of it succeeded.
func TestSuspectsAreLiveMembersOnly(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	pa, pb := testkit.FreePort(t), testkit.FreePort(t)
	a := mustNew(t, Options{Name: "a", BindAddr: lo, Port: pa, Key: key32})
	b := mustNew(t, Options{Name: "b", BindAddr: lo, Port: pb, Key: key32})
	a.SetPeers([]string{fmt.Sprintf("127.0.0.1:%d", pb)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- b.Run(ctx) }()
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		_ = <-done
		_ = <-done
	}()
	testkit.For(t, 10*time.Second, "a sees a and b", func() error {
		if got := a.Alive(); !slices.Equal(got, []string{"a", "b"}) {
			return fmt.Errorf("a sees %v", got)
		}
		return nil
	})
	w := &logWriter{m: a}
	for _, line := range []string{"[INFO] memberlist: Suspect b has failed, no acks received\n", "[INFO] memberlist: Suspect ghost has failed, no acks received\n"} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Suspects(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("Suspects = %v, want [b] (ghost is no member)", got)
	}
	// b answers a's next probe: it is no longer suspected.
	testkit.For(t, 10*time.Second, "b no longer suspected", func() error {
		if got := a.Suspects(); len(got) > 0 {
			return fmt.Errorf("suspects %v", got)
		}
		return nil
	})
}

// countingHandler counts the log records whose message is msg.
type countingHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// A member starting beside a formed cluster joins a wave or two of peers,
// not every one: the first join brings the whole membership.
func TestJoiningAClusterContactsOneWave(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	const size = 3 * rejoinWave
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	defer func() {
		cancel()
		running.Wait()
	}()
	run := func(m *Members) {
		running.Go(func() {
			if err := m.Run(ctx); err != nil {
				t.Errorf("%s: %v", m.name, err)
			}
		})
	}
	// A chain: each joins the first; frequent full-state exchanges make
	// every view complete soon, and relaxed failure detection keeps a slow
	// run (-race, a busy machine) from declaring anyone dead.
	fast := Timings{PushPullInterval: 300 * time.Millisecond, ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond, SuspicionMult: 4}
	var peers []string
	var all []*Members
	for i := range size {
		port := testkit.FreePort(t)
		m := mustNew(t, Options{Name: fmt.Sprintf("m%d", i), BindAddr: lo, Port: port, Key: key32, Timings: fast})
		if i > 0 {
			m.SetPeers([]string{peers[0]})
		}
		run(m)
		all = append(all, m)
		peers = append(peers, fmt.Sprintf("127.0.0.1:%d", port))
	}
	testkit.For(t, 30*time.Second, "the cluster formed", func() error {
		for _, m := range all {
			if len(m.Alive()) != size {
				return fmt.Errorf("%s sees %v", m.name, m.Alive())
			}
		}
		return nil
	})

	var joins atomic.Int64
	late := mustNew(t, Options{Name: "late", BindAddr: lo, Port: testkit.FreePort(t), Key: key32, Timings: fast,
		Logger: slog.New(countingHandler{msg: "joined peer", n: &joins})})
	late.SetPeers(peers)
	run(late)
	testkit.For(t, 30*time.Second, "the late member sees every member", func() error {
		if n := len(late.Alive()); n != size+1 {
			return fmt.Errorf("it sees %d: %v", n, late.Alive())
		}
		return nil
	})
	if n := joins.Load(); n < 1 || n > 2*rejoinWave {
		t.Fatalf("the late member joined %d peers of %d, want a wave or two (1 to %d)", n, size, 2*rejoinWave)
	}
}
