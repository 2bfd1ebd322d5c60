package allocator

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// model is the reference for the randomized test: the same rules written the
// slow, obvious way, over small pools whose addresses it enumerates.
type model struct {
	pools []Pool
	held  map[string]modelHolding
}

type modelHolding struct {
	req  Request // as last accepted
	pool string
	ips  []netip.Addr
}

// addresses lists the addresses of one family a pool may hand out, ascending.
func (m *model) addresses(p Pool, f Family) []netip.Addr {
	set := map[netip.Addr]bool{}
	for _, r := range p.Ranges {
		if familyOf(r.First) != f {
			continue
		}
		for ip := r.First; ip.IsValid() && !r.Last.Less(ip); ip = ip.Next() {
			if !(p.AvoidBuggyIPs && isBuggyIPv4(ip)) {
				set[ip] = true
			}
		}
	}
	out := make([]netip.Addr, 0, len(set))
	for ip := range set {
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func (m *model) contains(p Pool, ip netip.Addr) bool {
	return slices.Contains(m.addresses(p, familyOf(ip)), ip)
}

func (m *model) pool(name string) (Pool, bool) {
	for _, p := range m.pools {
		if p.Name == name {
			return p, true
		}
	}
	return Pool{}, false
}

func modelServes(p Pool, r Request) bool {
	t := p.AllocateTo
	ns, _, _ := strings.Cut(r.Service, "/")
	if len(t.Namespaces)+len(t.NamespaceSelectors) > 0 {
		ok := slices.Contains(t.Namespaces, ns)
		for _, s := range t.NamespaceSelectors {
			ok = ok || s.Matches(labels.Set(r.NamespaceLabels))
		}
		if !ok {
			return false
		}
	}
	if len(t.ServiceSelectors) == 0 {
		return true
	}
	return slices.ContainsFunc(t.ServiceSelectors, func(s labels.Selector) bool { return s.Matches(labels.Set(r.ServiceLabels)) })
}

// ordered returns the pools in automatic-choice order.
func (m *model) ordered() []Pool {
	ps := slices.Clone(m.pools)
	slices.SortFunc(ps, func(x, y Pool) int {
		px, py := x.AllocateTo.Priority, y.AllocateTo.Priority
		if (px == 0) != (py == 0) {
			if px == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(px, py), cmp.Compare(x.Name, y.Name))
	})
	return ps
}

// mayShare applies the sharing rules between two requests.
func mayShare(x, y Request) bool {
	if x.SharingKey == "" || x.SharingKey != y.SharingKey || x.LocalTrafficSelector != y.LocalTrafficSelector {
		return false
	}
	nsX, _, _ := strings.Cut(x.Service, "/")
	nsY, _, _ := strings.Cut(y.Service, "/")
	admits := func(r Request, ns string) bool {
		return slices.Contains(r.SharingNamespaces, "*") || slices.Contains(r.SharingNamespaces, ns)
	}
	if nsX != nsY && (!admits(x, nsY) || !admits(y, nsX)) {
		return false
	}
	for _, p := range x.Ports {
		for _, q := range y.Ports {
			if strings.EqualFold(cmp.Or(p.Protocol, "TCP"), cmp.Or(q.Protocol, "TCP")) && p.Port == q.Port {
				return false
			}
		}
	}
	return true
}

// usable reports whether r may take ip given everyone else who holds it.
func (m *model) usable(r Request, ip netip.Addr) bool {
	for s, h := range m.held {
		if s != r.Service && slices.Contains(h.ips, ip) && !mayShare(r, h.req) {
			return false
		}
	}
	return true
}

func modelFamilies(r Request) []Family {
	fams := r.Families
	switch r.FamilyPolicy {
	case SingleStack:
		return fams[:1]
	case RequireDualStack:
		if len(fams) == 1 {
			return []Family{fams[0], otherFamily(fams[0])}
		}
	}
	return fams
}

// freshAllocate is what Allocate must answer for a Service holding nothing.
func (m *model) freshAllocate(r Request) (string, []netip.Addr, bool) {
	fams := modelFamilies(r)
	var cands []Pool
	for _, p := range m.ordered() {
		if !modelServes(p, r) || (r.Pool != "" && p.Name != r.Pool) {
			continue
		}
		if len(r.IPs) == 0 && r.Pool == "" && !p.AutoAssign {
			continue
		}
		if !slices.ContainsFunc(r.IPs, func(ip netip.Addr) bool { return !m.contains(p, ip) }) {
			cands = append(cands, p)
		}
	}
	for _, ip := range r.IPs {
		if !slices.Contains(fams, familyOf(ip)) || !m.usable(r, ip) {
			return "", nil, false
		}
	}
	passes := []bool{true}
	if r.FamilyPolicy == PreferDualStack && len(fams) > 1 {
		passes = append(passes, false)
	}
	for _, all := range passes {
		for _, p := range cands {
			var got []netip.Addr
			for _, f := range fams {
				if ip := ipOf(r.IPs, f); ip.IsValid() {
					got = append(got, ip)
					continue
				}
				for _, ip := range m.addresses(p, f) {
					if m.usable(r, ip) {
						got = append(got, ip)
						break
					}
				}
			}
			if len(got) > 0 && (!all || len(got) == len(fams)) {
				return p.Name, got, true
			}
		}
	}
	return "", nil, false
}

// setPools applies the keep-or-evict rule and returns the evicted, sorted.
func (m *model) setPools(pools []Pool) []string {
	m.pools = pools
	var evicted []string
	fits := func(p Pool, h modelHolding) bool {
		return modelServes(p, h.req) && (h.req.Pool == "" || h.req.Pool == p.Name) &&
			!slices.ContainsFunc(h.ips, func(ip netip.Addr) bool { return !m.contains(p, ip) })
	}
	for s, h := range m.held {
		if p, ok := m.pool(h.pool); ok && fits(p, h) {
			continue
		}
		i := slices.IndexFunc(m.ordered(), func(p Pool) bool { return fits(p, h) })
		if i < 0 {
			evicted = append(evicted, s)
			delete(m.held, s)
			continue
		}
		h.pool = m.ordered()[i].Name
		m.held[s] = h
	}
	slices.Sort(evicted)
	return evicted
}

// stats counts what Stats must report.
func (m *model) stats() []PoolStats {
	var out []PoolStats
	ps := slices.Clone(m.pools)
	slices.SortFunc(ps, func(x, y Pool) int { return cmp.Compare(x.Name, y.Name) })
	for _, p := range ps {
		for _, f := range []Family{IPv4, IPv6} {
			all := m.addresses(p, f)
			hasRange := slices.ContainsFunc(p.Ranges, func(r Range) bool { return familyOf(r.First) == f })
			if !hasRange {
				continue
			}
			inUse := map[netip.Addr]bool{}
			for _, h := range m.held {
				for _, ip := range h.ips {
					if slices.Contains(all, ip) {
						inUse[ip] = true
					}
				}
			}
			n, u := int64(len(all)), int64(len(inUse))
			out = append(out, PoolStats{Pool: p.Name, Family: f, Total: n, Assigned: u, Available: n - u})
		}
	}
	return out
}
