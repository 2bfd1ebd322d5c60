// Package echo is the backend the lab runs inside each pod namespace. On
// every TCP port it answers HTTP requests, and raw lines for anything that is
// not HTTP; on every UDP port it answers each datagram. Every answer is one
// JSON Reply naming the pod and node, so a test sees who served it.
package echo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Reply is the JSON body of every answer.
type Reply struct {
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
	Node      string `json:"node"`
	// Client is the peer address as the pod saw it (after any NAT).
	Client string `json:"client"`
	// Local is the pod address and port that received the request.
	Local string `json:"local"`
	// Proto is "http", "tcp" or "udp".
	Proto string `json:"proto"`
	// Path is the HTTP request path; Echo is the raw line or datagram.
	Path string `json:"path,omitempty"`
	Echo string `json:"echo,omitempty"`
}

// Config says which pod this backend plays and where it listens.
type Config struct {
	Pod, Namespace, Node string
	TCP, UDP             []int
	// ReadyFile, if set, is created once every port listens.
	ReadyFile string
}

// Serve listens on every configured port and answers until ctx ends.
func Serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	var (
		wg      sync.WaitGroup
		closers []io.Closer
	)
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
		wg.Wait()
	}()
	for _, port := range cfg.TCP {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		closers = append(closers, l)
		srv := &http.Server{Handler: httpHandler(cfg), ReadHeaderTimeout: 5 * time.Second}
		httpConns := newConnListener(l.Addr())
		closers = append(closers, srv)
		wg.Add(2)
		go func() { defer wg.Done(); _ = srv.Serve(httpConns) }()
		go func() { defer wg.Done(); acceptTCP(l, httpConns, cfg) }()
	}
	for _, port := range cfg.UDP {
		pc, err := net.ListenPacket("udp", ":"+strconv.Itoa(port))
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		closers = append(closers, pc)
		wg.Add(1)
		go func() { defer wg.Done(); serveUDP(pc, cfg) }()
	}
	if cfg.ReadyFile != "" {
		if err := os.WriteFile(cfg.ReadyFile, []byte("ready\n"), 0o644); err != nil {
			return fmt.Errorf("echo: %w", err)
		}
	}
	log.Info("echo backend serving", "pod", cfg.Namespace+"/"+cfg.Pod, "node", cfg.Node, "tcp", cfg.TCP, "udp", cfg.UDP)
	<-ctx.Done()
	return nil
}

func (c Config) reply(proto, client, local string) Reply {
	return Reply{Pod: c.Pod, Namespace: c.Namespace, Node: c.Node, Client: client, Local: local, Proto: proto}
}

func httpHandler(cfg Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local := ""
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			local = a.String()
		}
		rep := cfg.reply("http", r.RemoteAddr, local)
		rep.Path = r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Pod", cfg.Pod)
		w.Header().Set("X-Node", cfg.Node)
		b, _ := json.Marshal(rep)
		_, _ = w.Write(append(b, '\n'))
	})
}

var httpMethods = []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "}

// acceptTCP hands HTTP connections to the HTTP server and echoes the rest.
func acceptTCP(l net.Listener, httpConns *connListener, cfg Config) {
	defer httpConns.Close() //nolint:errcheck // closing it only wakes the HTTP server
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			br := bufio.NewReader(c)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := br.Peek(1) // whatever the first read brought
			_ = c.SetReadDeadline(time.Time{})
			if err != nil {
				_ = c.Close()
				return
			}
			if head, _ := br.Peek(br.Buffered()); looksLikeHTTP(string(head)) {
				httpConns.push(&peekedConn{Conn: c, r: br})
				return
			}
			echoLines(c, br, cfg)
		}()
	}
}

func echoLines(c net.Conn, br *bufio.Reader, cfg Config) {
	defer c.Close() //nolint:errcheck // the echo ends here either way
	enc := json.NewEncoder(c)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			rep := cfg.reply("tcp", c.RemoteAddr().String(), c.LocalAddr().String())
			rep.Echo = strings.TrimRight(line, "\r\n")
			if enc.Encode(rep) != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func serveUDP(pc net.PacketConn, cfg Config) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		rep := cfg.reply("udp", from.String(), pc.LocalAddr().String())
		rep.Echo = strings.TrimRight(string(buf[:n]), "\r\n")
		b, _ := json.Marshal(rep)
		_, _ = pc.WriteTo(append(b, '\n'), from)
	}
}

// looksLikeHTTP reports whether a connection's first bytes start an HTTP
// request (or could, when fewer bytes than a method name have arrived).
func looksLikeHTTP(head string) bool {
	for _, m := range httpMethods {
		if strings.HasPrefix(head, m) || strings.HasPrefix(m, head) {
			return true
		}
	}
	return false
}

// peekedConn is a connection whose first bytes were already buffered.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// connListener feeds accepted connections to an http.Server.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, errors.New("listener closed")
	}
}

func (l *connListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *connListener) Addr() net.Addr { return l.addr }
