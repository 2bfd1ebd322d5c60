package allocator

import (
	"net/netip"
	"testing"
)

// checkInvariants rebuilds, the slow and obvious way, what the allocator's
// indexes must say from its list of Services, and compares.
func checkInvariants(t *testing.T, a *Allocator) {
	t.Helper()
	holders := map[netip.Addr][]*holding{}
	for name, h := range a.services {
		if h.share.service != name {
			t.Fatalf("service %s stored under %s", h.share.service, name)
		}
		p := a.pools[h.pool]
		if p == nil {
			t.Fatalf("%s holds %v from missing pool %q", name, h.ips, h.pool)
		}
		if p.holders[name] != h {
			t.Fatalf("pool %q does not list its holder %s", h.pool, name)
		}
		if ok, why := p.serves(h.subject); !ok {
			t.Fatalf("%s is in pool %q, which %s", name, h.pool, why)
		}
		if len(h.ips) == 0 {
			t.Fatalf("%s holds no IP", name)
		}
		for _, ip := range h.ips {
			if !p.contains(ip) {
				t.Fatalf("%s holds %s outside its pool %q", name, ip, h.pool)
			}
			holders[ip] = append(holders[ip], h)
		}
	}
	for name, p := range a.pools {
		for svc, h := range p.holders {
			if a.services[svc] != h || h.pool != name {
				t.Fatalf("pool %q lists %s, which is not its holder", name, svc)
			}
		}
	}
	if len(holders) != len(a.ips) {
		t.Fatalf("%d IPs held, index has %d", len(holders), len(a.ips))
	}
	sharedCount := 0
	for ip, hs := range holders {
		e := a.ips[ip]
		if e == nil || len(e.holders) != len(hs) {
			t.Fatalf("index of %s is %v, want %d holders", ip, e, len(hs))
		}
		for i, x := range hs {
			for _, y := range hs[i+1:] {
				if err := canShare(x.share, y.share, ip, "IP"); err != nil {
					t.Fatalf("%s held by two Services that may not share: %v", ip, err)
				}
			}
		}
		if k := hs[0].share.key; k != "" {
			sharedCount++
			if _, ok := a.shared[k][ip]; !ok {
				t.Fatalf("%s held under key %q is missing from the sharing index", ip, k)
			}
		}
	}
	n := 0
	for _, set := range a.shared {
		n += len(set)
	}
	if n != sharedCount {
		t.Fatalf("sharing index has %d IPs, want %d", n, sharedCount)
	}
	for _, p := range a.pools {
		for _, s := range p.spans {
			var used int64
			for ip := range holders {
				if s.contains(ip) {
					used++
					if !s.used.contains(s.offset(ip)) {
						t.Fatalf("pool %q: %s in use but free in its span", p.def.Name, ip)
					}
				}
			}
			if used != s.inUse || used != countRuns(s) {
				t.Fatalf("pool %q span %v: %d in use, span counts %d, runs hold %d", p.def.Name, s.first, used, s.inUse, countRuns(s))
			}
		}
	}
}

func countRuns(s *span) int64 {
	var n int64
	s.used.runs(func(start, end u128) bool {
		n += end.sub(start).inc().int64()
		return true
	})
	return n
}
