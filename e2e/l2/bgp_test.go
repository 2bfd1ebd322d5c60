package l2

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
)

// Smoke test of the BGP wiring: with a BGPPeer for the lab's FRR router and
// a BGPAdvertisement, a Service's IP appears at FRR with every node as a
// next hop, the sessions show in the SpeakerStatus, and the external client
// reaches the Service through FRR. (The BGP end-to-end tests live elsewhere.)
func TestBGPRouteAppearsAtFRR(t *testing.T) {
	e := herald(t)
	ctx := labtest.Context(t, 2*time.Minute)
	peer := lab.BGPPeer("frr", e.FRR.IPv4, lab.NodeASN, lab.FRRASN)
	pool := lab.ManualPool("routed", "203.0.113.0/24")
	adv := &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1beta1.BGPAdvertisementSpec{
		PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, Communities: []v1beta1.Community{"64500:100"}}}
	if err := e.Create(ctx, peer, pool, adv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.API.Delete(ctx, adv)
		_ = e.API.Delete(ctx, peer)
		_ = e.API.Delete(ctx, pool)
	})
	w := labtest.Deploy(t, e.Lab, lab.WorkloadSpec{Name: "bgp", Replicas: 3, Pool: "routed", Family: "IPv4"})
	prefix := netip.PrefixFrom(netip.MustParseAddr(w.IPs[0]), 32)

	want := e.NodeAddrs(false)
	err := lab.Poll(ctx, 200*time.Millisecond, func() error {
		r, err := e.FRR.FRR.BGPRoute(ctx, prefix)
		if err != nil {
			return err
		}
		var hops []netip.Addr
		for _, p := range r.Paths {
			for _, nh := range p.NextHops {
				hops = append(hops, nh.IP)
			}
			if !slices.Contains(p.Communities, "64500:100") {
				return fmt.Errorf("path %+v lacks community 64500:100", p)
			}
		}
		slices.SortFunc(hops, netip.Addr.Compare)
		if !slices.Equal(hops, want) {
			return fmt.Errorf("next hops %v, want %v", hops, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("route %s at FRR: %v", prefix, err)
	}
	err = lab.Poll(ctx, 200*time.Millisecond, func() error {
		st, err := e.SpeakerStatuses(ctx)
		if err != nil {
			return err
		}
		for _, n := range e.Nodes {
			s := st[n.Name]
			if s.Sessions != 1 || s.SessionsEstablished != 1 || s.BGPSessions[0].Peer != "frr" || s.BGPSessions[0].PrefixesSent < 1 {
				return fmt.Errorf("%s BGP status %+v", n.Name, s.BGPSessions)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if rep, err := e.Ext.Get(ctx, lab.URL(w.IPs[0], 80)); err != nil {
		t.Fatalf("GET %s from the external client through FRR: %v", w.IPs[0], err)
	} else {
		t.Logf("%s: 3 next hops at FRR, answered by %s on %s", prefix, rep.Pod, rep.Node)
	}
}
