package echo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testkit"
)

func TestBackendNamesPodAndNodeOverHTTPTCPAndUDP(t *testing.T) {
	port := testkit.FreePort(t)
	ready := filepath.Join(t.TempDir(), "ready")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, Config{Pod: "web-1", Namespace: "demo", Node: "node2", TCP: []int{port}, UDP: []int{port}, ReadyFile: ready}, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { cancel(); _ = <-done })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("backend did not create its ready file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	resp, err := http.Get("http://" + addr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	var r Reply
	err = json.NewDecoder(resp.Body).Decode(&r)
	_ = resp.Body.Close()
	if err != nil || r.Pod != "web-1" || r.Node != "node2" || r.Proto != "http" || r.Path != "/hello" {
		t.Fatalf("HTTP reply = %+v (%v), want pod web-1 node node2 path /hello", r, err)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() //nolint:errcheck // the test has its answer
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&r); err != nil || r.Proto != "tcp" || r.Echo != "ping" || r.Pod != "web-1" {
		t.Fatalf("raw TCP reply = %+v (%v), want echo of ping from web-1", r, err)
	}

	u, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close() //nolint:errcheck // the test has its answer
	_ = u.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprint(u, "dgram"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, err := u.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(buf[:n], &r); err != nil || r.Proto != "udp" || r.Echo != "dgram" || r.Node != "node2" {
		t.Fatalf("UDP reply = %+v (%v), want echo of dgram from node2", r, err)
	}
}
