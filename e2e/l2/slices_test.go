package l2

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testkit"
	"github.com/heraldlb/herald/internal/testkit/objects"
	"github.com/heraldlb/herald/speaker/election"
)

// The AnnouncementSlices of many Layer 2 Services through a failover: what
// they say, what a failover costs in writes, how long until they are right.

// slicePool: 16,384 on-link IPv6 addresses, announced by Layer 2 from every node.
const (
	slicePool  = "slices"
	sliceRange = "2001:db8:100::1:0/114"
)

// sliceServices creates the pool, its L2Advertisement and n IPv6 (opts: how)
// Services in namespace ns (which the caller creates), waits until the
// slices list all n, and returns each Service's address by "ns/name".
func (e *env) sliceServices(ctx context.Context, t *testing.T, sw *lab.SliceWatch, ns string, n int, opts ...objects.ServiceOption) map[string]netip.Addr {
	t.Helper()
	pool := objects.Pool(slicePool, false, sliceRange)
	adv := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: slicePool}, Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{slicePool}}}}
	if err := e.Create(ctx, pool, adv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.API.Delete(ctx, adv)
		_ = e.API.Delete(ctx, pool)
	})
	if err := e.CreateServices(ctx, ns, slicePool, corev1.IPv6Protocol, n, opts...); err != nil {
		t.Fatal(err)
	}
	// The slices name every Service once (a watch, not a List per check);
	// then one List reads the addresses the controller gave them.
	if _, err := sw.Wait(ctx, ns, func(as []lab.Announced) error {
		seen := map[string]bool{}
		for _, a := range as {
			seen[a.Service] = true
		}
		if len(seen) < n {
			return fmt.Errorf("%d of %d Services in the slices", len(seen), n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var list corev1.ServiceList
	if err := e.API.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	ips := map[string]netip.Addr{}
	for _, s := range list.Items {
		if got := k8s.IngressIPs(s.Status.LoadBalancer); len(got) == 1 {
			ips[ns+"/"+s.Name] = got[0]
		}
	}
	if len(ips) != n {
		t.Fatalf("%d of %d Services have one address", len(ips), n)
	}
	return ips
}

// owners is the node that announces each Service's address when the
// nodes live are up: every node is eligible (no selectors, traffic policy
// Cluster), so it is the first of the ranking.
func owners(ips map[string]netip.Addr, live []string) map[string]string {
	out := map[string]string{}
	for svc, ip := range ips {
		out[svc] = election.Owner(ip, live)
	}
	return out
}

// rightL2 checks that the slices say exactly this: each Service's address
// announced by Layer 2 on eth0 by its owner among live, nothing else.
func rightL2(ips map[string]netip.Addr, live []string) func([]lab.Announced) error {
	want := owners(ips, live)
	return func(as []lab.Announced) error {
		by := map[string][]string{}
		for _, a := range as {
			ip, ok := ips[a.Service]
			if !ok || a.IP != ip.String() || a.Protocol != v1beta1.ProtocolLayer2 || !slices.Equal(a.Interfaces, []string{"eth0"}) {
				return fmt.Errorf("unexpected entry %+v", a)
			}
			by[a.Service] = append(by[a.Service], a.Node)
		}
		wrong := 0
		var example string
		for svc, node := range want {
			if got := by[svc]; !slices.Equal(got, []string{node}) {
				wrong++
				example = fmt.Sprintf("%s (%s): announced by %v, want %s", svc, ips[svc], got, node)
			}
		}
		if wrong > 0 {
			return fmt.Errorf("%d Services not right, e.g. %s", wrong, example)
		}
		return nil
	}
}

// sliceTrial is one failover as the AnnouncementSlices tell it.
type sliceTrial struct {
	victim string
	// moved counts the Services whose announcing node changed: what a
	// status object per Service would cost in writes.
	moved int
	// failover and restore are the slice writes from the kill until 2 s
	// after the slices were right, and the same after the restart.
	failover, restore lab.SliceCounts
	// right: kill -> the slices right (the watch event that made them so);
	// wire: kill -> the last moved address's first unsolicited Neighbor
	// Advertisement from its new owner, at the client; restored: restart
	// -> the slices right again.
	right, wire, restored time.Duration
	// wireBack: restart -> the last moved address announced again by the
	// restarted node.
	wireBack time.Duration
	// timeline lists the slice writes after the kill.
	timeline []string
}

func (tr sliceTrial) String() string {
	return fmt.Sprintf("SIGKILL of %s's speaker: %d Services moved; slices right after %v (all moved on the wire after %v), %v; restart: right again after %v (all back on the wire after %v), %v",
		tr.victim, tr.moved, ms(tr.right), ms(tr.wire), tr.failover, ms(tr.restored), ms(tr.wireBack), tr.restore)
}

// sliceFailover kills victim's speaker, waits until the slices say where
// its Services went and counts the writes, then restarts it and does the
// same. It also times when the client saw every moved address announced by
// its new owner. during, if set, runs once the slices are right after the
// kill.
func (e *env) sliceFailover(ctx context.Context, sw *lab.SliceWatch, ns string, ips map[string]netip.Addr, victim string, during func() error) (sliceTrial, error) {
	tr := sliceTrial{victim: victim}
	all := e.NodeNames()
	survivors := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == victim })
	before, after := owners(ips, all), owners(ips, survivors)
	var movedIPs []string
	for svc, node := range before {
		if after[svc] != node {
			tr.moved++
			movedIPs = append(movedIPs, ips[svc].String())
		}
	}
	right := rightL2(ips, survivors)
	none := func(as []lab.Announced) error {
		if err := right(as); err != nil {
			return err
		}
		if names := sw.SliceNames(victim); len(names) > 0 {
			return fmt.Errorf("%s's slices %v are still there", victim, names)
		}
		return nil
	}
	capt, err := e.Client.StartCapture(ctx)
	if err != nil {
		return tr, err
	}
	c0 := sw.Counts()
	t0 := time.Now()
	if err := e.Speaker(victim).Kill(); err != nil {
		_, _ = capt.Stop()
		return tr, err
	}
	at, err := sw.Wait(ctx, ns, none)
	if err != nil {
		_, _ = capt.Stop()
		return tr, fmt.Errorf("after the kill of %s: %w", victim, err)
	}
	tr.right = at.Sub(t0)
	time.Sleep(2 * time.Second) // late writes count too
	tr.failover = sw.Counts().Sub(c0)
	tr.timeline = sw.Timeline(t0)
	msgs, err := capt.Stop()
	if err != nil {
		return tr, err
	}
	tr.wire = lastFirstAnnouncement(e, msgs, movedIPs, t0, func(node string) bool { return node != victim })
	if during != nil {
		if err := during(); err != nil {
			return tr, err
		}
	}

	if capt, err = e.Client.StartCapture(ctx); err != nil {
		return tr, err
	}
	c1 := sw.Counts()
	t1 := time.Now()
	if err := e.Speaker(victim).Start(); err != nil {
		_, _ = capt.Stop()
		return tr, err
	}
	at, err = sw.Wait(ctx, ns, rightL2(ips, all))
	if err != nil {
		_, _ = capt.Stop()
		return tr, fmt.Errorf("after the restart of %s: %w", victim, err)
	}
	tr.restored = at.Sub(t1)
	time.Sleep(2 * time.Second)
	tr.restore = sw.Counts().Sub(c1)
	if msgs, err = capt.Stop(); err != nil {
		return tr, err
	}
	tr.wireBack = lastFirstAnnouncement(e, msgs, movedIPs, t1, func(node string) bool { return node == victim })
	return tr, e.WaitMembers(ctx, len(all))
}

// lastFirstAnnouncement is, over ips, the latest first unsolicited
// announcement after t0 by a node that by accepts: when the last of them
// was announced by its new owner; -1 if one never was.
func lastFirstAnnouncement(e *env, msgs []lab.L2Message, ips []string, t0 time.Time, by func(string) bool) time.Duration {
	first := map[string]time.Duration{}
	for _, m := range msgs {
		if _, ok := first[m.IP]; !ok && m.Gratuitous && m.At.After(t0) && by(e.NodeOfMAC(m.MAC)) {
			first[m.IP] = m.At.Sub(t0)
		}
	}
	var last time.Duration
	for _, ip := range ips {
		d, ok := first[ip]
		if !ok {
			return -1
		}
		last = max(last, d)
	}
	return last
}

// busiest is the node that announces the most of the Services.
func busiest(ips map[string]netip.Addr, nodes []string) string {
	count := map[string]int{}
	best := nodes[0]
	for _, n := range owners(ips, nodes) {
		count[n]++
		if count[n] > count[best] {
			best = n
		}
	}
	return best
}

// 60 Services: the slices list each Service once, under its owner, which
// the client's Neighbor Solicitations confirm; kubectl finds one Service's
// announcing node by its label; a SIGKILL of the busiest node's speaker
// moves a third of the Services, and the slices follow within seconds in a
// few writes, fewer than the Services that moved; after the restart they
// are right again.
func TestAnnouncementSlicesFollowAFailover(t *testing.T) {
	e := herald(t)
	ctx := labtest.Context(t, 5*time.Minute)
	sw, err := e.WatchSlices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Stop()
	const ns, n = "t-slices", 60
	labtest.Namespace(t, e.Lab, ns)
	ips := e.sliceServices(ctx, t, sw, ns, n)
	all := e.NodeNames()
	if _, err := sw.Wait(ctx, ns, rightL2(ips, all)); err != nil {
		t.Fatal(err)
	}
	victim := busiest(ips, all)
	// One of the victim's Services, as a user would look it up.
	var svc string
	for s, node := range owners(ips, all) {
		if node == victim && (svc == "" || s < svc) {
			svc = s
		}
	}
	if err := e.lookUp(ctx, svc, ips[svc].String(), victim); err != nil {
		t.Fatal(err)
	}

	next := owners(ips, slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == victim }))[svc]
	tr, err := e.sliceFailover(ctx, sw, ns, ips, victim, func() error {
		return e.lookUp(ctx, svc, ips[svc].String(), next)
	})
	t.Log(tr)
	if err != nil {
		t.Fatal(err)
	}
	// Writes: each survivor's one slice, and the victim's deleted; a
	// status per Service would have cost one write per moved Service.
	if w := tr.failover.Total(); w > len(all) || w >= tr.moved {
		t.Errorf("the failover cost %v for %d moved Services; want at most %d, fewer than the Services", tr.failover, tr.moved, len(all))
	}
	if tr.failover.Deleted != 1 {
		t.Errorf("the failover deleted %d slices, want the victim's one", tr.failover.Deleted)
	}
	if tr.right > 10*time.Second || tr.restored > 30*time.Second {
		t.Errorf("slices right %v after the kill (bound 10 s), %v after the restart (bound 30 s)", tr.right, tr.restored)
	}
	if err := e.lookUp(ctx, svc, ips[svc].String(), victim); err != nil {
		t.Errorf("after the restart: %v", err)
	}
}

