package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/heraldlb/herald/e2e/lab/echo"
	"github.com/heraldlb/herald/internal/poll"
)

// Run runs a command inside the host's namespace and returns its output.
func (h *Host) Run(ctx context.Context, args ...string) (string, error) {
	return h.NS.Run(ctx, args...)
}

// Get sends one HTTP GET from this host to url on a fresh connection and
// decodes the echo backend's reply (which names pod and node).
func (h *Host) Get(ctx context.Context, url string) (echo.Reply, error) {
	var rep echo.Reply
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return rep, err
	}
	resp, err := HTTPClient(h.NS, 5*time.Second).Do(req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close() //nolint:errcheck // read only
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return rep, err
	}
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("GET %s from %s: status %d: %s", url, h.Name, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return rep, fmt.Errorf("GET %s from %s: not an echo reply: %w: %q", url, h.Name, err, body)
	}
	return rep, nil
}

// GetEventually sends a GET to url every 100 ms, each given 2 s, until one
// is answered or ctx ends: kube-proxy programs a new Service or endpoint up
// to a second or so after Herald announces or routes its IP.
func (h *Host) GetEventually(ctx context.Context, url string) (echo.Reply, error) {
	var rep echo.Reply
	err := poll.Until(ctx, 100*time.Millisecond, func() error {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var err error
		rep, err = h.Get(rctx, url)
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("GET %s from %s: %w", url, h.Name, err)
	}
	return rep, nil
}

// URL returns http://ip:port/ with IPv6 bracketed (and no :80).
func URL(ip string, port int) string {
	if port == 80 {
		if strings.Contains(ip, ":") {
			return "http://[" + ip + "]/"
		}
		return "http://" + ip + "/"
	}
	return "http://" + net.JoinHostPort(ip, fmt.Sprint(port)) + "/"
}

// Curl runs curl inside the host's namespace (-sS and a 5 s limit are added).
func (h *Host) Curl(ctx context.Context, args ...string) (string, error) {
	return h.Run(ctx, append([]string{"curl", "-sS", "--max-time", "5"}, args...)...)
}

// Arping sends one ARP request for ip from eth0 and returns the MAC address
// that answered (Habets arping: "60 bytes from <mac> (<ip>): ...").
func (h *Host) Arping(ctx context.Context, ip string) (net.HardwareAddr, error) {
	out, err := h.Run(ctx, "arping", "-c", "1", "-w", "1", "-i", "eth0", ip)
	if err != nil {
		return nil, fmt.Errorf("arping %s from %s: %w", ip, h.Name, err)
	}
	for _, line := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(line, " bytes from "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return net.ParseMAC(f[0])
			}
		}
	}
	return nil, fmt.Errorf("arping %s from %s: no reply in %q", ip, h.Name, out)
}

// Ndisc6 sends one Neighbor Solicitation for ip from eth0 and returns the
// target link-layer address of the advertisement that answered.
func (h *Host) Ndisc6(ctx context.Context, ip string) (net.HardwareAddr, error) {
	out, err := h.Run(ctx, "ndisc6", "-1", "-r", "1", "-w", "1000", ip, "eth0")
	if err != nil {
		return nil, fmt.Errorf("ndisc6 %s from %s: %w", ip, h.Name, err)
	}
	for _, line := range strings.Split(out, "\n") {
		if _, mac, ok := strings.Cut(line, "Target link-layer address:"); ok {
			return net.ParseMAC(strings.TrimSpace(mac))
		}
	}
	return nil, fmt.Errorf("ndisc6 %s from %s: no advertisement in %q", ip, h.Name, out)
}

// Neighbor returns the MAC the host's neighbour table holds for ip (nil if none).
func (h *Host) Neighbor(ctx context.Context, ip string) (net.HardwareAddr, error) {
	out, err := h.Run(ctx, "ip", "neigh", "show", ip, "dev", "eth0")
	if err != nil {
		return nil, err
	}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return net.ParseMAC(f[i+1])
		}
	}
	return nil, nil
}

// MAC returns the MAC address of the host's eth0.
func (h *Host) MAC() (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := h.NS.Do(func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		mac = ifc.HardwareAddr
		return nil
	})
	return mac, err
}

// AddRoute adds a kernel route in the host's namespace ("203.0.113.0/24",
// via "10.1.0.1"); the external client uses it to send a prefix through BIRD.
func (h *Host) AddRoute(ctx context.Context, prefix netip.Prefix, via netip.Addr) error {
	return ipBatch(ctx, h.NS, "route replace "+prefix.String()+" via "+via.String())
}

// DelRoute removes a route AddRoute added.
func (h *Host) DelRoute(ctx context.Context, prefix netip.Prefix) error {
	return ipBatch(ctx, h.NS, "route del "+prefix.String())
}
