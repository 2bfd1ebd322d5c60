package lab

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/heraldlb/herald/internal/netns"
)

// apiProxy gives processes inside a lab namespace the API server without a
// link to the host: the lab opens a listener inside the namespace (the socket
// stays there) and copies each connection to the API server on the host's
// loopback from an ordinary goroutine. TLS passes through untouched.
type apiProxy struct {
	target string // host:port on the host's loopback
	wg     sync.WaitGroup
}

// listen opens 127.0.0.1:APIServerPort and [::1]:APIServerPort inside ns and serves them until ctx ends.
func (p *apiProxy) listen(ctx context.Context, ns *netns.NS) error {
	return p.listenOn(ctx, ns, "127.0.0.1", "::1")
}

// listenOn opens APIServerPort on each of addrs inside ns and serves them until ctx ends.
func (p *apiProxy) listenOn(ctx context.Context, ns *netns.NS, addrs ...string) error {
	var ls []net.Listener
	err := ns.Do(func() error {
		for _, addr := range addrs {
			l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(APIServerPort)))
			if err != nil {
				return err
			}
			ls = append(ls, l)
		}
		return nil
	})
	if err != nil {
		for _, l := range ls {
			_ = l.Close()
		}
		return err
	}
	for _, l := range ls {
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			<-ctx.Done()
			_ = l.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.serve(ctx, l)
		}()
	}
	return nil
}

func (p *apiProxy) serve(ctx context.Context, l net.Listener) {
	var d net.Dialer
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close() //nolint:errcheck // a proxied connection: nothing left to flush
			up, err := d.DialContext(ctx, "tcp", p.target)
			if err != nil {
				return
			}
			defer up.Close() //nolint:errcheck // as c
			stop := context.AfterFunc(ctx, func() { _ = c.Close(); _ = up.Close() })
			defer stop()
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(up, c)
				_ = up.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			_, _ = io.Copy(c, up)
			_ = c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}
