package l2guard

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestUnicast(t *testing.T) {
	for _, tc := range []struct {
		mac  net.HardwareAddr
		want bool
	}{
		{net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, true},
		{net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false},
		{net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, false},
		{net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, false},
		{net.HardwareAddr{0, 0, 0, 0, 0, 0}, false},
		{net.HardwareAddr{0x02, 0, 0, 0, 1}, false},
	} {
		if got := Unicast(tc.mac); got != tc.want {
			t.Errorf("Unicast(%v) = %v", tc.mac, got)
		}
	}
}

// A sender that floods is answered at its rate, then muted for MuteFor;
// another sender is answered throughout; the mute ends on time.
func TestGuardMutesAFlood(t *testing.T) {
	g := New("ARP requests", slog.New(slog.DiscardHandler))
	flooder, host := MAC{2, 0, 0, 0, 0, 0x99}, MAC{2, 0, 0, 0, 0, 1}
	answered, hostAnswered := 0, 0
	var mutedAt time.Time
	for i := range 100000 { // 100,000 requests in a second
		now := t0.Add(time.Duration(i) * 10 * time.Microsecond)
		if g.Allow(flooder, now) {
			answered++
		}
		if i%10000 == 0 && g.Allow(host, now) {
			hostAnswered++
		}
		if m, changed := g.Muted(now); changed && mutedAt.IsZero() {
			if len(m) != 1 || m[0] != flooder {
				t.Fatalf("muted %v", m)
			}
			mutedAt = now
		}
	}
	if answered > Burst+Rate || hostAnswered != 10 {
		t.Fatalf("flooder answered %d times, the other host %d of 10", answered, hostAnswered)
	}
	if mutedAt.IsZero() || mutedAt.Sub(t0) > 50*time.Millisecond {
		t.Fatalf("muted at %v", mutedAt.Sub(t0))
	}
	if next := g.NextUnmute(); !next.Equal(mutedAt.Add(MuteFor)) {
		t.Fatalf("next unmute %v, want %v", next, mutedAt.Add(MuteFor))
	}
	if _, changed := g.Muted(mutedAt.Add(MuteFor - time.Millisecond)); changed {
		t.Fatal("unmuted early")
	}
	if m, changed := g.Muted(mutedAt.Add(MuteFor)); !changed || len(m) != 0 || !g.NextUnmute().IsZero() {
		t.Fatalf("after %v: muted %v (changed %v)", MuteFor, m, changed)
	}
}

// Senders that forge a new address per request are not muted (none floods
// alone) but share the responder's total.
func TestGuardForgedSenders(t *testing.T) {
	g := New("ARP requests", slog.New(slog.DiscardHandler))
	answered := 0
	for i := range 100000 {
		src := MAC{2, 0, byte(i >> 16), byte(i >> 8), byte(i), 0}
		if g.Allow(src, t0.Add(time.Duration(i)*10*time.Microsecond)) {
			answered++
		}
	}
	if answered > TotalBurst+TotalRate+1 {
		t.Fatalf("answered %d forged senders in a second", answered)
	}
	if m, _ := g.Muted(t0.Add(time.Second)); len(m) != 0 {
		t.Fatalf("muted %d forged senders", len(m))
	}
}

// The filter drops frames from muted sources and passes the others to the
// responder's own filter.
func TestFilter(t *testing.T) {
	accept := []bpf.Instruction{bpf.RetConstant{Val: 0xffff}}
	muted := []MAC{{2, 0, 0, 0, 0, 0x99}, {2, 0, 0, 0, 0x12, 0x34}}
	raw, err := Filter(muted, accept)
	if err != nil {
		t.Fatal(err)
	}
	prog := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		prog[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(src MAC) []byte {
		f := make([]byte, 60)
		copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(f[6:12], src[:])
		return f
	}
	for _, tc := range []struct {
		src  MAC
		pass bool
	}{
		{MAC{2, 0, 0, 0, 0, 0x99}, false},
		{MAC{2, 0, 0, 0, 0x12, 0x34}, false},
		{MAC{2, 0, 0, 0, 0, 0x98}, true}, // same first four bytes
		{MAC{3, 0, 0, 0, 0, 0x99}, true}, // same last two
		{MAC{2, 0, 0, 0, 0x12, 0x35}, true},
	} {
		n, err := vm.Run(frame(tc.src))
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != tc.pass {
			t.Errorf("frame from %v: filter returned %d, want pass %v", tc.src, n, tc.pass)
		}
	}
	if _, err := Filter(make([]MAC, MaxMuted), accept); err != nil {
		t.Fatalf("filter with %d muted senders: %v", MaxMuted, err)
	}
}
