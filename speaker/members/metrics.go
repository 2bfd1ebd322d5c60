package members

import "github.com/prometheus/client_golang/prometheus"

var membersDesc = prometheus.NewDesc("herald_memberlist_members",
	"Speakers in this node's view of the cluster by state: alive (this one included), "+
		"suspect (this node's probes failed, not yet declared dead), "+
		"dead (failed or left in the last 5 minutes and not back).",
	[]string{"state"}, nil)

type collector struct{ m *Members }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- membersDesc }

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
}
