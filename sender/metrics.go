package sender

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what happens to results. A nil *Metrics counts nothing.
type Metrics struct {
	accepted      prometheus.Counter
	refused       *prometheus.CounterVec
	spooled       prometheus.Counter
	delivered     prometheus.Counter
	dead          *prometheus.CounterVec
	dupFailures   prometheus.Counter
	spoolFullRefs prometheus.Counter
}

// NewMetrics registers the sender's metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_sender_results_accepted_total",
			Help: "Results the bridge or gearmand accepted (including those delivered from the spool).",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_sender_results_refused_total",
			Help: "Results refused for good, by reason (not_allowed, invalid, call_refused, other).",
		}, []string{"reason"}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_sender_results_spooled_total",
			Help: "Results written to the spool because they could not be delivered.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_sender_spool_delivered_total",
			Help: "Results delivered from the spool.",
		}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_sender_spool_dead_total",
			Help: "Results moved to the spool's dead/ directory, by cause (expired, refused, corrupt).",
		}, []string{"cause"}),
		dupFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_sender_dupserver_failures_total",
			Help: "Copies to a dupserver that failed.",
		}),
		spoolFullRefs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_sender_spool_full_total",
			Help: "Results refused because the spool was full.",
		}),
	}
	// Every reason and cause is reported from the start, so that an alert
	// on a rate sees a zero before the first event.
	for _, r := range []string{"not_allowed", "invalid", "call_refused", "other"} {
		m.refused.WithLabelValues(r)
	}
	for _, c := range []string{"expired", "refused", "corrupt"} {
		m.dead.WithLabelValues(c)
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.refused, m.spooled, m.delivered, m.dead, m.dupFailures, m.spoolFullRefs)
	}
	return m
}

// reasonLabel maps a refusal reason to a bounded label value.
func reasonLabel(o Outcome) string {
	switch {
	case o.Call:
		return "call_refused"
	case strings.HasPrefix(o.Reason, "not allowed"):
		return "not_allowed"
	case strings.HasPrefix(o.Reason, "invalid"):
		return "invalid"
	}
	return "other"
}

func (m *Metrics) addAccepted(n int) {
	if m != nil && n > 0 {
		m.accepted.Add(float64(n))
	}
}

func (m *Metrics) refusedOne(o Outcome) {
	if m != nil {
		m.refused.WithLabelValues(reasonLabel(o)).Inc()
	}
}

func (m *Metrics) addSpooled(n int) {
	if m != nil && n > 0 {
		m.spooled.Add(float64(n))
	}
}

func (m *Metrics) addDelivered(n int) {
	if m != nil && n > 0 {
		m.delivered.Add(float64(n))
	}
}

func (m *Metrics) addDead(cause string, n int) {
	if m != nil && n > 0 {
		m.dead.WithLabelValues(cause).Add(float64(n))
	}
}

func (m *Metrics) dupFailed() {
	if m != nil {
		m.dupFailures.Inc()
	}
}

func (m *Metrics) addSpoolFull(n int) {
	if m != nil && n > 0 {
		m.spoolFullRefs.Add(float64(n))
	}
}