// lookUp finds the nodes announcing Service svc ("ns/name") with kubectl as
// docs/speaker.md shows, wants exactly owner with ip on eth0, and checks
// that owner answers the client's Neighbor Solicitations for ip.
func (e *env) lookUp(ctx context.Context, svc, ip, owner string) error {
	ns, name, _ := strings.Cut(svc, "/")
	label := v1beta1.ServiceLabel(ns, name)
	out, err := e.Kubectl(ctx, "get", "announcementslices", "-l", label, "-L", label)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], strings.ToUpper(name)) || strings.Fields(lines[1])[1] != owner || !strings.HasSuffix(lines[1], "Layer2") {
		return fmt.Errorf("kubectl get announcementslices -l %s -L %s:\n%s\nwant one line: %s ... Layer2", label, label, out, owner)
	}
	filter := fmt.Sprintf(`.services[?(@.service=="%s")].addresses[*]`, svc)
	out, err = e.Kubectl(ctx, "get", "announcementslices", "-l", label, "-o",
		"custom-columns=NODE:.node,ADDRESS:"+filter+".ip,PROTOCOL:"+filter+".protocol,INTERFACES:"+filter+".interfaces")
	if err != nil {
		return err
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != fmt.Sprintf(`%s %s Layer2 [eth0]`, owner, ip) {
		return fmt.Errorf("kubectl custom columns for %s:\n%s\nwant: %s %s Layer2 [eth0]", svc, out, owner, ip)
	}
	ans, err := e.Answerers(ctx, ip)
	if err != nil {
		return err
	}
	if !slices.Equal(ans, []string{owner}) {
		return fmt.Errorf("%s is answered by %v, the slices say %s", ip, ans, owner)
	}
	return nil
}

