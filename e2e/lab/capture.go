package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/poll"
)

// Capture records, with tcpdump in a host's namespace, the Layer 2
// messages that say who holds an address: gratuitous ARP requests and
// unsolicited Neighbor Advertisements (announcements), and ARP replies and
// solicited Neighbor Advertisements (answers).
type Capture struct {
	proc *netns.Proc
	path string
}

var captures atomic.Int64

// StartCapture starts tcpdump on the host's eth0 and waits until it listens.
func (h *Host) StartCapture(ctx context.Context) (*Capture, error) {
	n := captures.Add(1)
	path := filepath.Join(h.lab.logDir(), fmt.Sprintf("l2-capture-%s-%d.log", h.Name, n))
	p, err := h.lab.Reg.Start(h.NS, fmt.Sprintf("tcpdump-%s-%d", h.Name, n), path, nil,
		"tcpdump", "-i", "eth0", "-n", "-l", "-tt", "-e", "arp or (icmp6 and ip6[40] == 136)")
	if err != nil {
		return nil, err
	}
	c := &Capture{proc: p, path: path}
	err = poll.Until(ctx, 20*time.Millisecond, func() error {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), "listening on") {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("tcpdump exited: %s", b)
		}
		return fmt.Errorf("tcpdump not listening yet")
	})
	if err != nil {
		_ = p.Stop(time.Second)
		return nil, err
	}
	return c, nil
}

// L2Message is one message seen: MAC says it holds IP, announcing it
// unasked (Gratuitous) or answering a request.
type L2Message struct {
	At         time.Time
	MAC, IP    string
	Gratuitous bool
}

// Stop ends tcpdump and returns the messages it saw.
func (c *Capture) Stop() ([]L2Message, error) {
	_ = c.proc.Stop(2 * time.Second)
	f, err := os.Open(c.path)
	if err != nil {
		return nil, err
	}
	defer f.Close() //nolint:errcheck // read only
	var out []L2Message
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if a, ok := ParseL2Message(sc.Text()); ok {
			out = append(out, a)
		}
	}
	return out, sc.Err()
}

// ParseL2Message reads a tcpdump -tt -e line: a gratuitous ARP request
// ("Request who-has X tell X"), an ARP reply ("Reply X is-at M"), or a
// Neighbor Advertisement for X (to all nodes: unsolicited; else an answer).
// The MAC is the frame's source.
func ParseL2Message(line string) (L2Message, bool) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return L2Message{}, false
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return L2Message{}, false
	}
	mac, err := net.ParseMAC(f[1])
	if err != nil {
		return L2Message{}, false
	}
	a := L2Message{At: time.Unix(0, int64(secs*1e9)), MAC: mac.String()}
	if _, rest, ok := strings.Cut(line, "Request who-has "); ok {
		g := strings.Fields(strings.ReplaceAll(rest, ",", " "))
		if len(g) >= 3 && g[1] == "tell" && g[0] == g[2] {
			a.IP, a.Gratuitous = g[0], true
			return a, true
		}
		return L2Message{}, false
	}
	if _, rest, ok := strings.Cut(line, "Reply "); ok {
		if g := strings.Fields(rest); len(g) >= 3 && g[1] == "is-at" {
			a.IP = g[0]
			return a, true
		}
		return L2Message{}, false
	}
	if _, rest, ok := strings.Cut(line, "neighbor advertisement, tgt is "); ok {
		a.IP = strings.TrimSuffix(strings.Fields(rest)[0], ",")
		a.Gratuitous = strings.Contains(line, "> ff02::1:")
		return a, true
	}
	return L2Message{}, false
}
