package allocator

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

var randomSeed = flag.Uint64("allocator.seed", 0, "seed for TestRandomAgainstModel (0: from the clock)")

// TestRandomAgainstModel runs long random sequences of Allocate, Assign,
// Release and SetPools over a few small pools and checks every step against
// the model: the same answer for fresh allocations, same evictions, same
// Stats, never an IP held by two Services that may not share, and nothing
// left behind once everything is released.
func TestRandomAgainstModel(t *testing.T) {
	seed := *randomSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun: go test -run TestRandomAgainstModel ./controller/allocator -args -allocator.seed=%d)", seed, seed)
	steps := 4000
	if testing.Short() {
		steps = 500
	}
	for run := uint64(0); run < 4; run++ {
		runRandom(t, seed+run, steps)
	}
}

// universe holds every address the random pools can contain, plus a few outside.
var universe = func() []netip.Addr {
	var out []netip.Addr
	for _, r := range []Range{
		iprange("198.51.100.0", "198.51.100.12"), iprange("198.51.100.250", "198.51.101.6"),
		iprange("203.0.113.0", "203.0.113.5"), iprange("2001:db8::", "2001:db8::8"),
		iprange("2001:db8:1::", "2001:db8:1::4"),
	} {
		for ip := r.First; !r.Last.Less(ip); ip = ip.Next() {
			out = append(out, ip)
		}
	}
	return out
}()

type randomRun struct {
	t    *testing.T
	r    *rand.Rand
	a    *Allocator
	m    *model
	step int
	seed uint64
}

func runRandom(t *testing.T, seed uint64, steps int) {
	x := &randomRun{t: t, r: rand.New(rand.NewPCG(seed, seed^0x5eed)), a: New(), m: &model{held: map[string]modelHolding{}}, seed: seed}
	x.setPools(x.randomPools())
	for x.step = 0; x.step < steps; x.step++ {
		switch n := x.r.IntN(100); {
		case n < 45:
			x.allocate()
		case n < 60:
			x.assign()
		case n < 88:
			x.release(x.randomService())
		default:
			x.setPools(x.randomPools())
		}
		x.compare()
	}
	for _, s := range x.services() {
		x.release(s)
	}
	x.compare()
	if len(x.a.ips) != 0 || len(x.a.services) != 0 || len(x.a.shared) != 0 {
		x.fatalf("leak after releasing everything: %d IPs, %d Services, %d keys", len(x.a.ips), len(x.a.services), len(x.a.shared))
	}
	for _, s := range x.a.allSpans {
		if !s.used.empty() || s.inUse != 0 {
			x.fatalf("leak: a span still has %d addresses in use", s.inUse)
		}
	}
	for _, st := range x.a.Stats() {
		if st.Assigned != 0 || st.Available != st.Total {
			x.fatalf("leak: %+v", st)
		}
	}
}

func (x *randomRun) fatalf(format string, args ...any) {
	x.t.Helper()
	x.t.Fatalf("seed %d step %d: %s", x.seed, x.step, fmt.Sprintf(format, args...))
}

func (x *randomRun) services() []string {
	var out []string
	for _, ns := range []string{"default", "prod", "dev"} {
		for i := range 6 {
			out = append(out, fmt.Sprintf("%s/s%d", ns, i))
		}
	}
	return out
}

func (x *randomRun) randomService() string { s := x.services(); return s[x.r.IntN(len(s))] }

func pick[T any](r *rand.Rand, choices ...T) T { return choices[r.IntN(len(choices))] }

