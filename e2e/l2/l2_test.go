package l2

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/poll"
	"github.com/heraldlb/herald/internal/testenv"
)

// A dual-stack Service's two addresses each answer HTTP from the LAN
// client through the node that announces it, and exactly that node answers
// ARP (IPv4) or NDP (IPv6) for it.
func TestServiceAnswersThroughItsOwnerOverIPv4AndIPv6(t *testing.T) {
	e := herald(t)
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "web", Replicas: 3})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ip := range w.IPs {
		owner, err := e.WaitOwner(ctx, ip)
		if err != nil {
			t.Fatalf("%s: %v", ip, err)
		}
		rep, err := e.Client.GetEventually(ctx, lab.URL(ip, 80))
		if err != nil {
			t.Fatal(err)
		}
		ans, err := e.Answerers(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ans, []string{owner}) {
			t.Errorf("%s: answered by %v, want only its owner %s", ip, ans, owner)
		}
		// The client sends to the owner's MAC.
		mac, err := e.Client.Neighbor(ctx, ip)
		if err != nil || mac == nil || e.NodeOfMAC(mac.String()) != owner {
			t.Errorf("%s: the client's neighbour entry is %v (%v), want %s's MAC", ip, mac, err, owner)
		}
		t.Logf("%s: owner %s, answered by pod %s on %s", ip, owner, rep.Pod, rep.Node)
	}
	// SpeakerStatus: each address announced once, skipped by the others.
	st, err := e.SpeakerStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range w.IPs {
		var announced, skipped int
		for _, s := range st {
			for _, a := range s.L2Announcements {
				if a.IP == ip {
					announced++
					if fmt.Sprint(a.Services) != "[t-web/web]" || len(a.Interfaces) != 1 || a.Interfaces[0] != "eth0" {
						t.Errorf("announcement %+v", a)
					}
				}
			}
			for _, k := range s.L2Skipped {
				if k.IP == ip && k.Reason == "OwnedByOtherNode" {
					skipped++
				}
			}
		}
		if announced != 1 || skipped != len(e.Nodes)-1 {
			t.Errorf("%s: announced by %d nodes, skipped as owned elsewhere by %d; want 1 and %d", ip, announced, skipped, len(e.Nodes)-1)
		}
	}
	// The owner of the IPv4 address says so in its metrics, and answered
	// the client's ARP requests.
	owner, err := e.WaitOwner(ctx, w.IPs[0])
	if err != nil {
		t.Fatal(err)
	}
	err = poll.Until(ctx, 200*time.Millisecond, func() error {
		m, err := e.SpeakerMetrics(ctx, owner)
		if err != nil {
			return err
		}
		for _, want := range []string{
			`herald_l2_owned_ips{family="ipv4"} 1`,
			`herald_memberlist_members{state="alive"} 3`,
			`herald_speaker_services 1`,
			`herald_speaker_l2_takeover_allowed 1`,
			`herald_l2_requests_answered_total{interface="eth0",protocol="arp"}`,
			`herald_l2_gratuitous_sent_total{interface="eth0",protocol="arp"}`,
		} {
			if !strings.Contains(m, want) {
				return fmt.Errorf("%s's metrics lack %s", owner, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	// The endpoint listens on the node address only, and answers only a
	// caller the API server authorizes.
	n := e.Node(owner)
	if c, err := lab.DialContext(ctx, n.NS, "tcp", "127.0.0.1:"+strconv.Itoa(lab.SpeakerMetricsPort)); err == nil {
		_ = c.Close()
		t.Errorf("%s's speaker serves metrics on loopback too, not only on its node address", owner)
	}
	url := "https://" + net.JoinHostPort(n.IPv4.String(), strconv.Itoa(lab.SpeakerMetricsPort)) + "/metrics"
	if code, body, err := testenv.Scrape(ctx, lab.Dialer(n.NS), url, ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("%s without a token: %d %v %.100s, want 401", url, code, err, body)
	}
}
