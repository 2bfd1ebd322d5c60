// Package outage takes the API server away from a running Herald for two
// minutes, hung (SIGSTOP) and then dead (SIGKILL), with clients probing a
// Layer 2 and a BGP address. It has a lab of its own: while the API server
// is gone nothing else can run.
package outage

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
)

func TestMain(m *testing.M) { os.Exit(labtest.Main(m, lab.Options{})) }

// outageLength is how long the API server stays away (HERALD_OUTAGE
// overrides it, for a quick run by hand).
func outageLength() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("HERALD_OUTAGE")); err == nil && d > 0 {
		return d
	}
	return 2 * time.Minute
}

// state is what must not change through an outage.
type state struct {
	ingress  map[string]string // Service key -> ingress IPs
	versions map[string]string // Service key -> resourceVersion
	owners   map[string]string // Layer 2 address -> node
	frr      map[string]routers.BGPNeighbor
}

func capture(ctx context.Context, h *lab.Herald, l2 []string) (state, error) {
	s := state{ingress: map[string]string{}, versions: map[string]string{}, owners: map[string]string{}, frr: map[string]routers.BGPNeighbor{}}
	var svcs corev1.ServiceList
	if err := h.API.List(ctx, &svcs); err != nil {
		return s, err
	}
	for _, svc := range svcs.Items {
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			s.ingress[k8s.ServiceKey(&svc)] = fmt.Sprint(k8s.IngressIPs(svc.Status.LoadBalancer))
			s.versions[k8s.ServiceKey(&svc)] = svc.ResourceVersion
		}
	}
	for _, ip := range l2 {
		o, err := h.WaitOwner(ctx, ip)
		if err != nil {
			return s, err
		}
		s.owners[ip] = o
	}
	n, err := h.FRR.FRR.BGPNeighbors(ctx)
	if err != nil {
		return s, err
	}
	for a, nb := range n {
		s.frr[a.String()] = nb
	}
	return s, nil
}

