package reconcilers

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldlb/herald/controller/allocator"
)

// Metrics are the controller's own, registered by the caller on the
// registry the manager serves.
type Metrics struct {
	poolAddresses, poolAssigned      *prometheus.GaugeVec
	allocations, releases            prometheus.Counter
	statusWrites, allocationFailures *prometheus.CounterVec
}

// NewMetrics returns the controller's metrics, not registered.
func NewMetrics() *Metrics {
	return &Metrics{
		poolAddresses: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_pool_addresses",
			Help: "Addresses of an IPPool by family, without those avoidBuggyIPs withholds (IPv6 saturates at 2^63-1).",
		}, []string{"pool", "family"}),
		poolAssigned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_pool_addresses_assigned",
			Help: "Addresses of an IPPool held by at least one Service, by family.",
		}, []string{"pool", "family"}),
		allocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_allocations_total",
			Help: "Services that were given new addresses.",
		}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_releases_total",
			Help: "Services whose addresses were released, in whole or in part.",
		}),
		statusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_status_writes_total",
			Help: "Status updates sent to the API server, by kind of object (Service, IPPool, ...).",
		}, []string{"kind"}),
		allocationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_allocation_failures_total",
			Help: "Allocation attempts refused, by reason: nopool, notfound, exhausted, notinpool, inuse, sharing, family, invalid.",
		}, []string{"reason"}),
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.poolAddresses, m.poolAssigned, m.allocations, m.releases, m.statusWrites, m.allocationFailures}
}

// Register registers every metric on r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range m.collectors() {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}

// Unregister takes the metrics off r again (a controller run in a test
// process more than once registers anew each time).
func (m *Metrics) Unregister(r prometheus.Registerer) {
	for _, c := range m.collectors() {
		r.Unregister(c)
	}
}

func familyLabel(f allocator.Family) string {
	if f == allocator.IPv4 {
		return "ipv4"
	}
	return "ipv6"
}

// setPoolGauges records one pool's counts; stats holds only that pool's.
func (m *Metrics) setPoolGauges(pool string, stats []allocator.PoolStats) {
	for _, f := range []allocator.Family{allocator.IPv4, allocator.IPv6} {
		found := false
		for _, s := range stats {
			if s.Family == f {
				found = true
				m.poolAddresses.WithLabelValues(pool, familyLabel(f)).Set(float64(s.Total))
				m.poolAssigned.WithLabelValues(pool, familyLabel(f)).Set(float64(s.Assigned))
			}
		}
		if !found {
			m.poolAddresses.DeleteLabelValues(pool, familyLabel(f))
			m.poolAssigned.DeleteLabelValues(pool, familyLabel(f))
		}
	}
}
