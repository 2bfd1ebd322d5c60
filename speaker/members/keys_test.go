package members

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testkit"
)

func TestNextKeyStep(t *testing.T) {
	k1, k2, k3 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16), bytes.Repeat([]byte{3}, 24)
	id1, id2 := IDOf(k1), IDOf(k2)
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name   string
		keys   [][]byte
		target []byte
		peers  map[string][]KeyID
		after  time.Duration
		op     keyOp
		key    []byte
		wait   []string
	}{
		{"nothing to do", [][]byte{k1}, k1, map[string][]KeyID{"b": {id1}}, 0, keyNone, nil, nil},
		{"a new key is installed beside the old one first", [][]byte{k1}, k2, map[string][]KeyID{"b": {id1}}, 0, keyAdd, k2, nil},
		{"it is used only once every member has it", [][]byte{k1, k2}, k2, map[string][]KeyID{"b": {id1, id2}, "c": {id1}}, 0, keyNone, nil, []string{"c"}},
		{"now every member has it: use it", [][]byte{k1, k2}, k2, map[string][]KeyID{"b": {id1, id2}, "c": {id2, id1}}, 0, keyUse, k2, nil},
		{"a member that never catches up is waited for a while only", [][]byte{k1, k2}, k2, map[string][]KeyID{"b": {id1}}, KeyStepTimeout, keyUse, k2, []string{"b"}},
		{"a member that publishes no keys is waited for too", [][]byte{k1, k2}, k2, map[string][]KeyID{"b": nil}, 0, keyNone, nil, []string{"b"}},
		{"the old key goes once every member encrypts with the new one", [][]byte{k2, k1}, k2, map[string][]KeyID{"b": {id2}, "c": {id2, id1}}, 0, keyRemove, k1, nil},
		{"not while one still encrypts with the old one", [][]byte{k2, k1}, k2, map[string][]KeyID{"b": {id1, id2}}, 0, keyNone, nil, []string{"b"}},
		{"another rotation in flight: drop the second key first", [][]byte{k1, k2}, k3, nil, 0, keyRemove, k2, nil},
		{"alone: every step at once", [][]byte{k1, k2}, k2, nil, 0, keyUse, k2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nextKeyStep(tc.keys, tc.target, tc.peers, t0, t0.Add(tc.after))
			if got.op != tc.op || !bytes.Equal(got.key, tc.key) || !slices.Equal(got.waitingFor, tc.wait) {
				t.Fatalf("got op %d key %x waiting %v, want op %d key %x waiting %v", got.op, got.key, got.waitingFor, tc.op, tc.key, tc.wait)
			}
		})
	}
}

func TestMetaRoundTripAndRefusals(t *testing.T) {
	m := nodeMeta{keys: []KeyID{1, 2}, app: []byte("payload")}
	got, err := parseMeta(m.marshal())
	if err != nil || !slices.Equal(got.keys, m.keys) || string(got.app) != "payload" {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{{2, 0}, {1}, {1, 2, 0, 0, 0, 0, 0, 0, 0, 1}, {1, 9}} {
		if _, err := parseMeta(bad); err == nil {
			t.Errorf("parseMeta(%v) accepted", bad)
		}
	}
}

// Metadata arrives from other members: never panic, and what parses
// encodes back to the same bytes.
func FuzzParseMeta(f *testing.F) {
	f.Add(nodeMeta{keys: []KeyID{1}, app: []byte{1, 0}}.marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseMeta(data)
		if err != nil || len(data) == 0 {
			return
		}
		if again := m.marshal(); !bytes.Equal(again, data) {
			t.Fatalf("%x parsed and encoded as %x", data, again)
		}
	})
}

// cluster3 runs three real members on loopback that see each other.
func cluster3(t *testing.T, key []byte) []*Members {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	ports := []int{testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)}
	var ms []*Members
	for i, name := range []string{"a", "b", "c"} {
		m := mustNew(t, Options{Name: name, BindAddr: lo, Port: ports[i], Key: key})
		var peers []string
		for j, p := range ports {
			if j != i {
				peers = append(peers, fmt.Sprintf("127.0.0.1:%d", p))
			}
		}
		m.SetPeers(peers)
		ms = append(ms, m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(ms))
	for _, m := range ms {
		go func() { done <- m.Run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		for range ms {
			_ = <-done
		}
	})
	for _, m := range ms {
		testkit.For(t, 10*time.Second, m.name+" sees all three", func() error {
			if got := m.Alive(); !slices.Equal(got, []string{"a", "b", "c"}) {
				return fmt.Errorf("alive %v", got)
			}
			return nil
		})
	}
	return ms
}

