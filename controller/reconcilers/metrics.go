package reconcilers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/heraldlb/herald/controller/allocator"
)

// Prometheus metrics, served on controller-runtime's metrics endpoint.
var (
	poolAddresses = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_pool_addresses",
		Help: "Addresses of an IPPool by family, without those avoidBuggyIPs withholds (IPv6 saturates at 2^63-1).",
	}, []string{"pool", "family"})
	poolAssigned = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_pool_addresses_assigned",
		Help: "Addresses of an IPPool held by at least one Service, by family.",
	}, []string{"pool", "family"})
	allocationsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_allocations_total",
		Help: "Services that were given new addresses.",
	})
	releasesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_releases_total",
		Help: "Services whose addresses were released, in whole or in part.",
	})
	statusWritesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_status_writes_total",
		Help: "Status updates sent to the API server, by kind of object (Service, IPPool, ...).",
	}, []string{"kind"})
	allocationFailuresTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_allocation_failures_total",
		Help: "Allocation attempts refused, by reason: nopool, notfound, exhausted, notinpool, inuse, sharing, family, invalid.",
	}, []string{"reason"})
)

func init() {
	metrics.Registry.MustRegister(poolAddresses, poolAssigned, allocationsTotal, releasesTotal, allocationFailuresTotal, statusWritesTotal)
}

func familyLabel(f allocator.Family) string {
	if f == allocator.IPv4 {
		return "ipv4"
	}
	return "ipv6"
}

// setPoolGauges records one pool's counts; stats holds only that pool's.
func setPoolGauges(pool string, stats []allocator.PoolStats) {
	for _, f := range []allocator.Family{allocator.IPv4, allocator.IPv6} {
		found := false
		for _, s := range stats {
			if s.Family == f {
				found = true
				poolAddresses.WithLabelValues(pool, familyLabel(f)).Set(float64(s.Total))
				poolAssigned.WithLabelValues(pool, familyLabel(f)).Set(float64(s.Assigned))
			}
		}
		if !found {
			poolAddresses.DeleteLabelValues(pool, familyLabel(f))
			poolAssigned.DeleteLabelValues(pool, familyLabel(f))
		}
	}
}
