package l2

import (
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
)

func TestChangesOf(t *testing.T) {
	t1 := time.Unix(100, 0)
	at := func(ms int, node string, lat int) lab.Sample {
		return lab.Sample{Sent: t1.Add(time.Duration(ms) * time.Millisecond), Latency: time.Duration(lat) * time.Millisecond, Node: node}
	}
	var samples []lab.Sample
	for i := range 10 {
		samples = append(samples, at(i*10, "a", 1))
	}
	// Stamped before the move, answered after it by the new node: in
	// arrival order it comes after the old node's last answer.
	samples = append(samples, at(95, "b", 30), at(100, "a", 1))
	for i := 11; i < 20; i++ {
		samples = append(samples, at(i*10, "b", 1))
	}
	samples = append(samples, lab.Sample{Sent: t1.Add(205 * time.Millisecond), Err: "reset"})
	if n, last := changesOf(samples, t1); n != 1 || last != 111*time.Millisecond {
		t.Fatalf("one move: %d changes, last at %v", n, last)
	}
	// A real flap: runs of several answers each.
	for i := 20; i < 30; i++ {
		samples = append(samples, at(i*10, "a", 1))
	}
	if n, _ := changesOf(samples, t1); n != 2 {
		t.Fatalf("a move back: %d changes, want 2", n)
	}
}
