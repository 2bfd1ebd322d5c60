package allocator

import (
	"net/netip"
	"slices"
)

// Assign imports or confirms an assignment the Service already has (from its
// status at start-up). The IPs must be of the Service's families, at most one
// per family, all in one pool the Service may use (AutoAssign does not
// matter), match its requested IPs, and be free or held by compatible sharers.
// Fewer IPs than families is accepted; a later Allocate adds the rest.
func (a *Allocator) Assign(req Request, ips []netip.Addr) error {
	w, err := normalize(req)
	if err != nil {
		return err
	}
	if ips, err = cleanIPs(w.Service, "IP", ips); err != nil {
		return err
	}
	if len(ips) == 0 {
		return fail(ErrInvalidRequest, "no IP to assign to Service %s", w.Service)
	}
	if err := checkFamilies(w, "IP", ips); err != nil {
		return err
	}
	for _, asked := range w.IPs {
		if got := ipOf(ips, familyOf(asked)); got.IsValid() && got != asked {
			return fail(ErrInvalidRequest, "Service %s requests IP %s, not %s", w.Service, asked, got)
		}
	}
	pools, err := a.poolsHolding(w, ips, "IP")
	if err != nil {
		return err
	}
	share := w.sharing()
	for _, ip := range ips {
		if err := a.available(share, ip, "IP"); err != nil {
			return err
		}
	}
	p := pools[0]
	if h := a.services[w.Service]; h != nil {
		if i := slices.IndexFunc(pools, func(q *pool) bool { return q.def.Name == h.pool }); i >= 0 {
			p = pools[i]
		}
	}
	ordered := make([]netip.Addr, 0, len(ips))
	for _, f := range w.families {
		if ip := ipOf(ips, f); ip.IsValid() {
			ordered = append(ordered, ip)
		}
	}
	a.commit(w, p, ordered)
	return nil
}
