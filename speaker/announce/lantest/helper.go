package lantest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/poll"
)

// A helper is this test binary run again as a child process inside a lab
// namespace, so that everything it does (sockets, interface lookups, route
// lookups from any goroutine) happens in that namespace, as in the real
// speaker. The test drives it with one-line commands through a FIFO; the
// child answers each on its standard output, which goes to a log file.
//
// Lines the child writes: "reply <id> <text>" and "event <unix-nanos> <text>".

const (
	envHelper = "HERALD_LANTEST_HELPER"
	envFIFO   = "HERALD_LANTEST_FIFO"
)

// Helper is the parent's handle on a helper process.
type Helper struct {
	Proc *netns.Proc
	Name string
	fifo *os.File
	log  string

	mu   sync.Mutex
	next int
}

// StartHelper starts the helper named name inside ns (the child's TestMain
// sees HelperName() == name) and ends it when the test ends.
func StartHelper(t testing.TB, reg *netns.Registry, ns *netns.NS, name string, env ...string) *Helper {
	t.Helper()
	dir := t.TempDir()
	fifoPath := filepath.Join(dir, "commands")
	if err := syscall.Mkfifo(fifoPath, 0o600); err != nil {
		t.Fatal(err)
	}
	// Read-write, so opening never blocks and the child sees no EOF while
	// we hold it.
	fifo, err := os.OpenFile(fifoPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := &Helper{Name: name, fifo: fifo, log: filepath.Join(dir, "output")}
	env = append(env, envHelper+"="+name, envFIFO+"="+fifoPath)
	h.Proc, err = reg.Start(ns, name, h.log, env, os.Args[0], "-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(h.log)
			t.Logf("output of helper %s:\n%s", name, b)
		}
	})
	return h
}

// Stop ends the child: closing the only writer of the FIFO ends its command
// loop (EOF), and SIGTERM, then SIGKILL after 3 s, whatever else it runs.
func (h *Helper) Stop() {
	_ = h.fifo.Close()
	_ = h.Proc.Stop(3 * time.Second)
}

// Call sends cmd and returns the child's answer.
func (h *Helper) Call(t testing.TB, cmd string) string {
	t.Helper()
	h.mu.Lock()
	h.next++
	id := h.next
	h.mu.Unlock()
	if _, err := fmt.Fprintf(h.fifo, "%d %s\n", id, cmd); err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("reply %d ", id)
	var answer string
	// Every 10 ms, finer than testkit.For: tests time what helpers report.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := poll.Until(ctx, 10*time.Millisecond, func() error {
		for _, line := range h.Lines() {
			if s, ok := strings.CutPrefix(line, prefix); ok {
				answer = s
				return nil
			}
		}
		if h.Proc.Exited() {
			return poll.Stop(fmt.Errorf("helper %s exited before answering %q", h.Name, cmd))
		}
		return fmt.Errorf("helper %s did not answer %q", h.Name, cmd)
	})
	if err != nil {
		t.Fatal(err)
	}
	return answer
}

// Lines returns what the child wrote so far.
func (h *Helper) Lines() []string {
	b, _ := os.ReadFile(h.log)
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// Events returns the child's events so far with their times.
func (h *Helper) Events() []Event {
	var out []Event
	for _, line := range h.Lines() {
		var ns int64
		var rest string
		if s, ok := strings.CutPrefix(line, "event "); ok {
			if _, err := fmt.Sscanf(s, "%d", &ns); err == nil {
				_, rest, _ = strings.Cut(s, " ")
				out = append(out, Event{At: time.Unix(0, ns), Text: rest})
			}
		}
	}
	return out
}

// Event is something a helper reported without being asked.
type Event struct {
	At   time.Time
	Text string
}

// HelperName is the helper this process should be ("" in a normal test run).
func HelperName() string { return os.Getenv(envHelper) }

var outMu sync.Mutex

// Emit writes an event line (child side).
func Emit(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf("event %d %s\n", time.Now().UnixNano(), fmt.Sprintf(format, args...))
}

// ServeHelper answers commands with handle until the command "exit" or the
// end of the FIFO (child side). Answers must be one line.
func ServeHelper(handle func(cmd string) string) error {
	f, err := os.Open(os.Getenv(envFIFO))
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // read only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, cmd, _ := strings.Cut(sc.Text(), " ")
		if cmd == "exit" {
			return nil
		}
		answer := handle(cmd)
		outMu.Lock()
		fmt.Printf("reply %s %s\n", id, strings.ReplaceAll(answer, "\n", " "))
		outMu.Unlock()
	}
	return sc.Err()
}

// HelperMain is the whole life of a helper process (child side): start sets
// the work up under a context that ends on SIGTERM and returns the command
// handler and a function that waits for the work to end. It returns the
// process exit code.
func HelperMain(start func(ctx context.Context) (handle func(cmd string) string, wait func() error, err error)) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	handle, wait, err := start(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	serveErr := ServeHelper(handle)
	stop()
	if err := errors.Join(serveErr, wait()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
