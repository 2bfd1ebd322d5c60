package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/child"
)

// The integration tests run the Router in a child process (internal/testkit/child)
// in the node's namespace: every socket gobgp opens, from whichever
// goroutine, belongs to that namespace, and signals (SIGSTOP, SIGTERM) hit
// the speaker alone, as they would in production. The test drives it with
// one-line commands: "set <Desired as JSON>", "update <JSON>", and
// "status", "events", "metrics", "heap", answered in JSON.
const speakerChild = "bgp-speaker"

func TestMain(m *testing.M) {
	if child.Name() == speakerChild {
		os.Exit(child.Main(runSpeakerChild))
	}
	os.Exit(m.Run())
}

// runSpeakerChild is the child's side: a Router and its commands.
func runSpeakerChild(ctx context.Context) (handle func(cmd string) string, wait func() error, err error) {
	level := slog.LevelInfo
	if os.Getenv("HERALD_BGP_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var mu sync.Mutex
	var events []Event
	reg := prometheus.NewRegistry()
	limitRetry, _ := time.ParseDuration(os.Getenv("HERALD_BGP_TEST_PREFIX_LIMIT_RETRY"))
	r := New(Options{
		Logger:           log,
		Registerer:       reg,
		StatusInterval:   100 * time.Millisecond,
		PrefixLimitRetry: limitRetry,
		OnEvent: func(e Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		},
	})
	done := make(chan error, 1)
	go func() {
		err := r.Run(ctx)
		log.Info("speaker helper: Run returned", "err", err)
		done <- err
	}()
	asJSON := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			return "error " + err.Error()
		}
		return string(b)
	}
	handle = func(cmd string) string {
		verb, arg, _ := strings.Cut(cmd, " ")
		switch verb {
		case "set":
			var d Desired
			if err := json.Unmarshal([]byte(arg), &d); err != nil {
				return "error " + err.Error()
			}
			r.Set(d)
			return "ok"
		case "update":
			var u map[string]PathUpdate
			if err := json.Unmarshal([]byte(arg), &u); err != nil {
				return "error " + err.Error()
			}
			r.Update(u)
			return "ok"
		case "status":
			return asJSON(r.Status())
		case "events":
			mu.Lock()
			defer mu.Unlock()
			return asJSON(events)
		case "metrics":
			rec := httptest.NewRecorder()
			promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			return asJSON(rec.Body.String()) // one line
		case "heap":
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return asJSON(ms.HeapAlloc)
		}
		return "error unknown command " + verb
	}
	return handle, func() error { return <-done }, nil
}

// speaker is the test's handle on a child running a Router.
type speaker struct {
	proc  *netns.Proc
	child *child.Process
}

// startSpeaker runs a speaker child in ns and waits until it answers.
func startSpeaker(t testing.TB, reg *netns.Registry, ns *netns.NS, name string) *speaker {
	t.Helper()
	return startSpeakerWith(t, reg, ns, name)
}

// startSpeakerWith is startSpeaker with extra environment for the child;
// name tells several speakers of one test apart in its log.
func startSpeakerWith(t testing.TB, reg *netns.Registry, ns *netns.NS, name string, extraEnv ...string) *speaker {
	t.Helper()
	if os.Getenv("HERALD_BGP_DEBUG") != "" {
		extraEnv = append(extraEnv, "HERALD_BGP_DEBUG=1")
	}
	c := child.Start(t, reg, ns, speakerChild, extraEnv...)
	c.Proc.Name = name
	sp := &speaker{proc: c.Proc, child: c}
	testkit.For(t, 10*time.Second, name+" answers", func() error {
		_, err := sp.status()
		return err
	})
	return sp
}

func (sp *speaker) set(t testing.TB, d Desired) {
	t.Helper()
	sp.put(t, "set", d)
}

func (sp *speaker) update(t testing.TB, u map[string]PathUpdate) {
	t.Helper()
	sp.put(t, "update", u)
}

func (sp *speaker) put(t testing.TB, verb string, v any) {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := sp.child.Call(t, verb+" "+string(body)); got != "ok" {
		t.Fatalf("%s: %s", verb, got)
	}
}

// get asks the child for what verb names and decodes its JSON answer; a
// stopped child answers nothing within 10 s.
func (sp *speaker) get(verb string, v any) error {
	answer, err := sp.child.Ask(verb, 10*time.Second)
	if err != nil {
		return err
	}
	if msg, ok := strings.CutPrefix(answer, "error "); ok {
		return fmt.Errorf("%s: %s", verb, msg)
	}
	return json.Unmarshal([]byte(answer), v)
}

func (sp *speaker) status() (map[string]PeerStatus, error) {
	var list []PeerStatus
	if err := sp.get("status", &list); err != nil {
		return nil, err
	}
	m := map[string]PeerStatus{}
	for _, st := range list {
		m[st.Name] = st
	}
	return m, nil
}

func (sp *speaker) events() ([]Event, error) {
	var evs []Event
	err := sp.get("events", &evs)
	return evs, err
}

// metrics returns the child's metrics in the text format.
func (sp *speaker) metrics() (string, error) {
	var text string
	err := sp.get("metrics", &text)
	return text, err
}

// liveHeapKiB is the child's live heap right after a GC.
func (sp *speaker) liveHeapKiB() int {
	var b uint64
	if err := sp.get("heap", &b); err != nil {
		return 0
	}
	return int(b / 1024)
}

// rssKiB is the helper's resident set size.
func (sp *speaker) rssKiB() int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", sp.proc.PID))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
