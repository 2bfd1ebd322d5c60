package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/heraldlb/herald/internal/netns"
)

// ipBatch runs iproute2 commands (one per line, without the leading "ip")
// inside ns in a single process.
func ipBatch(ctx context.Context, ns *netns.NS, lines ...string) error {
	if len(lines) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, "ip", "-n", ns.Name, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s -batch: %w: %s (commands: %q)", ns.Name, err, strings.TrimSpace(string(out)), lines)
	}
	return nil
}

// sysctls writes /proc/sys/<key> values inside ns.
func sysctls(ns *netns.NS, kv ...string) error {
	return ns.Do(func() error {
		for i := 0; i+1 < len(kv); i += 2 {
			if err := os.WriteFile("/proc/sys/"+kv[i], []byte(kv[i+1]), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s in %s: %w", kv[i], kv[i+1], ns.Name, err)
			}
		}
		return nil
	})
}

// baseSysctls apply to every lab namespace, before its links exist: no
// duplicate address detection (addresses are usable at once), loose reverse
// path checks (ECMP and asymmetric paths are the point of the lab), and
// addresses that survive a link going down (a cut link must come back as it was).
var baseSysctls = []string{
	"net/ipv6/conf/all/accept_dad", "0",
	"net/ipv6/conf/default/accept_dad", "0",
	"net/ipv4/conf/all/rp_filter", "0",
	"net/ipv4/conf/default/rp_filter", "0",
	"net/ipv6/conf/all/keep_addr_on_down", "1",
	"net/ipv6/conf/default/keep_addr_on_down", "1",
}

// forwardingSysctls make a namespace route (nodes route for their pods).
// Redirects are off: on a flat LAN they would teach hosts to bypass a hop.
var forwardingSysctls = []string{
	"net/ipv4/ip_forward", "1",
	"net/ipv6/conf/all/forwarding", "1",
	"net/ipv6/conf/default/forwarding", "1",
	"net/ipv4/conf/all/send_redirects", "0",
	"net/ipv4/conf/default/send_redirects", "0",
}

// addrLines returns the ip commands that put v4 and v6 (nodad) on dev.
func addrLines(dev, v4, v6 string) []string {
	return []string{
		"addr add " + v4 + " dev " + dev,
		"addr add " + v6 + " dev " + dev + " nodad",
	}
}

// sysctlsExisting is sysctls that skips keys absent in ns (an interface
// that does not exist yet).
func sysctlsExisting(ns *netns.NS, kv ...string) error {
	return ns.Do(func() error {
		for i := 0; i+1 < len(kv); i += 2 {
			err := os.WriteFile("/proc/sys/"+kv[i], []byte(kv[i+1]), 0o644)
			if err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("sysctl %s=%s in %s: %w", kv[i], kv[i+1], ns.Name, err)
			}
		}
		return nil
	})
}

// nftLoad loads an nftables ruleset into ns.
func nftLoad(ctx context.Context, ns *netns.NS, rules string) error {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: nft in %s: %w: %s\n%s", ns.Name, err, out, rules)
	}
	return nil
}
