package members_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/child"
	"github.com/heraldlb/herald/speaker/announce/lantest"
	"github.com/heraldlb/herald/speaker/members"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) {
	switch child.Name() {
	case "member":
		os.Exit(child.Main(memberHelper))
	case "group":
		os.Exit(child.Main(groupHelper))
	case "burn":
		os.Exit(child.Main(burnHelper))
	}
	os.Exit(m.Run())
}

// memberHelper runs one member in the namespace it was started in. It
// reports every membership change as an event "members a,b,c" and every
// hand-over received as "received <from> <ips>", and takes commands:
//
//	alive                   -> a,b,c
//	send <node> <ip> ...    -> <unix-nanos before Send> <error or nil>
//	leave                   -> <unix-nanos before Leave> <error or nil>
//	metrics                 -> alive=N dead=N suspect=N
func memberHelper(ctx context.Context) (func(string) string, func() error, error) {
	env := func(k string) string { return os.Getenv("HERALD_MEMBER_" + k) }
	key, _ := hex.DecodeString(env("KEY"))
	dur := func(k string) time.Duration { d, _ := time.ParseDuration(env(k)); return d }
	name := env("NAME")
	reg := prometheus.NewRegistry()
	m, err := members.New(members.Options{
		Registerer: reg,
		Name:       name,
		BindAddr:   netip.MustParseAddr(env("ADDR")),
		Key:        key,
		Timings:    members.Timings{RejoinInterval: dur("REJOIN"), GossipToTheDeadTime: dur("DEADTIME")},
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		OnMessage: func(b []byte) {
			h, err := members.ParseMessage(b)
			if err != nil {
				child.Emit("bad message %q: %v", b, err)
				return
			}
			child.Emit("received %s %v", h.From, h.IPs)
		},
	})
	if err != nil {
		return nil, nil, err
	}
	m.SetPeers(strings.Split(env("PEERS"), ","))
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	go func() {
		for range m.Changes() {
			child.Emit("members %s", strings.Join(m.Alive(), ","))
		}
	}()
	handle := func(cmd string) string {
		f := strings.Fields(cmd)
		switch f[0] {
		case "alive":
			return strings.Join(m.Alive(), ",")
		case "send":
			h := members.Message{Kind: members.KindHandover, From: name}
			for _, s := range f[2:] {
				h.IPs = append(h.IPs, netip.MustParseAddr(s))
			}
			t0 := time.Now()
			err := m.Send(f[1], h.Marshal())
			return fmt.Sprintf("%d %v", t0.UnixNano(), err)
		case "leave":
			t0 := time.Now()
			err := m.Leave(time.Second)
			return fmt.Sprintf("%d %v", t0.UnixNano(), err)
		case "metrics":
			mfs, _ := reg.Gather()
			var out []string
			for _, mf := range mfs {
				if mf.GetName() != "herald_memberlist_members" {
					continue
				}
				for _, s := range mf.GetMetric() {
					out = append(out, fmt.Sprintf("%s=%v", s.GetLabel()[0].GetValue(), s.GetGauge().GetValue()))
				}
			}
			return strings.Join(out, " ")
		}
		return "unknown command"
	}
	return handle, func() error { return <-done }, nil
}

var (
	goodKey  = strings.Repeat("42", 32)
	wrongKey = strings.Repeat("17", 32)
)

// cluster is a switch with member namespaces m1, m2, ... at 10.77.0.1, .2, ...
type cluster struct {
	sw    *lantest.Switch
	hosts map[string]*netns.NS
	addrs map[string]string
	procs map[string]*child.Process
}

// newCluster plugs three hosts, m1 to m3, into a switch.
func newCluster(t testing.TB) *cluster {
	t.Helper()
	c := &cluster{sw: lantest.NewSwitch(t), hosts: map[string]*netns.NS{}, addrs: map[string]string{}, procs: map[string]*child.Process{}}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("m%d", i)
		ns := c.sw.AddHost(t, name)
		c.addrs[name] = fmt.Sprintf("10.77.0.%d", i)
		c.sw.Plug(t, ns, "eth0", c.addrs[name]+"/24")
		c.hosts[name] = ns
	}
	return c
}

// start runs member name with every member of the cluster as a peer.
func (c *cluster) start(t testing.TB, name, key string, env ...string) {
	t.Helper()
	var peers []string
	for _, a := range c.addrs {
		peers = append(peers, a)
	}
	env = append(env, "HERALD_MEMBER_NAME="+name, "HERALD_MEMBER_ADDR="+c.addrs[name],
		"HERALD_MEMBER_KEY="+key, "HERALD_MEMBER_PEERS="+strings.Join(peers, ","))
	c.procs[name] = child.Start(t, c.sw.Reg, c.hosts[name], "member", env...)
}

func (c *cluster) alive(t testing.TB, name string) string {
	t.Helper()
	return c.procs[name].Call(t, "alive")
}

// waitAlive waits until each of the named members sees exactly want.
func (c *cluster) waitAlive(t testing.TB, timeout time.Duration, want string, names ...string) {
	t.Helper()
	for _, n := range names {
		testkit.For(t, timeout, "condition", func() error {
			if got := c.alive(t, n); got != want {
				return fmt.Errorf("%s sees %q, want %q", n, got, want)
			}
			return nil
		})
	}
}

