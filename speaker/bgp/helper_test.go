package bgp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/testkit"
)

// The integration tests run the Router in a child process started with
// "ip netns exec" in the node's namespace: every socket gobgp opens, from
// whichever goroutine, belongs to that namespace, and signals (SIGSTOP,
// SIGTERM) hit the speaker alone, as they would in production. The child
// is this test binary, re-executed; it serves a small HTTP API on a unix
// socket (unix sockets work across network namespaces).
const helperEnv = "HERALD_BGP_TEST_SPEAKER"

func TestMain(m *testing.M) {
	if sock := os.Getenv(helperEnv); sock != "" {
		os.Exit(runSpeakerHelper(sock))
	}
	os.Exit(m.Run())
}

func runSpeakerHelper(sock string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
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
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /desired", func(w http.ResponseWriter, req *http.Request) {
		var d Desired
		if err := json.NewDecoder(req.Body).Decode(&d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Set(d)
	})
	mux.HandleFunc("PUT /update", func(w http.ResponseWriter, req *http.Request) {
		var u map[string]PathUpdate
		if err := json.NewDecoder(req.Body).Decode(&u); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Update(u)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(r.Status())
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(events)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/heap", pprof.Index)
	mux.HandleFunc("GET /heap", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = json.NewEncoder(w).Encode(ms.HeapAlloc)
	})
	ln, err := net.Listen("unix", sock)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	go func() { _ = http.Serve(ln, mux) }()
	err = r.Run(ctx)
	log.Info("speaker helper: Run returned", "err", err)
	if err != nil {
		return 1
	}
	return 0
}

// speaker is the test's handle on a helper process.
type speaker struct {
	proc   *netns.Proc
	sock   string
	log    string
	client *http.Client
}

// startSpeaker runs the helper in ns and waits until it answers.
func startSpeaker(t testing.TB, reg *netns.Registry, ns *netns.NS, name string) *speaker {
	t.Helper()
	return startSpeakerWith(t, reg, ns, name)
}

// startSpeakerWith is startSpeaker with extra environment for the helper.
func startSpeakerWith(t testing.TB, reg *netns.Registry, ns *netns.NS, name string, extraEnv ...string) *speaker {
	t.Helper()
	dir := t.TempDir()
	sp := &speaker{sock: filepath.Join(dir, "speaker.sock"), log: filepath.Join(dir, "speaker.log")}
	sp.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sp.sock)
		},
	}}
	env := append([]string{helperEnv + "=" + sp.sock}, extraEnv...)
	if os.Getenv("HERALD_BGP_DEBUG") != "" {
		env = append(env, "HERALD_BGP_DEBUG=1")
	}
	p, err := reg.Start(ns, name, sp.log, env, os.Args[0], "-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	sp.proc = p
	t.Cleanup(func() {
		_ = p.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("--- speaker log\n%s", tailFile(sp.log, 6000))
		}
	})
	testkit.For(t, 10*time.Second, "speaker helper answers", func() error {
		_, err := sp.status()
		return err
	})
	return sp
}

func (sp *speaker) set(t testing.TB, d Desired) {
	t.Helper()
	sp.put(t, "/desired", d)
}

func (sp *speaker) update(t testing.TB, u map[string]PathUpdate) {
	t.Helper()
	sp.put(t, "/update", u)
}

func (sp *speaker) put(t testing.TB, path string, v any) {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://speaker"+path, bytes.NewReader(body))
	resp, err := sp.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %s", path, resp.Status)
	}
}

func (sp *speaker) status() (map[string]PeerStatus, error) {
	var list []PeerStatus
	if err := sp.get("/status", &list); err != nil {
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
	err := sp.get("/events", &evs)
	return evs, err
}

func (sp *speaker) get(path string, v any) error {
	resp, err := sp.client.Get("http://speaker" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close() //nolint:errcheck // read only
	return json.NewDecoder(resp.Body).Decode(v)
}

// metrics returns the helper's metrics in the text format.
func (sp *speaker) metrics() (string, error) {
	resp, err := sp.client.Get("http://speaker/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close() //nolint:errcheck // read only
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// liveHeapKiB is the helper's live heap right after a GC.
func (sp *speaker) liveHeapKiB() int {
	var b uint64
	if err := sp.get("/heap", &b); err != nil {
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

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
