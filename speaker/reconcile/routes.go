package reconcile

import (
	"net/netip"
	"reflect"
	"slices"

	"github.com/heraldlb/herald/speaker/advertise"
	"github.com/heraldlb/herald/speaker/bgp"
)

// ServiceRoutes returns the BGP routes the engine computed for one Service
// (nil when it has none or is not tracked).
func (e *Engine) ServiceRoutes(key string) []advertise.Route {
	if st := e.services[key]; st != nil {
		return st.routes
	}
	return nil
}

// routeKey is one route of the node: a prefix toward a peer.
type routeKey struct {
	peer   string
	prefix netip.Prefix
}

// routeIndex merges the Services' routes per (peer, prefix) and remembers
// which merged routes changed, so that a Service change costs the routes
// it touches (and the other Services sharing them, as in an aggregate),
// not every route of the node.
type routeIndex struct {
	byService map[string][]advertise.Route
	users     map[routeKey]map[string]advertise.Route // by Service key
	dirty     map[routeKey]bool
}

func newRouteIndex() *routeIndex {
	return &routeIndex{byService: map[string][]advertise.Route{}, users: map[routeKey]map[string]advertise.Route{}, dirty: map[routeKey]bool{}}
}

// setService replaces one Service's routes (nil: it has none).
func (x *routeIndex) setService(key string, routes []advertise.Route) {
	routes = advertise.Merge(routes) // one per (peer, prefix)
	if reflect.DeepEqual(routes, x.byService[key]) || (len(routes) == 0 && len(x.byService[key]) == 0) {
		return
	}
	for _, r := range x.byService[key] {
		k := routeKey{r.Peer, r.Prefix}
		delete(x.users[k], key)
		if len(x.users[k]) == 0 {
			delete(x.users, k)
		}
		x.dirty[k] = true
	}
	for _, r := range routes {
		k := routeKey{r.Peer, r.Prefix}
		if x.users[k] == nil {
			x.users[k] = map[string]advertise.Route{}
		}
		x.users[k][key] = r
		x.dirty[k] = true
	}
	if len(routes) == 0 {
		delete(x.byService, key)
	} else {
		x.byService[key] = routes
	}
}

// merged is the route for k from every Service using it, or nil.
func (x *routeIndex) merged(k routeKey) *advertise.Route {
	users := x.users[k]
	if len(users) == 0 {
		return nil
	}
	list := make([]advertise.Route, 0, len(users))
	for _, r := range users {
		list = append(list, r)
	}
	r := advertise.Merge(list)[0]
	return &r
}

// rebuild indexes every Service of the engine again (after a
// configuration or node change) and forgets the pending changes.
func (x *routeIndex) rebuild(e *Engine) {
	*x = *newRouteIndex()
	for key, st := range e.services {
		x.setService(key, st.routes)
	}
	clear(x.dirty)
}

// all returns every merged route, sorted by peer and prefix.
func (x *routeIndex) all() []advertise.Route {
	var list []advertise.Route
	for _, routes := range x.byService {
		list = append(list, routes...)
	}
	return advertise.Merge(list)
}

// takeChanges returns the merged routes that changed since the last call
// as path updates for the peers in use (sorted by prefix), and forgets them.
func (x *routeIndex) takeChanges(inUse map[string]bool) map[string]bgp.PathUpdate {
	if len(x.dirty) == 0 {
		return nil
	}
	out := map[string]bgp.PathUpdate{}
	for k := range x.dirty {
		if !inUse[k.peer] {
			continue
		}
		u := out[k.peer]
		if r := x.merged(k); r != nil {
			u.Set = append(u.Set, bgpPath(*r))
		} else {
			u.Withdraw = append(u.Withdraw, k.prefix)
		}
		out[k.peer] = u
	}
	clear(x.dirty)
	for peer, u := range out {
		slices.SortFunc(u.Set, func(a, b bgp.Path) int { return comparePrefix(a.Prefix, b.Prefix) })
		slices.SortFunc(u.Withdraw, comparePrefix)
		out[peer] = u
	}
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
