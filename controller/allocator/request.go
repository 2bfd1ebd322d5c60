package allocator

import (
	"net/netip"
	"slices"
	"strings"
)

// want is a validated, normalized Request.
type want struct {
	Request
	families []Family // the families to serve, primary first
}

func normalize(req Request) (*want, error) {
	if req.Service == "" {
		return nil, fail(ErrInvalidRequest, "request has no Service name")
	}
	if req.Namespace == "" {
		req.Namespace, _, _ = strings.Cut(req.Service, "/")
	}
	w := &want{Request: req}
	var err error
	if w.IPs, err = cleanIPs(req.Service, "requested IP", req.IPs); err != nil {
		return nil, err
	}
	fams := req.Families
	if len(fams) == 0 {
		for _, ip := range w.IPs {
			fams = append(fams, familyOf(ip))
		}
	}
	if len(fams) == 0 {
		return nil, fail(ErrInvalidRequest, "Service %s has no IP family", req.Service)
	}
	for i, f := range fams {
		if f != IPv4 && f != IPv6 {
			return nil, fail(ErrInvalidRequest, "Service %s has an unknown IP family %d", req.Service, f)
		}
		if slices.Contains(fams[:i], f) {
			return nil, fail(ErrInvalidRequest, "Service %s lists IP family %s twice", req.Service, f)
		}
	}
	switch req.FamilyPolicy {
	case SingleStack:
		w.families = []Family{fams[0]}
	case PreferDualStack:
		w.families = slices.Clone(fams)
	case RequireDualStack:
		w.families = slices.Clone(fams)
		if len(w.families) == 1 {
			w.families = append(w.families, otherFamily(fams[0]))
		}
	default:
		return nil, fail(ErrInvalidRequest, "Service %s has an unknown IP family policy %d", req.Service, req.FamilyPolicy)
	}
	if err := checkFamilies(w, "requested IP", w.IPs); err != nil {
		return nil, err
	}
	if len(req.Ports) > 0 {
		w.Ports = make([]Port, len(req.Ports))
		for i, p := range req.Ports {
			w.Ports[i] = Port{Protocol: strings.ToUpper(p.Protocol), Port: p.Port}
			if w.Ports[i].Protocol == "" {
				w.Ports[i].Protocol = "TCP"
			}
		}
	}
	return w, nil
}

// cleanIPs rejects invalid addresses and drops zones and IPv4-in-IPv6 mapping.
func cleanIPs(service, label string, ips []netip.Addr) ([]netip.Addr, error) {
	if len(ips) == 0 {
		return nil, nil
	}
	out := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		if !ip.IsValid() {
			return nil, fail(ErrInvalidRequest, "Service %s has an invalid %s", service, label)
		}
		out[i] = ip.Unmap().WithZone("")
	}
	return out, nil
}

// checkFamilies allows at most one IP per family, of the Service's families only.
func checkFamilies(w *want, label string, ips []netip.Addr) error {
	for i, ip := range ips {
		f := familyOf(ip)
		if !slices.Contains(w.families, f) {
			return fail(ErrInvalidRequest, "%s %s is %s, but Service %s uses %s", label, ip, f, w.Service, familyList(w.families))
		}
		for _, prev := range ips[:i] {
			if familyOf(prev) == f {
				return fail(ErrInvalidRequest, "%ss %s and %s are both %s; a Service has at most one per family", label, prev, ip, f)
			}
		}
	}
	return nil
}

func otherFamily(f Family) Family {
	if f == IPv4 {
		return IPv6
	}
	return IPv4
}

func familyList(fams []Family) string {
	if len(fams) == 1 {
		return fams[0].String() + " only"
	}
	return fams[0].String() + " and " + fams[1].String()
}

// ipOf returns the IP of family f among ips, or the zero Addr.
func ipOf(ips []netip.Addr, f Family) netip.Addr {
	for _, ip := range ips {
		if familyOf(ip) == f {
			return ip
		}
	}
	return netip.Addr{}
}

func (w *want) subject() subject {
	return subject{namespace: w.Namespace, nsLabels: w.NamespaceLabels, svcLabels: w.ServiceLabels}
}

func (w *want) sharing() sharing {
	return sharing{service: w.Service, namespace: w.Namespace, key: w.SharingKey, crossNamespace: w.SharingNamespaces,
		ports: w.Ports, local: w.LocalTrafficSelector}
}
