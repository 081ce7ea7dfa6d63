package worker

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearbridge/gearbridge/plugin"
)

// Reasons of gearbridge_worker_jobs_discarded_total.
const (
	// discardSessionLost: the bridge no longer knew the session after a
	// reconnect, so gearmand has requeued the job and it runs elsewhere.
	discardSessionLost = "session_lost"
	// discardDrainTimeout: the job was still running, or its result
	// unacknowledged, when the shutdown drain timed out.
	discardDrainTimeout = "drain_timeout"
	// discardResultRefused: gearmand refused the result for good (a
	// permanent error, --transport=gearman); the job was failed.
	discardResultRefused = "result_refused"
)

// metrics are the worker's Prometheus series. Every way a job can end
// without a delivered result is counted.
type metrics struct {
	received        prometheus.Counter
	resultsSent     prometheus.Counter
	resultsResent   prometheus.Counter
	acks            prometheus.Counter
	cancelled       prometheus.Counter
	timeouts        prometheus.Counter
	tooOld          prometheus.Counter
	invalid         prometheus.Counter
	dupErrors       prometheus.Counter
	discarded       *prometheus.CounterVec
	running         prometheus.Gauge
	creditWithheld  prometheus.Gauge
	reconnects      prometheus.Counter
	connectFailures prometheus.Counter
	refused         prometheus.Gauge
	pluginDuration  prometheus.Histogram
	pluginResults   *prometheus.CounterVec
	connected       prometheus.Gauge
	gearmandUp      *prometheus.GaugeVec

	// For Ready: a session with a bridge, or per gearmand whether a
	// connection is up.
	sessionUp atomic.Bool
	upMu      sync.Mutex
	up        map[string]bool
}

func newMetrics(reg prometheus.Registerer, perl *plugin.Perl) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_jobs_received_total",
			Help: "Jobs received from the bridge (or from gearmand with --transport=gearman).",
		}),
		resultsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_results_sent_total",
			Help: "Results sent to the bridge, resent ones included.",
		}),
		resultsResent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_results_resent_total",
			Help: "Unacknowledged results sent again after a resumed session.",
		}),
		acks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_results_acked_total",
			Help: "Results the bridge confirmed as delivered.",
		}),
		cancelled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_jobs_cancelled_total",
			Help: "Jobs withdrawn by the bridge (it answered them itself); their plugins are killed and no result is sent.",
		}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_plugin_timeouts_total",
			Help: "Plugins killed at their timeout.",
		}),
		tooOld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_jobs_too_old_total",
			Help: "Jobs answered with \"could not start check in time\" because they were older than max-age.",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_jobs_invalid_total",
			Help: "Jobs from gearmand that could not be decoded (wrong key, garbage) or parsed (missing keys, a result queue gearmand cannot take) and were failed (--transport=gearman).",
		}),
		dupErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_dupserver_failures_total",
			Help: "Result copies that a dupserver did not take (--transport=gearman).",
		}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_worker_jobs_discarded_total",
			Help: "Jobs whose result was never delivered by this worker, by reason (session_lost: gearmand requeued them; drain_timeout: shutdown cut them off; result_refused: gearmand refused the result for good and the job was failed).",
		}, []string{"reason"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gearbridge_worker_plugins_running",
			Help: "Plugins running now.",
		}),
		creditWithheld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gearbridge_worker_credit_withheld",
			Help: "Free slots not offered to the bridge because the load is above a load limit.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_reconnects_total",
			Help: "Sessions established with a bridge after the first one.",
		}),
		connectFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_worker_connect_failures_total",
			Help: "Attempts to open a session with a bridge that failed before its welcome.",
		}),
		refused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gearbridge_worker_bridge_refused",
			Help: "1 while the bridge refuses this worker for good (not authorized, a bad hello, an unknown, revoked or expired certificate) and attempts back off; 0 once a session starts.",
		}),
		pluginDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gearbridge_worker_plugin_duration_seconds",
			Help: "How long plugins ran, from start to exit or kill (cancelled ones not counted).",
			// 5 ms (an internal check) to 5 min, beyond the longest
			// plugin timeout sites use.
			Buckets: prometheus.ExponentialBucketsRange(0.005, 300, 16),
		}),
		pluginResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_worker_plugin_results_total",
			Help: "Plugin results by return code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; timeouts and plugins that could not run included).",
		}, []string{"return_code"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gearbridge_worker_bridge_connected",
			Help: "1 while the worker has a session with a bridge, 0 otherwise (remote worker).",
		}),
		gearmandUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gearbridge_gearmand_up",
			Help: "1 while the worker holds a connection to the gearmand server, 0 otherwise (--transport=gearman).",
		}, []string{"server"}),
		up: map[string]bool{},
	}
	// Known label values start at zero, so that dashboards see them.
	for rc := range 4 {
		m.pluginResults.WithLabelValues(strconv.Itoa(rc))
	}
	m.discarded.WithLabelValues(discardSessionLost)
	m.discarded.WithLabelValues(discardDrainTimeout)
	m.discarded.WithLabelValues(discardResultRefused)
	if reg == nil {
		return m, nil
	}
	perlCounter := func(name, help string, v func(plugin.PerlStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(perl.Stats())) })
	}
	for _, c := range []prometheus.Collector{
		perlCounter("gearbridge_worker_epn_checks_total",
			"Plugins run by the embedded Perl server (enable_embedded_perl).",
			func(s plugin.PerlStats) uint64 { return s.Checks }),
		perlCounter("gearbridge_worker_epn_compile_errors_total",
			"Embedded Perl plugins answered with \"**ePN failed to compile\" (UNKNOWN).",
			func(s plugin.PerlStats) uint64 { return s.CompileErrors }),
		perlCounter("gearbridge_worker_epn_server_starts_total",
			"Embedded Perl server processes started: the first and every restart.",
			func(s plugin.PerlStats) uint64 { return s.ServerStarts }),
		perlCounter("gearbridge_worker_epn_server_crashes_total",
			"Embedded Perl servers that exited without being asked to; the next Perl plugin starts a new one.",
			func(s plugin.PerlStats) uint64 { return s.ServerCrashes }),
		perlCounter("gearbridge_worker_epn_lost_checks_total",
			"Embedded Perl plugins answered UNKNOWN because the server exited while they waited or ran.",
			func(s plugin.PerlStats) uint64 { return s.LostChecks }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register worker metrics: %w", err)
		}
	}
	for _, c := range []prometheus.Collector{
		m.received, m.resultsSent, m.resultsResent, m.acks, m.cancelled, m.timeouts, m.tooOld, m.invalid, m.dupErrors,
		m.discarded, m.running, m.creditWithheld, m.reconnects, m.connectFailures, m.refused,
		m.pluginDuration, m.pluginResults, m.connected, m.gearmandUp,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register worker metrics: %w", err)
		}
	}
	return m, nil
}

