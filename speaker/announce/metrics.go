package announce

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldlb/herald/speaker/l2responder"
)

var (
	answeredDesc = prometheus.NewDesc("herald_l2_requests_answered_total",
		"ARP requests (protocol arp) and Neighbor Solicitations (protocol ndp) answered for owned service IPs.",
		[]string{"protocol", "interface"}, nil)
	gratuitousDesc = prometheus.NewDesc("herald_l2_gratuitous_sent_total",
		"Gratuitous ARP requests (protocol arp) and unsolicited Neighbor Advertisements (protocol ndp) sent to announce owned service IPs.",
		[]string{"protocol", "interface"}, nil)
	ownedDesc = prometheus.NewDesc("herald_l2_owned_ips",
		"Service IPs this node owns and announces on at least one interface.",
		[]string{"family"}, nil)
)

// collector reads the responders' counters at scrape time, adding those of
// responders already stopped so the counters never go back.
type collector struct{ l *Layer2 }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- answeredDesc
	ch <- gratuitousDesc
	ch <- ownedDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	l := c.l
	l.mu.Lock()
	totals := make(map[workerKey]l2responder.Stats, len(l.retired)+len(l.workers))
	for k, r := range l.retired {
		totals[k] = r
	}
	for k, w := range l.workers {
		totals[k] = plus(totals[k], w.r.Stats())
	}
	var v4, v6 float64
	for ip, names := range l.placed {
		switch {
		case len(names) == 0:
		case ip.Is4():
			v4++
		default:
			v6++
		}
	}
	l.mu.Unlock()

	for k, t := range totals {
		ch <- prometheus.MustNewConstMetric(answeredDesc, prometheus.CounterValue, float64(t.Answered), string(k.proto), k.iface)
		ch <- prometheus.MustNewConstMetric(gratuitousDesc, prometheus.CounterValue, float64(t.Gratuitous), string(k.proto), k.iface)
	}
	ch <- prometheus.MustNewConstMetric(ownedDesc, prometheus.GaugeValue, v4, "ipv4")
	ch <- prometheus.MustNewConstMetric(ownedDesc, prometheus.GaugeValue, v6, "ipv6")
}
