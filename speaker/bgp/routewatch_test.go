package bgp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/routers"
	"github.com/heraldlb/herald/internal/netns"
)

// routeWatcher timestamps route additions and removals in FRR's main
// table as the kernel announces them (routers.RouteWatcher, rtnetlink),
// so the benchmarks time "route in the router's FIB" without polling.
type routeWatcher struct{ *routers.RouteWatcher }

func watchRoutes(t testing.TB, ns *netns.NS) *routeWatcher {
	t.Helper()
	w, err := routers.WatchRoutes(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return &routeWatcher{w}
}

// addedAt returns when p was last added (and is still there).
func (w *routeWatcher) addedAt(p netip.Prefix) (time.Time, bool) {
	st := w.Route(p)
	return st.Since, st.Present
}

// removedAt returns when p was last removed (and is still gone).
func (w *routeWatcher) removedAt(p netip.Prefix) (time.Time, bool) {
	st := w.Route(p)
	return st.Since, !st.Present && !st.Since.IsZero()
}

// countAdded counts present prefixes within within, and the time of the latest.
func (w *routeWatcher) countAdded(within netip.Prefix) (int, time.Time, bool) {
	return w.Count(within, nil)
}