func (x *randomRun) randomRequest() Request {
	svc := x.randomService()
	ns := svc[:len(svc)-3]
	req := Request{
		Service:              svc,
		NamespaceLabels:      map[string]string{"team": map[string]string{"prod": "blue"}[ns]},
		Families:             pick(x.r, v4, v4, v6, dual, dualV6v4),
		FamilyPolicy:         pick(x.r, SingleStack, SingleStack, PreferDualStack, RequireDualStack),
		SharingKey:           pick(x.r, "", "", "k1", "k2"),
		LocalTrafficSelector: pick(x.r, "", "", "app=x", "app=y"),
		SharingNamespaces:    pick(x.r, nil, nil, []string{"*"}, []string{"prod"}, []string{"default", "dev"}),
	}
	if x.r.IntN(3) == 0 {
		req.ServiceLabels = map[string]string{"tier": "front"}
	}
	for _, p := range []Port{{"TCP", 80}, {"tcp", 443}, {"UDP", 53}, {"", 53}} {
		if x.r.IntN(3) == 0 {
			req.Ports = append(req.Ports, p)
		}
	}
	if x.r.IntN(7) == 0 {
		req.Pool = pick(x.r, "a", "b", "c", "d", "e", "zz")
	}
	if x.r.IntN(6) == 0 {
		for _, f := range modelFamilies(req) {
			if x.r.IntN(2) == 0 {
				req.IPs = append(req.IPs, x.randomIP(f))
			}
		}
	}
	return req
}

func (x *randomRun) randomIP(f Family) netip.Addr {
	for {
		if ip := universe[x.r.IntN(len(universe))]; familyOf(ip) == f {
			return ip
		}
	}
}

func (x *randomRun) randomPools() []Pool {
	pools := []Pool{
		{Name: "a", Ranges: []Range{iprange("198.51.100.0", pick(x.r, "198.51.100.3", "198.51.100.7")), iprange("2001:db8::", "2001:db8::5")}, AutoAssign: true},
		{Name: "b", Ranges: []Range{iprange(pick(x.r, "198.51.100.250", "198.51.100.254"), "198.51.101.6")}, AutoAssign: true, AvoidBuggyIPs: x.r.IntN(2) == 0},
		{Name: "c", Ranges: []Range{iprange("203.0.113.0", "203.0.113.3")}, AutoAssign: x.r.IntN(4) == 0},
		{Name: "d", Ranges: []Range{iprange("2001:db8:1::", "2001:db8:1::3"), iprange("203.0.113.4", "203.0.113.5")}, AutoAssign: true,
			AllocateTo: AllocateTo{Namespaces: []string{"prod"}}},
		// e overlaps a: an address taken through one is taken in the other.
		{Name: "e", Ranges: []Range{iprange("198.51.100.4", "198.51.100.12"), iprange("2001:db8::4", "2001:db8::8")}, AutoAssign: true,
			AllocateTo: AllocateTo{ServiceSelectors: []labels.Selector{sel("tier=front")}}},
	}
	for i := range pools {
		pools[i].AllocateTo.Priority = x.r.IntN(3)
	}
	if x.r.IntN(3) == 0 {
		pools[3].AllocateTo = AllocateTo{NamespaceSelectors: []labels.Selector{sel("team=blue")}}
	}
	x.r.Shuffle(len(pools), func(i, j int) { pools[i], pools[j] = pools[j], pools[i] })
	return pools[:2+x.r.IntN(4)]
}

func (x *randomRun) setPools(pools []Pool) {
	got := x.a.SetPools(pools)
	want := x.m.setPools(pools)
	if !slices.Equal(got, want) {
		x.fatalf("SetPools evicted %v, model %v", got, want)
	}
}

