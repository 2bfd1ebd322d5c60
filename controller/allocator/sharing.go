package allocator

import (
	"net/netip"
	"slices"
	"strings"
)

// sharing is what decides whether two Services may hold the same IP.
type sharing struct {
	service string
	key     string // "" means the Service shares with nobody
	ports   []Port // protocol upper-cased, "" replaced by TCP
	local   string // pod selector when externalTrafficPolicy is Local, else ""
}

// ipEntry records who holds an IP. All holders of one IP have the same
// non-empty key, or there is exactly one holder.
type ipEntry struct {
	holders []*holding // sorted by Service name
}

func (e *ipEntry) add(h *holding) {
	i, _ := slices.BinarySearchFunc(e.holders, h.share.service, func(x *holding, s string) int {
		return strings.Compare(x.share.service, s)
	})
	e.holders = slices.Insert(e.holders, i, h)
}

func (e *ipEntry) remove(h *holding) {
	if i := slices.Index(e.holders, h); i >= 0 {
		e.holders = slices.Delete(e.holders, i, i+1)
	}
}

// available returns nil if s may hold ip: nobody else holds it, or every other
// holder shares compatibly. label names the IP in messages ("requested IP").
func (a *Allocator) available(s sharing, ip netip.Addr, label string) error {
	e := a.ips[ip]
	if e == nil {
		return nil
	}
	for _, h := range e.holders {
		if h.share.service == s.service {
			continue
		}
		if err := canShare(s, h.share, ip, label); err != nil {
			return err
		}
	}
	return nil
}

// canShare applies the sharing rules between a newcomer s and a holder h.
func canShare(s, h sharing, ip netip.Addr, label string) error {
	switch {
	case h.key == "":
		return fail(ErrIPInUse, "%s %s is already used by %s (no shared key)", label, ip, h.service)
	case s.key == "":
		return fail(ErrIPInUse, "%s %s is already used by %s (shared key %q; Service %s has none)", label, ip, h.service, h.key, s.service)
	case s.key != h.key:
		return fail(ErrIPInUse, "%s %s is already used by %s (shared key %q, not %q)", label, ip, h.service, h.key, s.key)
	}
	for _, p := range s.ports {
		if slices.Contains(h.ports, p) {
			return fail(ErrSharingConflict, "%s %s is shared with %s under key %q, but both use port %s/%d", label, ip, h.service, s.key, p.Protocol, p.Port)
		}
	}
	switch {
	case s.local == h.local:
		return nil
	case s.local == "":
		return fail(ErrSharingConflict, "%s %s is shared with %s under key %q, but %s has externalTrafficPolicy Local and %s has Cluster", label, ip, h.service, s.key, h.service, s.service)
	case h.local == "":
		return fail(ErrSharingConflict, "%s %s is shared with %s under key %q, but %s has externalTrafficPolicy Cluster and %s has Local", label, ip, h.service, s.key, h.service, s.service)
	}
	return fail(ErrSharingConflict, "%s %s is shared with %s under key %q, but both have externalTrafficPolicy Local with different pod selectors (%q and %q)", label, ip, h.service, s.key, h.local, s.local)
}
