// Package child runs the test binary again as a child process inside a lab
// network namespace, so that everything the code under test does (sockets,
// interface and route lookups, from any goroutine) happens in that
// namespace, and signals (SIGSTOP, SIGTERM) hit it alone, as they would a
// real speaker. The test drives the child with one-line commands through a
// FIFO; the child answers each on its standard output, which goes to a log
// file with whatever else it writes.
//
// Lines the child writes: "reply <id> <text>" and "event <unix-nanos> <text>".
package child

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

const (
	envName = "HERALD_TEST_CHILD"
	envFIFO = "HERALD_TEST_CHILD_FIFO"
)

// maxLine is the longest command or answer: a BGP helper's desired state
// with thousands of paths is one line of JSON.
const maxLine = 64 << 20

// Process is the parent's handle on a child.
type Process struct {
	Proc *netns.Proc
	Name string
	// Log is where the child's output goes.
	Log  string
	fifo *os.File

	mu   sync.Mutex // one command written at a time
	next int
}

// Start starts the child called name inside ns (its TestMain sees Name() ==
// name) and ends it when the test ends, showing its output if the test
// failed.
func Start(t testing.TB, reg *netns.Registry, ns *netns.NS, name string, env ...string) *Process {
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
	p := &Process{Name: name, fifo: fifo, Log: filepath.Join(dir, "output")}
	env = append(env, envName+"="+name, envFIFO+"="+fifoPath)
	p.Proc, err = reg.Start(ns, name, p.Log, env, os.Args[0], "-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, tail(p.Log, 8000))
		}
	})
	return p
}

// Stop ends the child: closing the only writer of the FIFO ends its command
// loop (EOF), and SIGTERM, then SIGKILL after 5 s, whatever else it runs.
func (p *Process) Stop() {
	_ = p.fifo.Close()
	_ = p.Proc.Stop(5 * time.Second)
}

// Call sends cmd and returns the child's answer, failing the test if none
// comes within 10 s.
func (p *Process) Call(t testing.TB, cmd string) string {
	t.Helper()
	answer, err := p.Ask(cmd, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return answer
}

// Ask sends cmd and returns the child's answer, or an error if none comes
// within timeout (a stopped child answers nothing) or the child exited.
func (p *Process) Ask(cmd string, timeout time.Duration) (string, error) {
	p.mu.Lock()
	p.next++
	id := p.next
	// The answer comes after what the log holds now: read only from there.
	var from int64
	if fi, err := os.Stat(p.Log); err == nil {
		from = fi.Size()
	}
	_, err := fmt.Fprintf(p.fifo, "%d %s\n", id, cmd)
	p.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("child %s: %w", p.Name, err)
	}
	prefix := fmt.Sprintf("reply %d ", id)
	var answer string
	// Every 10 ms, finer than testkit.For: tests time what children report.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = poll.Until(ctx, 10*time.Millisecond, func() error {
		for line := range strings.Lines(readFrom(p.Log, from)) {
			if s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), prefix); ok && strings.HasSuffix(line, "\n") {
				answer = s
				return nil
			}
		}
		if p.Proc.Exited() {
			return poll.Stop(fmt.Errorf("child %s exited before answering %q", p.Name, cmd))
		}
		return fmt.Errorf("child %s did not answer %q", p.Name, cmd)
	})
	return answer, err
}

// Lines returns what the child wrote so far.
func (p *Process) Lines() []string {
	b, _ := os.ReadFile(p.Log)
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// Events returns the child's events so far with their times.
func (p *Process) Events() []Event {
	var out []Event
	for _, line := range p.Lines() {
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

// Event is something a child reported without being asked.
type Event struct {
	At   time.Time
	Text string
}

// Name is the child this process should be ("" in a normal test run).
func Name() string { return os.Getenv(envName) }

var outMu sync.Mutex

// Emit writes an event line (child side).
func Emit(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf("event %d %s\n", time.Now().UnixNano(), fmt.Sprintf(format, args...))
}

// serve answers commands with handle until the command "exit" or the end of
// the FIFO (child side). An answer's line breaks become spaces.
func serve(handle func(cmd string) string) error {
	f, err := os.Open(os.Getenv(envFIFO))
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // read only
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLine)
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

// Main is the whole life of a child (child side): start sets the work up
// under a context that ends on SIGTERM and returns the command handler and
// a function that waits for the work to end. The child exits when the
// parent stops sending commands (Stop) or on SIGTERM, once the work has
// ended. It returns the process exit code.
func Main(start func(ctx context.Context) (handle func(cmd string) string, wait func() error, err error)) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	handle, wait, err := start(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- serve(handle) }()
	var serveErr error
	select {
	case serveErr = <-served:
		stop()
	case <-ctx.Done():
	}
	if err := errors.Join(serveErr, wait()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// readFrom returns the file from offset on ("" if it cannot be read).
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close() //nolint:errcheck // read only
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, 1<<62))
	return string(b)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