// Rotating the key: every member ends with the new key only, and while it
// happens no member ever stops seeing another or suspects it.
func TestKeyRotationKeepsEveryoneInSight(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	ms := cluster3(t, k1)
	stop := make(chan struct{})
	lost := make(chan string, 100)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			for _, m := range ms {
				if len(m.Alive()) != 3 || len(m.Suspects()) != 0 {
					lost <- fmt.Sprintf("%s: alive %v suspects %v", m.name, m.Alive(), m.Suspects())
				}
			}
		}
	}()
	for _, m := range ms {
		if err := m.SetKey(k2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // Secrets reach speakers at slightly different times
	}
	for _, m := range ms {
		testkit.For(t, 15*time.Second, m.name+" ends with the new key only", func() error {
			if st := m.Keys(); st.Rotating() || st.Installed[0] != IDOf(k2) {
				return fmt.Errorf("keys %+v", st)
			}
			return nil
		})
	}
	close(stop)
	close(lost)
	for l := range lost {
		t.Errorf("lost sight during the rotation: %s", l)
	}
	if err := ms[0].SetKey([]byte("short")); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

// Members publish a payload the others read.
func TestMetas(t *testing.T) {
	ms := cluster3(t, bytes.Repeat([]byte{1}, 24))
	if err := ms[1].SetMeta([]byte("blocked")); err != nil {
		t.Fatal(err)
	}
	testkit.For(t, 10*time.Second, "a reads b's payload", func() error {
		if got := string(ms[0].Metas()["b"]); got != "blocked" {
			return fmt.Errorf("b's payload %q", got)
		}
		return nil
	})
	if err := ms[1].SetMeta(make([]byte, MaxAppMeta+1)); err == nil {
		t.Fatal("an oversized payload was accepted")
	}
	if got := ms[0].Ping([]string{"b", "c", "nobody", "a"}); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("Ping answered by %v, want b and c", got)
	}
}

// A member whose port is taken says so and starts once the port is free.
func TestRunRetriesWhileThePortIsTaken(t *testing.T) {
	port := testkit.FreePort(t)
	hold, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	m := mustNew(t, Options{Name: "a", BindAddr: netip.MustParseAddr("127.0.0.1"), Port: port, Key: bytes.Repeat([]byte{1}, 32)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); _ = <-done }()
	testkit.For(t, 5*time.Second, "the start failure is reported", func() error {
		if m.Err() == nil {
			return fmt.Errorf("no error yet")
		}
		return nil
	})
	_ = hold.Close()
	testkit.For(t, 15*time.Second, "the member starts once the port is free", func() error {
		if err := m.Err(); err != nil {
			return err
		}
		if got := m.Alive(); !slices.Equal(got, []string{"a"}) {
			return fmt.Errorf("alive %v", got)
		}
		return nil
	})
}

// A member declared failed is still probed at its last address: Ping
// answers for a speaker that memberlist counts dead but that runs (stale
// gossip), and not for one that is gone.
func TestPingReachesAMemberDeclaredFailed(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	key := bytes.Repeat([]byte{2}, 32)
	pa, pc := testkit.FreePort(t), testkit.FreePort(t)
	a := mustNew(t, Options{Name: "a", BindAddr: lo, Port: pa, Key: key})
	a.SetPeers([]string{fmt.Sprintf("127.0.0.1:%d", pc)})
	run := func(m *Members) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		return func() { cancel(); _ = <-done }
	}
	t.Cleanup(run(a))
	c := mustNew(t, Options{Name: "c", BindAddr: lo, Port: pc, Key: key})
	stopC := run(c)
	testkit.For(t, 10*time.Second, "a sees c", func() error {
		if got := a.Alive(); !slices.Equal(got, []string{"a", "c"}) {
			return fmt.Errorf("alive %v", got)
		}
		return nil
	})
	a.SetPeers(nil) // a must not re-join c below: only its probe may reach it
	stopC()         // no Leave: a declares c failed
	// Failed: dead, not only suspected (a suspected c would be told so by
	// gossip once it runs again, and refute it).
	testkit.For(t, 10*time.Second, "a declares c failed", func() error {
		if got, sus := a.Alive(), a.Suspects(); !slices.Equal(got, []string{"a"}) || len(sus) > 0 {
			return fmt.Errorf("alive %v, suspected %v", got, sus)
		}
		return nil
	})
	if got := a.Ping([]string{"c"}); len(got) != 0 {
		t.Fatalf("a stopped member answered: %v", got)
	}
	// The same speaker runs again at its address but has not joined (no
	// peers): memberlist still counts it failed, a probe reaches it.
	c2 := mustNew(t, Options{Name: "c", BindAddr: lo, Port: pc, Key: key})
	t.Cleanup(run(c2))
	// A ping carries a's queued gossip, "c is dead" among it, and c refutes
	// it by joining again: c must still be failed when the probe that
	// reaches it is sent, not after.
	testkit.For(t, 10*time.Second, "a probe reaches c while a counts it failed", func() error {
		if got := a.Alive(); !slices.Equal(got, []string{"a"}) {
			return poll.Stop(fmt.Errorf("a re-joined c before a probe reached it: alive %v", got))
		}
		if got := a.Ping([]string{"c"}); !slices.Equal(got, []string{"c"}) {
			return fmt.Errorf("Ping answered by %v", got)
		}
		return nil
	})
}