// TestMeasureSliceWrites measures, for docs/benchmarks.md, the writes and
// the time a Layer 2 failover costs the AnnouncementSlices with many
// Services (HERALD_MEASURE_SERVICES, default 10,000), over
// HERALD_MEASURE_TRIALS (default 5) SIGKILLs, each of another node:
//
//	HERALD_MEASURE=1 go test ./e2e/l2 -run TestMeasureSliceWrites -v -timeout 60m
func TestMeasureSliceWrites(t *testing.T) {
	if !labtest.Measuring() {
		t.Skip("measurement: set HERALD_MEASURE=1")
	}
	n, trials := testkit.EnvInt(t, "HERALD_MEASURE_SERVICES", 10000), testkit.EnvInt(t, "HERALD_MEASURE_TRIALS", 5)
	e := herald(t)
	ctx := labtest.Context(t, 50*time.Minute)
	labtest.WithoutKubeProxy(t, e.Lab)
	sw, err := e.WatchSlices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Stop()
	c0, start := sw.Counts(), time.Now()
	labtest.Namespace(t, e.Lab, "t-slicescale")
	ips := e.sliceServices(ctx, t, sw, "t-slicescale", n)
	all := e.NodeNames()
	at, err := sw.Wait(ctx, "t-slicescale", rightL2(ips, all))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d Services created and all right in the slices after %v: %v", n, at.Sub(start).Round(time.Millisecond), sw.Counts().Sub(c0))
	var results []sliceTrial
	for i := range trials {
		tr, err := e.sliceFailover(ctx, sw, "t-slicescale", ips, all[i%len(all)], nil)
		t.Logf("trial %d: %v\nslice writes after the kill: %s", i+1, tr, strings.Join(tr.timeline, ", "))
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, tr)
	}
	med := func(get func(sliceTrial) float64) float64 {
		var xs []float64
		for _, tr := range results {
			xs = append(xs, get(tr))
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	sec := func(d time.Duration) float64 { return d.Seconds() }
	t.Logf("medians over %d trials, %d Services: moved %.0f; failover writes %.0f (created %.0f, updated %.0f, deleted %.0f); slices right %.2f s after the kill, every moved address announced on the wire after %.2f s; restart: writes %.0f, right %.2f s after the start, every address back on the wire after %.2f s",
		len(results), n, med(func(tr sliceTrial) float64 { return float64(tr.moved) }),
		med(func(tr sliceTrial) float64 { return float64(tr.failover.Total()) }), med(func(tr sliceTrial) float64 { return float64(tr.failover.Added) }),
		med(func(tr sliceTrial) float64 { return float64(tr.failover.Modified) }), med(func(tr sliceTrial) float64 { return float64(tr.failover.Deleted) }),
		med(func(tr sliceTrial) float64 { return sec(tr.right) }), med(func(tr sliceTrial) float64 { return sec(tr.wire) }),
		med(func(tr sliceTrial) float64 { return float64(tr.restore.Total()) }), med(func(tr sliceTrial) float64 { return sec(tr.restored) }),
		med(func(tr sliceTrial) float64 { return sec(tr.wireBack) }))
}
