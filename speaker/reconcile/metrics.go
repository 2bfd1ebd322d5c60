package reconcile

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the reconcile loop's own; announce, members and bgp register theirs.
type metrics struct {
	services          prometheus.Gauge
	quorum            prometheus.Gauge
	handoversSent     prometheus.Counter
	handoversReceived prometheus.Counter
	stalls            prometheus.Counter
	configProblems    prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		services: prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_speaker_services",
			Help: "LoadBalancer Services with an ingress IP that this speaker serves (by class)."}),
		quorum: prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_speaker_l2_takeover_allowed",
			Help: "1 when this node may take over Layer 2 addresses (it sees a majority of the speakers), else 0."}),
		handoversSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_speaker_handovers_sent_total",
			Help: "Hand-over messages this speaker sent when stopping."}),
		handoversReceived: prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_speaker_handovers_received_total",
			Help: "Hand-over messages received from stopping speakers."}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_speaker_stalls_total",
			Help: "Times this speaker found itself stalled (paused or starved for over the stall threshold)."}),
		configProblems: prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_speaker_config_problems",
			Help: "Configuration objects this speaker refuses or keeps at their last valid version (the controller reports each on the object)."}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.services, m.quorum, m.handoversSent, m.handoversReceived, m.stalls, m.configProblems} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}

func (m *metrics) setQuorum(ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	m.quorum.Set(v)
}
