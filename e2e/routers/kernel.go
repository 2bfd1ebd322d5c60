package routers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/heraldlb/herald/internal/netns"
	"github.com/heraldlb/herald/internal/poll"
)

// TuneKernel prepares a router namespace: forwarding on, ICMP redirects off
// (in a flat lab a redirect would pin all traffic to one next hop) and the
// layer-4 multipath hash, so ECMP spreads flows over next hops, for IPv4 and
// IPv6. Interfaces added later inherit "default"; call it again after adding
// links created elsewhere, since a moved veth keeps its own settings.
func TuneKernel(ns *netns.NS) error {
	return ns.Do(func() error {
		settings := map[string]string{
			"net/ipv4/ip_forward":                    "1",
			"net/ipv6/conf/all/forwarding":           "1",
			"net/ipv6/conf/default/forwarding":       "1",
			"net/ipv4/fib_multipath_hash_policy":     "1",
			"net/ipv6/fib_multipath_hash_policy":     "1",
			"net/ipv4/conf/all/send_redirects":       "0",
			"net/ipv4/conf/default/send_redirects":   "0",
			"net/ipv4/conf/all/accept_redirects":     "0",
			"net/ipv4/conf/default/accept_redirects": "0",
			"net/ipv6/conf/all/accept_redirects":     "0",
			"net/ipv6/conf/default/accept_redirects": "0",
		}
		// IPv4 sends a redirect if "all" or the interface allows it, so
		// every existing interface is switched off as well.
		ifaces, err := filepath.Glob("/proc/sys/net/ipv4/conf/*")
		if err != nil {
			return err
		}
		for _, dir := range ifaces {
			name := filepath.Base(dir)
			settings["net/ipv4/conf/"+name+"/send_redirects"] = "0"
			settings["net/ipv4/conf/"+name+"/accept_redirects"] = "0"
			if _, err := os.Stat("/proc/sys/net/ipv6/conf/" + name); err == nil {
				settings["net/ipv6/conf/"+name+"/accept_redirects"] = "0"
			}
		}
		for key, value := range settings {
			if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
				return fmt.Errorf("routers: sysctl %s=%s in %s: %w", key, value, ns.Name, err)
			}
		}
		return nil
	})
}

// KernelRoute is a route in a namespace's main kernel table ("ip -j route").
type KernelRoute struct {
	Dst      string          `json:"dst"`
	Gateway  string          `json:"gateway"`
	Dev      string          `json:"dev"`
	Protocol string          `json:"protocol"` // "bgp" (FRR), "bird", "static", ...
	Type     string          `json:"type"`     // "blackhole" for blackholes, else empty
	NextHops []KernelNextHop `json:"nexthops"`
}

// KernelNextHop is one next hop of a multipath kernel route.
type KernelNextHop struct {
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
}

// Gateways lists every next hop of the route (one, or several for ECMP).
func (k KernelRoute) Gateways() []string {
	if len(k.NextHops) == 0 {
		if k.Gateway == "" {
			return nil
		}
		return []string{k.Gateway}
	}
	var gws []string
	for _, nh := range k.NextHops {
		gws = append(gws, nh.Gateway)
	}
	return gws
}

// KernelRouteFor returns the main-table route for exactly prefix in ns,
// or ErrNotFound: what the router would really forward with.
func KernelRouteFor(ctx context.Context, ns *netns.NS, prefix netip.Prefix) (KernelRoute, error) {
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := ns.Run(ctx, "ip", "-j", family, "route", "show", "table", "main", "exact", prefix.Masked().String())
	if err != nil {
		return KernelRoute{}, err
	}
	var routes []KernelRoute
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return KernelRoute{}, fmt.Errorf("routers: ip route in %s: %w: %.200s", ns.Name, err, out)
	}
	if len(routes) == 0 {
		return KernelRoute{}, fmt.Errorf("kernel route %s in %s: %w", prefix, ns.Name, ErrNotFound)
	}
	// IPv6 multipath routes may come back as one entry per next hop.
	r := routes[0]
	if len(routes) > 1 && prefix.Addr().Is6() {
		for _, x := range routes {
			r.NextHops = append(r.NextHops, KernelNextHop{Gateway: x.Gateway, Dev: x.Dev})
		}
	}
	return r, nil
}

// WaitIPv6Ready waits until every link of ns that is up with a carrier has
// a usable link-local address and no address is tentative (duplicate
// address detection done). BIRD needs a usable link-local address before an
// IPv6 channel on a direct session accepts a link-local next hop, and FRR
// before it sends one. Checking only for tentative addresses is not enough:
// the kernel adds the link-local address a moment after the carrier comes
// up, so an early check finds nothing tentative because nothing is there yet.
func WaitIPv6Ready(ctx context.Context, ns *netns.NS) error {
	return within(ctx, 10*time.Second, func() error {
		// All families: "ip -6" leaves out links that have no IPv6 address yet.
		out, err := ns.Run(ctx, "ip", "-j", "addr", "show")
		if err != nil {
			return err
		}
		var links []struct {
			Name     string   `json:"ifname"`
			Flags    []string `json:"flags"`
			LinkType string   `json:"link_type"`
			AddrInfo []struct {
				Family    string `json:"family"`
				Local     string `json:"local"`
				Scope     string `json:"scope"`
				Tentative bool   `json:"tentative"`
			} `json:"addr_info"`
		}
		if err := json.Unmarshal([]byte(out), &links); err != nil {
			return poll.Stop(fmt.Errorf("ip -j addr show in %s: %w", ns.Name, err))
		}
		for _, l := range links {
			linkLocal := false
			for _, a := range l.AddrInfo {
				if a.Family != "inet6" {
					continue
				}
				if a.Tentative {
					return fmt.Errorf("IPv6 in %s: %s: %s is tentative", ns.Name, l.Name, a.Local)
				}
				linkLocal = linkLocal || a.Scope == "link"
			}
			if !linkLocal && l.LinkType == "ether" && slices.Contains(l.Flags, "LOWER_UP") {
				return fmt.Errorf("IPv6 in %s: %s has no link-local address yet", ns.Name, l.Name)
			}
		}
		return nil
	})
}
