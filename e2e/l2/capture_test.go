package l2

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

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/netns"
)

// capture records the gratuitous ARP requests and unsolicited Neighbor
// Advertisements the LAN client sees, with tcpdump in its namespace.
type capture struct {
	proc *netns.Proc
	path string
}

var captures atomic.Int64

// startCapture starts tcpdump on the client's eth0 and waits until it listens.
func (e *env) startCapture(ctx context.Context) (*capture, error) {
	n := captures.Add(1)
	path := filepath.Join(e.Dir, "logs", fmt.Sprintf("garp-%d.log", n))
	p, err := e.Reg.Start(e.Client.NS, fmt.Sprintf("tcpdump-%d", n), path, nil,
		"tcpdump", "-i", "eth0", "-n", "-l", "-tt", "-e", "arp or (icmp6 and ip6[40] == 136)")
	if err != nil {
		return nil, err
	}
	c := &capture{proc: p, path: path}
	err = lab.Poll(ctx, 20*time.Millisecond, func() error {
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

// announcement is one gratuitous message seen.
type announcement struct {
	at  time.Time
	mac string
	ip  string
}

// stop ends tcpdump and returns the announcements it saw.
func (c *capture) stop() ([]announcement, error) {
	_ = c.proc.Stop(2 * time.Second)
	f, err := os.Open(c.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []announcement
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if a, ok := parseAnnouncement(sc.Text()); ok {
			out = append(out, a)
		}
	}
	return out, sc.Err()
}

// parseAnnouncement reads a tcpdump -tt -e line of a gratuitous ARP request
// ("Request who-has X tell X") or an unsolicited NA to all nodes.
func parseAnnouncement(line string) (announcement, bool) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return announcement{}, false
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return announcement{}, false
	}
	mac, err := net.ParseMAC(f[1])
	if err != nil {
		return announcement{}, false
	}
	a := announcement{at: time.Unix(0, int64(secs*1e9)), mac: mac.String()}
	if _, rest, ok := strings.Cut(line, "Request who-has "); ok {
		g := strings.Fields(strings.ReplaceAll(rest, ",", " "))
		if len(g) >= 3 && g[1] == "tell" && g[0] == g[2] {
			a.ip = g[0]
			return a, true
		}
		return announcement{}, false
	}
	if strings.Contains(line, "> ff02::1:") {
		if _, rest, ok := strings.Cut(line, "neighbor advertisement, tgt is "); ok {
			a.ip = strings.TrimSuffix(strings.Fields(rest)[0], ",")
			return a, true
		}
	}
	return announcement{}, false
}
