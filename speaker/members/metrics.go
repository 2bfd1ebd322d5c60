package members

import "github.com/prometheus/client_golang/prometheus"

var (
	membersDesc = prometheus.NewDesc("herald_memberlist_members",
		"Speakers in this node's view of the cluster by state: alive (this one included), "+
			"suspect (this node's probes failed, not yet declared dead), "+
			"dead (failed or left in the last 5 minutes and not back).",
		[]string{"state"}, nil)
	suspicionsDesc = prometheus.NewDesc("herald_memberlist_suspicions_total",
		"Members this node's probes suspected (no answer directly, through other members or over TCP). "+
			"A suspect that lives refutes in time; one that does not is declared dead.",
		nil, nil)
	refutationsDesc = prometheus.NewDesc("herald_memberlist_refutations_total",
		"Times other members suspected or declared this node dead while it ran, and it refuted. "+
			"Steady growth means failure detection is too tight for this cluster's size or load.",
		nil, nil)
	departuresDesc = prometheus.NewDesc("herald_memberlist_departures_total",
		"Members this node saw declared dead or leave. Growth without node failures or restarts means false deaths.",
		nil, nil)
)

type collector struct{ m *Members }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- membersDesc
	ch <- suspicionsDesc
	ch <- refutationsDesc
	ch <- departuresDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.mu.Lock()
	list := m.list
	suspects := make(map[string]bool, len(m.suspects))
	for n := range m.suspects {
		suspects[n] = true
	}
	dead := len(m.gone)
	m.mu.Unlock()
	var alive, suspect int
	if list != nil {
		for _, n := range list.Members() {
			if suspects[n.Name] {
				suspect++
			} else {
				alive++
			}
		}
	}
	for state, v := range map[string]int{"alive": alive, "suspect": suspect, "dead": dead} {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(v), state)
	}
	ch <- prometheus.MustNewConstMetric(suspicionsDesc, prometheus.CounterValue, float64(m.suspicions.Load()))
	ch <- prometheus.MustNewConstMetric(refutationsDesc, prometheus.CounterValue, float64(m.refutations.Load()))
	ch <- prometheus.MustNewConstMetric(departuresDesc, prometheus.CounterValue, float64(m.departures.Load()))
}