// pluginDone counts a plugin's result and how long it ran; a run that the
// worker's own shutdown or the bridge cancelled is not a result.
func (m *metrics) pluginDone(r plugin.Result) {
	if r.Cancelled {
		return
	}
	rc := r.ReturnCode
	if rc < 0 || rc > 3 {
		rc = 3
	}
	m.pluginResults.WithLabelValues(strconv.Itoa(rc)).Inc()
	if !r.StartTime.IsZero() && !r.FinishTime.Before(r.StartTime) {
		m.pluginDuration.Observe(r.FinishTime.Sub(r.StartTime).Seconds())
	}
}

// setSession records whether the remote worker has a session.
func (m *metrics) setSession(up bool) {
	m.sessionUp.Store(up)
	if up {
		m.connected.Set(1)
	} else {
		m.connected.Set(0)
	}
}

// setGearmand records whether the connection to server is up.
func (m *metrics) setGearmand(server string, up bool) {
	m.upMu.Lock()
	m.up[server] = up
	m.upMu.Unlock()
	if up {
		m.gearmandUp.WithLabelValues(server).Set(1)
	} else {
		m.gearmandUp.WithLabelValues(server).Set(0)
	}
}

// Ready reports whether the worker takes jobs: it has a session with a
// bridge. It backs /readyz.
func (w *Worker) Ready() error {
	if !w.m.sessionUp.Load() {
		return errors.New("no session with a bridge")
	}
	return nil
}

// Ready reports whether the worker takes jobs: a connection to at least
// one gearmand is up. It backs /readyz.
func (w *GearmanWorker) Ready() error {
	w.m.upMu.Lock()
	defer w.m.upMu.Unlock()
	for _, up := range w.m.up {
		if up {
			return nil
		}
	}
	return errors.New("no gearmand connection")
}