// seenGone is when member observer first reported a membership without m3,
// the member the tests stop, after t0 (zero if it has not).
func seenGone(observer *child.Process, t0 time.Time) time.Time {
	for _, e := range observer.Events() {
		list, ok := strings.CutPrefix(e.Text, "members ")
		if ok && e.At.After(t0) && !slices.Contains(strings.Split(list, ","), "m3") {
			return e.At
		}
	}
	return time.Time{}
}

// stamp parses the "<unix-nanos> <error>" answer of send and leave.
func stamp(t testing.TB, answer string) time.Time {
	t.Helper()
	ns, errText, _ := strings.Cut(answer, " ")
	if errText != "<nil>" {
		t.Fatalf("command failed: %s", answer)
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(0, n)
}

// received is when member h received a hand-over matching text after t0.
func received(h *child.Process, text string, t0 time.Time) time.Time {
	for _, e := range h.Events() {
		if e.Text == "received "+text && !e.At.Before(t0) {
			return e.At
		}
	}
	return time.Time{}
}

func TestMembersSeeEachOtherSendAndDetectFailures(t *testing.T) {
	c := newCluster(t)
	for _, n := range []string{"m1", "m2", "m3"} {
		c.start(t, n, goodKey)
	}
	c.waitAlive(t, 5*time.Second, "m1,m2,m3", "m1", "m2", "m3")

	// A hand-over reaches the named member only.
	t0 := stamp(t, c.procs["m1"].Call(t, "send m2 198.51.100.5 2001:db8:100::5"))
	testkit.For(t, 2*time.Second, "condition", func() error {
		if received(c.procs["m2"], "m1 [198.51.100.5 2001:db8:100::5]", t0).IsZero() {
			return fmt.Errorf("m2 did not receive the hand-over")
		}
		return nil
	})
	t.Logf("send m1 -> m2 delivered in %v", received(c.procs["m2"], "m1 [198.51.100.5 2001:db8:100::5]", t0).Sub(t0))
	if !received(c.procs["m3"], "m1 [198.51.100.5 2001:db8:100::5]", t0).IsZero() {
		t.Fatal("m3 received a message sent to m2")
	}
	if got := c.procs["m1"].Call(t, "send nobody 198.51.100.5"); !strings.Contains(got, "no such live member") {
		t.Fatalf("send to an unknown member: %s", got)
	}

	// SIGKILL (no leave): the others see it dead within a loose bound.
	killed := time.Now()
	if err := c.procs["m3"].Proc.Kill(); err != nil {
		t.Fatal(err)
	}
	c.waitAlive(t, 3*time.Second, "m1,m2", "m1", "m2")
	for _, n := range []string{"m1", "m2"} {
		t.Logf("%s saw the killed m3 gone after %v", n, seenGone(c.procs[n], killed).Sub(killed))
	}
	if got := c.procs["m1"].Call(t, "metrics"); got != "alive=2 dead=1 suspect=0" {
		t.Fatalf("m1 metrics after the kill: %s", got)
	}

	// It comes back (same name and address) and is a member again; then it
	// leaves gracefully and is seen gone quickly.
	c.start(t, "m3", goodKey)
	c.waitAlive(t, 5*time.Second, "m1,m2,m3", "m1", "m2", "m3")
	left := stamp(t, c.procs["m3"].Call(t, "leave"))
	// m3 keeps running after Leave: without its leave message it would
	// stay a member, so any bound proves the message; measured: ~20-100 ms.
	c.waitAlive(t, 2*time.Second, "m1,m2", "m1", "m2")
	for _, n := range []string{"m1", "m2"} {
		t.Logf("%s saw m3 leave after %v", n, seenGone(c.procs[n], left).Sub(left))
	}
}

func TestAMemberWithTheWrongKeyCannotJoin(t *testing.T) {
	c := newCluster(t)
	fast := "HERALD_MEMBER_REJOIN=300ms"
	c.start(t, "m1", goodKey, fast)
	c.start(t, "m2", goodKey, fast)
	c.waitAlive(t, 5*time.Second, "m1,m2", "m1", "m2")
	c.start(t, "m3", wrongKey, fast)
	c.waitAlive(t, 5*time.Second, "m3", "m3") // its first join attempt failed

	// Both sides keep trying to join each other (every 300 ms) for a while.
	testkit.Holds(t, 3*time.Second, "the member with the wrong key stays out", func() error {
		for _, n := range []string{"m1", "m2"} {
			if got := c.alive(t, n); got != "m1,m2" {
				return fmt.Errorf("%s sees %q: the member with the wrong key got in", n, got)
			}
		}
		if got := c.alive(t, "m3"); got != "m3" {
			return fmt.Errorf("the member with the wrong key sees %q", got)
		}
		return nil
	})
	for _, n := range []string{"m1", "m2"} {
		for _, e := range c.procs[n].Events() {
			if strings.Contains(e.Text, "m3") {
				t.Fatalf("%s listed m3 at some point: %s", n, e.Text)
			}
		}
	}
}

// partition drops all traffic between host and the given addresses.
func partition(t testing.TB, host *netns.NS, addrs ...string) {
	t.Helper()
	set := "{ " + strings.Join(addrs, ", ") + " }"
	ctx := context.Background()
	host.MustRun(ctx, "nft", "add", "table", "inet", "partition")
	host.MustRun(ctx, "nft", "add", "chain", "inet", "partition", "in", "{ type filter hook input priority 0 ; policy accept ; }")
	host.MustRun(ctx, "nft", "add", "chain", "inet", "partition", "out", "{ type filter hook output priority 0 ; policy accept ; }")
	host.MustRun(ctx, "nft", "add", "rule", "inet", "partition", "in", "ip", "saddr", set, "drop")
	host.MustRun(ctx, "nft", "add", "rule", "inet", "partition", "out", "ip", "daddr", set, "drop")
}

func heal(t testing.TB, host *netns.NS) {
	t.Helper()
	host.MustRun(context.Background(), "nft", "delete", "table", "inet", "partition")
}

// After a partition long enough for each side to declare the other dead
// (and to stop gossiping to it), only the periodic re-join merges them.
func TestPartitionHealsThroughRejoin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rejoin string
		heals  bool
	}{
		{"without re-join the sides stay apart", "1h", false},
		{"with re-join every second they merge", "1s", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			for _, n := range []string{"m1", "m2", "m3"} {
				c.start(t, n, goodKey, "HERALD_MEMBER_REJOIN="+tc.rejoin, "HERALD_MEMBER_DEADTIME=500ms")
			}
			c.waitAlive(t, 5*time.Second, "m1,m2,m3", "m1", "m2", "m3")

			partition(t, c.hosts["m3"], c.addrs["m1"], c.addrs["m2"])
			c.waitAlive(t, 5*time.Second, "m1,m2", "m1", "m2")
			c.waitAlive(t, 5*time.Second, "m3", "m3")
			time.Sleep(time.Second) // past GossipToTheDeadTime: no gossip crosses any more

			healed := time.Now()
			heal(t, c.hosts["m3"])
			if !tc.heals {
				time.Sleep(4 * time.Second)
				if got := c.alive(t, "m1"); got != "m1,m2" {
					t.Fatalf("m1 sees %q: the sides merged without re-join, so the other test proves nothing", got)
				}
				return
			}
			c.waitAlive(t, 10*time.Second, "m1,m2,m3", "m1", "m2", "m3")
			t.Logf("merged %v after the partition healed", time.Since(healed).Round(time.Millisecond))
		})
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkMemberlist measures, with the default timings and 3 members in
// namespaces, per iteration: the latency of 5 hand-over messages (Send on m1
// to OnMessage on m2), how long m1 and m2 take to see a graceful Leave of
// m3, and how long they take to declare a SIGKILLed m3 dead. Reported as
// medians; run with -benchtime=5x or so.
func BenchmarkMemberlist(b *testing.B) {
	c := newCluster(b)
	c.start(b, "m1", goodKey)
	c.start(b, "m2", goodKey)
	var send, leave, detect []time.Duration
	round := 0
	for b.Loop() {
		round++
		c.start(b, "m3", goodKey)
		c.waitAlive(b, 5*time.Second, "m1,m2,m3", "m1", "m2", "m3")
		for j := range 5 {
			ip := fmt.Sprintf("198.51.100.%d", 10*round+j)
			t0 := stamp(b, c.procs["m1"].Call(b, "send m2 "+ip))
			var at time.Time
			testkit.For(b, 2*time.Second, "condition", func() error {
				if at = received(c.procs["m2"], "m1 ["+ip+"]", t0); at.IsZero() {
					return fmt.Errorf("m2 did not receive %s", ip)
				}
				return nil
			})
			send = append(send, at.Sub(t0))
		}

		t0 := stamp(b, c.procs["m3"].Call(b, "leave"))
		c.waitAlive(b, 2*time.Second, "m1,m2", "m1", "m2")
		for _, n := range []string{"m1", "m2"} {
			leave = append(leave, seenGone(c.procs[n], t0).Sub(t0))
		}
		c.procs["m3"].Stop()

		c.start(b, "m3", goodKey)
		c.waitAlive(b, 5*time.Second, "m1,m2,m3", "m1", "m2", "m3")
		killed := time.Now()
		if err := c.procs["m3"].Proc.Kill(); err != nil {
			b.Fatal(err)
		}
		c.waitAlive(b, 5*time.Second, "m1,m2", "m1", "m2")
		for _, n := range []string{"m1", "m2"} {
			detect = append(detect, seenGone(c.procs[n], killed).Sub(killed))
		}
	}
	b.ReportMetric(ms(median(send)), "send-ms")
	b.ReportMetric(ms(median(leave)), "leave-ms")
	b.ReportMetric(ms(median(detect)), "kill-detect-ms")
	b.ReportMetric(ms(slices.Max(detect)), "kill-detect-max-ms")
	b.Logf("rounds %d; send %v; leave %v; kill detection %v", round, send, leave, detect)
}