func (x *randomRun) allocate() {
	req := x.randomRequest()
	_, wasHeld := x.m.held[req.Service]
	before, _ := x.a.Lookup(req.Service)
	got, err := x.a.Allocate(req)
	if !wasHeld {
		pool, ips, ok := x.m.freshAllocate(req)
		switch {
		case ok != (err == nil):
			x.fatalf("Allocate(%+v) = %v, %v; model says ok=%v %s %v", req, got, err, ok, pool, ips)
		case ok && (got.Pool != pool || !slices.Equal(got.IPs, ips)):
			x.fatalf("Allocate(%+v) = %s %v; model says %s %v", req, got.Pool, got.IPs, pool, ips)
		}
	}
	if err != nil {
		x.unchanged(req.Service, before, err)
		return
	}
	if again, err := x.a.Allocate(req); err != nil || again.Pool != got.Pool || !slices.Equal(again.IPs, got.IPs) {
		x.fatalf("Allocate is not idempotent for %+v: %v then %v, %v", req, got, again, err)
	}
	for _, ip := range req.IPs {
		if !slices.Contains(got.IPs, ip) {
			x.fatalf("requested %s, got %v", ip, got.IPs)
		}
	}
	fams := modelFamilies(req)
	if req.FamilyPolicy == RequireDualStack && len(got.IPs) != 2 {
		x.fatalf("RequireDualStack got %v", got.IPs)
	}
	for i, ip := range got.IPs {
		if !slices.Contains(fams, familyOf(ip)) || (i > 0 && familyOf(ip) == familyOf(got.IPs[0])) {
			x.fatalf("families %v got %v", fams, got.IPs)
		}
	}
	x.m.held[req.Service] = modelHolding{req: req, pool: got.Pool, ips: got.IPs}
}

func (x *randomRun) assign() {
	req := x.randomRequest()
	var ips []netip.Addr
	for _, f := range modelFamilies(req) {
		if x.r.IntN(3) > 0 {
			ips = append(ips, x.randomIP(f))
		}
	}
	if len(ips) == 0 {
		return
	}
	before, _ := x.a.Lookup(req.Service)
	if err := x.a.Assign(req, ips); err != nil {
		x.unchanged(req.Service, before, err)
		return
	}
	for _, ip := range ips {
		if !x.m.usable(req, ip) {
			x.fatalf("Assign(%+v, %v) accepted %s, which the model says is taken", req, ips, ip)
		}
	}
	got, _ := x.a.Lookup(req.Service)
	x.m.held[req.Service] = modelHolding{req: req, pool: got.Pool, ips: got.IPs}
}

func (x *randomRun) release(s string) {
	_, want := x.m.held[s]
	if got := x.a.Release(s); got != want {
		x.fatalf("Release(%s) = %v, model %v", s, got, want)
	}
	delete(x.m.held, s)
}

func (x *randomRun) unchanged(s string, before Assignment, err error) {
	var re *reasonError
	if !errors.As(err, &re) || re.msg == "" {
		x.fatalf("error %v carries no reason", err)
	}
	after, _ := x.a.Lookup(s)
	if after.Pool != before.Pool || !slices.Equal(after.IPs, before.IPs) {
		x.fatalf("refused call (%v) changed %s from %v to %v", err, s, before, after)
	}
}

// compare checks the allocator against the model after every step.
func (x *randomRun) compare() {
	x.t.Helper()
	checkInvariants(x.t, x.a)
	for _, s := range x.services() {
		got, ok := x.a.Lookup(s)
		h, want := x.m.held[s]
		if ok != want || (ok && (got.Pool != h.pool || !slices.Equal(got.IPs, h.ips))) {
			x.fatalf("%s holds %v %v, model %v %v", s, got, ok, h, want)
		}
		if !ok {
			continue
		}
		p, _ := x.m.pool(h.pool)
		for _, ip := range h.ips {
			if !x.m.contains(p, ip) {
				x.fatalf("%s holds %s outside its pool %q", s, ip, h.pool)
			}
			for o, oh := range x.m.held {
				if o != s && slices.Contains(oh.ips, ip) && !mayShare(h.req, oh.req) {
					x.fatalf("%s held by %s and %s, which may not share", ip, s, o)
				}
			}
		}
	}
	if got, want := x.a.Stats(), x.m.stats(); !slices.Equal(got, want) {
		x.fatalf("Stats = %+v\nmodel %+v", got, want)
	}
}
