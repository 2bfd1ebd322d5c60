package bgp

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the Router's status as metrics, read at scrape time
// from the same snapshot Status returns, so peers that go away disappear
// from the metrics with no bookkeeping.
type collector struct {
	r                                   *Router
	sessionUp, advertised, updates, bfd *prometheus.Desc
}

func newCollector(r *Router) *collector {
	peer := []string{"peer"}
	return &collector{
		r:          r,
		sessionUp:  prometheus.NewDesc("herald_bgp_session_up", "1 if the BGP session to the peer is established.", peer, nil),
		advertised: prometheus.NewDesc("herald_bgp_prefixes_advertised", "Prefixes announced to the peer on the established session.", peer, nil),
		updates:    prometheus.NewDesc("herald_bgp_updates_sent_total", "BGP UPDATE messages sent to the peer.", peer, nil),
		bfd:        prometheus.NewDesc("herald_bgp_bfd_up", "1 if the BFD session to the peer is up (peers with BFD only).", peer, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessionUp
	ch <- c.advertised
	ch <- c.updates
	ch <- c.bfd
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.r.Status() {
		ch <- prometheus.MustNewConstMetric(c.sessionUp, prometheus.GaugeValue, boolValue(st.Established()), st.Name)
		ch <- prometheus.MustNewConstMetric(c.advertised, prometheus.GaugeValue, float64(st.Advertised), st.Name)
		ch <- prometheus.MustNewConstMetric(c.updates, prometheus.CounterValue, float64(st.UpdatesSent), st.Name)
		if st.BFD != "" {
			ch <- prometheus.MustNewConstMetric(c.bfd, prometheus.GaugeValue, boolValue(st.BFD == "up"), st.Name)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
