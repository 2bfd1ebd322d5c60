package l2

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// A dual-stack Service's two addresses each answer HTTP from the LAN
// client through the node that announces it, and exactly that node answers
// ARP (IPv4) or NDP (IPv6) for it.
func TestServiceAnswersThroughItsOwnerOverIPv4AndIPv6(t *testing.T) {
	e := herald(t)
	w := e.deploy(t, workloadSpec{name: "web", replicas: 3})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ip := range w.ips {
		owner, err := e.waitOwner(ctx, ip)
		if err != nil {
			t.Fatalf("%s: %v", ip, err)
		}
		node, pod, err := e.get(ctx, ip)
		if err != nil {
			t.Fatalf("GET %s from the LAN client: %v", ip, err)
		}
		ans, err := e.answerers(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ans, []string{owner}) {
			t.Errorf("%s: answered by %v, want only its owner %s", ip, ans, owner)
		}
		// The client sends to the owner's MAC.
		mac, err := e.Client.Neighbor(ctx, ip)
		if err != nil || mac == nil || e.macs[mac.String()] != owner {
			t.Errorf("%s: the client's neighbour entry is %v (%v), want %s's MAC", ip, mac, err, owner)
		}
		t.Logf("%s: owner %s, answered by pod %s on %s", ip, owner, pod, node)
	}
	// SpeakerStatus: each address announced once, skipped by the others.
	st, err := e.statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range w.ips {
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
}
