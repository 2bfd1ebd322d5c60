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
)

// Smoke test of the BGP wiring: with a BGPPeer for the lab's FRR router and
// a BGPAdvertisement, a Service's IP appears at FRR with every node as a
// next hop, the sessions show in the SpeakerStatus, and the external client
// reaches the Service through FRR. (The BGP end-to-end tests live elsewhere.)
func TestBGPRouteAppearsAtFRR(t *testing.T) {
	e := herald(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	asn := int64(64512)
	objs := []*v1beta1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "frr"}, Spec: v1beta1.BGPPeerSpec{
		MyASN: 64500, PeerASN: &asn, PeerAddress: e.FRR.IPv4.String(), HoldTime: &metav1.Duration{Duration: 9 * time.Second},
		KeepaliveTime: &metav1.Duration{Duration: 3 * time.Second}, ConnectTime: &metav1.Duration{Duration: time.Second},
	}}}
	pool := &v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/24"}, AutoAssign: new(bool)}}
	adv := &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1beta1.BGPAdvertisementSpec{
		PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, Communities: []v1beta1.Community{"64500:100"}}}
	if err := e.createAll(ctx, objs[0], pool, adv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.c.Delete(ctx, adv)
		_ = e.c.Delete(ctx, objs[0])
		_ = e.c.Delete(ctx, pool)
	})
	w := e.deploy(t, workloadSpec{name: "bgp", replicas: 3, pool: "routed", family: "IPv4"})
	prefix := netip.PrefixFrom(addrOf(w.ips[0]), 32)

	var want []netip.Addr
	for _, n := range e.Nodes {
		want = append(want, n.IPv4)
	}
	err := poll(ctx, 200*time.Millisecond, func() error {
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
	err = poll(ctx, 200*time.Millisecond, func() error {
		st, err := e.statuses(ctx)
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
	if rep, err := e.Ext.Get(ctx, "http://"+w.ips[0]+"/"); err != nil {
		t.Fatalf("GET %s from the external client through FRR: %v", w.ips[0], err)
	} else {
		t.Logf("%s: 3 next hops at FRR, answered by %s on %s", prefix, rep.Pod, rep.Node)
	}
}
