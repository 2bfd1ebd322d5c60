package allocator

import (
	"net/netip"
	"slices"
	"strings"
)

// sharing is what decides whether two Services may hold the same IP.
type sharing struct {
	service   string
	namespace string
	key       string // "" means the Service shares with nobody
	// crossNamespace lists the other namespaces whose Services may share
	// with this one; "*" allows every namespace.
	crossNamespace []string
	ports          []Port // protocol upper-cased, "" replaced by TCP
	local          string // pod selector when externalTrafficPolicy is Local, else ""
}

// allows reports whether s agrees to share with a Service in namespace ns.
func (s sharing) allows(ns string) bool {
	return ns == s.namespace || slices.Contains(s.crossNamespace, "*") || slices.Contains(s.crossNamespace, ns)
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
// A holder in another namespace belongs to another tenant: the refusal
// names neither it nor its key, and reads the same whatever the reason, so
// that guessing keys or namespaces teaches nothing.
func canShare(s, h sharing, ip netip.Addr, label string) error {
	if s.namespace != h.namespace {
		if h.key == "" || s.key != h.key || !s.allows(h.namespace) || !h.allows(s.namespace) {
			return fail(ErrIPInUse, "%s %s is used by a Service in another namespace; Services of two namespaces share an IP only "+
				"with the same sharing key and when each lists the other's namespace in %s", label, ip, crossNamespaceAnnotation)
		}
		return sharedPortsAndPolicy(s, h, ip, label, "a Service in another namespace")
	}
	switch {
	case h.key == "":
		return fail(ErrIPInUse, "%s %s is already used by %s (no shared key)", label, ip, h.service)
	case s.key == "":
		return fail(ErrIPInUse, "%s %s is already used by %s (shared key %q; Service %s has none)", label, ip, h.service, h.key, s.service)
	case s.key != h.key:
		return fail(ErrIPInUse, "%s %s is already used by %s (shared key %q, not %q)", label, ip, h.service, h.key, s.key)
	}
	return sharedPortsAndPolicy(s, h, ip, label, h.service)
}

// crossNamespaceAnnotation is named in refusals; the allocator reads no
// annotations itself.
const crossNamespaceAnnotation = "herald.dev/sharing-cross-namespace"

// sharedPortsAndPolicy checks two Services with the same key: no common
// port, and one traffic policy (one node answers for the IP). holder is
// how the message names h.
func sharedPortsAndPolicy(s, h sharing, ip netip.Addr, label, holder string) error {
	for _, p := range s.ports {
		if slices.Contains(h.ports, p) {
			return fail(ErrSharingConflict, "%s %s is shared with %s under key %q, but both use port %s/%d", label, ip, holder, s.key, p.Protocol, p.Port)
		}
	}
	switch {
	case s.local == h.local:
		return nil
	case s.local == "":
		return fail(ErrSharingConflict, "%s %s is shared with %s under key %q, but %s has externalTrafficPolicy Local and %s has Cluster", label, ip, holder, s.key, holder, s.service)
	case h.local == "":
		return fail(ErrSharingConflict, "%s %s is shared with %s under key %q, but %s has externalTrafficPolicy Cluster and %s has Local", label, ip, holder, s.key, holder, s.service)
	case s.namespace != h.namespace:
		return fail(ErrSharingConflict, "%s %s is shared with %s under key %q, but both have externalTrafficPolicy Local with different pod selectors", label, ip, holder, s.key)
	}
	return fail(ErrSharingConflict, "%s %s is shared with %s under key %q, but both have externalTrafficPolicy Local with different pod selectors (%q and %q)", label, ip, holder, s.key, h.local, s.local)
}