// Speakers keep announcing everything (Layer 2 and BGP) while the API
// server is hung or dead for two minutes, the controller releases nothing,
// and when it returns nothing moves: every Service keeps its IP, every
// Layer 2 address its owner, every BGP session stays up, and the clients'
// requests, one every 20 ms to each address, all succeed. A Service created
// right after the return gets its IP and answers. docs/benchmarks.md has
// the time to converge after the return.
func TestAPIServerOutage(t *testing.T) {
	l := labtest.Lab(t)
	h, err := labtest.StartHerald(l)
	if err != nil {
		t.Fatal(err)
	}
	ctx := labtest.Context(t, 15*time.Minute)
	peer := lab.BGPPeer("frr", l.FRR.IPv4, lab.NodeASN, lab.FRRASN)
	if err := h.Create(ctx,
		&v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"198.51.100.10-198.51.100.99", "2001:db8:100::10-2001:db8:100::99"}}},
		&v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan"}}}},
		peer, objects.Pool("routed", false, "203.0.113.0/24"),
		&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1beta1.BGPAdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}}},
	); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitMembers(ctx, len(l.Nodes)); err != nil {
		t.Fatal(err)
	}
	web := labtest.Deploy(t, l, lab.WorkloadSpec{Name: "web", Replicas: 3})
	routed := labtest.Deploy(t, l, lab.WorkloadSpec{Name: "routed", Replicas: 3, Family: "IPv4", Pool: "routed"})
	testkit.For(t, time.Minute, "the routed Service answers through FRR", func() error {
		_, err := l.Ext.Get(ctx, lab.URL(routed.IPs[0], 80))
		return err
	})

	kinds := []string{"hung", "dead"}
	if k := os.Getenv("HERALD_OUTAGE_KINDS"); k != "" { // "dead", for a run by hand
		kinds = strings.Split(k, ",")
	}
	for _, how := range kinds {
		t.Run(how, func(t *testing.T) {
			before, err := capture(ctx, h, web.IPs)
			if err != nil {
				t.Fatal(err)
			}
			// A 2 s timeout: the whole control plane retrying at once loads
			// the 2-core machine when the API server goes; a request that
			// waits out a TCP retransmission is still answered.
			opts := lab.ProbeOptions{Interval: 20 * time.Millisecond, Timeout: 2 * time.Second}
			l2probe := l.Client.StartProbe(lab.URL(web.IPs[0], 80), opts)
			v6probe := l.Client.StartProbe(lab.URL(web.IPs[1], 80), opts)
			bgpprobe := l.Ext.StartProbe(lab.URL(routed.IPs[0], 80), opts)
			capt, err := l.Client.StartCapture(ctx)
			if err != nil {
				t.Fatal(err)
			}
			api := l.Env.APIServer()
			if how == "hung" {
				err = api.Signal(syscall.SIGSTOP)
			} else {
				err = api.Kill()
			}
			if err != nil {
				t.Fatal(err)
			}
			gone := time.Now()
			// While it is away the clients keep being answered.
			testkit.Holds(t, outageLength(), "every request answered while the API server is "+how, func() error {
				for _, p := range []*lab.Probe{l2probe, v6probe, bgpprobe} {
					if sum := lab.Summarize(p.Samples()); sum.Failed > 0 {
						return fmt.Errorf("%d of %d requests failed (log %s)", sum.Failed, sum.Total, p.LogPath)
					}
				}
				return nil
			})
			if how == "hung" {
				err = api.Signal(syscall.SIGCONT)
			} else {
				err = l.Env.RestartAPIServer(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			back := time.Now()
			t.Logf("API server %s for %v", how, back.Sub(gone).Round(time.Second))

			// A Service created right after the return gets its IP and is
			// announced. (No pods: the scheduler and the lab's kubelet catch
			// up at client-go's own pace, which is not Herald's.)
			fresh := objects.Service("default", "fresh-"+how, objects.Families(corev1.IPFamilyPolicySingleStack, corev1.IPv4Protocol))
			if err := h.API.Create(ctx, fresh); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = h.API.Delete(context.Background(), fresh) })
			var freshIP string
			testkit.For(t, time.Minute, "the new Service gets its IP", func() error {
				if err := h.API.Get(ctx, client.ObjectKeyFromObject(fresh), fresh); err != nil {
					return err
				}
				ips := k8s.IngressIPs(fresh.Status.LoadBalancer)
				if len(ips) == 0 {
					return fmt.Errorf("no IP yet")
				}
				freshIP = ips[0].String()
				return nil
			})
			assigned := time.Since(back)
			if _, err := h.WaitOwner(ctx, freshIP); err != nil {
				t.Fatal(err)
			}
			answering := time.Since(back) // its owner's SpeakerStatus says it announces it
			if ans, err := h.Answerers(ctx, freshIP); err != nil || len(ans) != 1 {
				t.Fatalf("%s answered by %v (%v), want one node", freshIP, ans, err)
			}
			// Every speaker writes its status again.
			testkit.For(t, time.Minute, "every speaker writes its status again", func() error {
				st, err := h.SpeakerStatuses(ctx)
				if err != nil {
					return err
				}
				for _, n := range l.Nodes {
					if u := st[n.Name].UpdatedAt; u == nil || u.Time.Before(back.Truncate(time.Second)) {
						return fmt.Errorf("%s last wrote its status at %v", n.Name, u)
					}
				}
				return nil
			})
			statuses := time.Since(back)
			t.Logf("MEASURE after the API server returned (%s for %v): new Service's IP assigned within %v, announced (its owner's SpeakerStatus says so) after %v, every SpeakerStatus written after %v",
				how, back.Sub(gone).Round(time.Second), assigned.Round(time.Millisecond), answering.Round(time.Millisecond), statuses.Round(time.Millisecond))

			after, err := capture(ctx, h, web.IPs)
			if err != nil {
				t.Fatal(err)
			}
			for key, ips := range before.ingress {
				if after.ingress[key] != ips {
					t.Errorf("%s's IPs changed: %v -> %v", key, ips, after.ingress[key])
				}
				// The controller wrote nothing while catching up.
				if after.versions[key] != before.versions[key] {
					t.Errorf("%s was written during the catch-up (resourceVersion %s -> %s)", key, before.versions[key], after.versions[key])
				}
			}
			for ip, o := range before.owners {
				if after.owners[ip] != o {
					t.Errorf("%s moved: %s -> %s", ip, o, after.owners[ip])
				}
			}
			for a, nb := range before.frr {
				if n := after.frr[a]; !n.Established() || n.ConnectionsDropped != nb.ConnectionsDropped {
					t.Errorf("FRR's session with %s: %s, dropped %d -> %d", a, n.State, nb.ConnectionsDropped, n.ConnectionsDropped)
				}
			}
			msgs, err := capt.Stop()
			if err != nil {
				t.Fatal(err)
			}
			for ip, holders := range l.Holders(msgs, gone) {
				if o, ok := before.owners[ip]; ok && !slices.Equal(holders, []string{o}) {
					t.Errorf("%s claimed by %v, its owner is %s", ip, holders, o)
				}
			}
			for name, p := range map[string]*lab.Probe{"Layer 2 IPv4": l2probe, "Layer 2 IPv6": v6probe, "BGP": bgpprobe} {
				sum := lab.Summarize(p.Stop())
				t.Logf("%s probe: %d requests, %d failed", name, sum.Total, sum.Failed)
				if sum.Failed > 0 {
					t.Errorf("%s probe: %d of %d requests failed, longest outage %v (log %s)", name, sum.Failed, sum.Total, sum.LongestOutage, p.LogPath)
				}
			}
		})
	}
}
