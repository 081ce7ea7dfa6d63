package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bridge's Prometheus series. Every path a job or a result
// can take has a counter, so that nothing is lost silently.
type metrics struct {
	sessions        *prometheus.GaugeVec
	credit          prometheus.Gauge
	dispatched      *prometheus.CounterVec
	completed       *prometheus.CounterVec
	timedOut        *prometheus.CounterVec
	requeued        prometheus.Counter
	invalidJobs     *prometheus.CounterVec
	refusedJobs     *prometheus.CounterVec
	failedJobs      prometheus.Counter
	stalled         prometheus.Counter
	unsendable      prometheus.Counter
	queuesRevoked   prometheus.Counter
	statusReplies   prometheus.Counter
	resent          prometheus.Counter
	wakeups         prometheus.Counter
	refused         *prometheus.CounterVec
	submitErrors    prometheus.Counter
	passiveAccepted prometheus.Counter
	dupErrors       prometheus.Counter
	jobDuration     *prometheus.HistogramVec
	dispatchLatency prometheus.Histogram
	batches         prometheus.Histogram

	sessionsRefused   *prometheus.CounterVec
	handshakeFailures *prometheus.CounterVec
	tlsReloadsRefused prometheus.Counter
	gearmandUp        *prometheus.GaugeVec
}

// GearmandUpMetric is the gauge of each gearmand's reachability, by server.
// The central worker exports the same name, so that one alert covers both.
const GearmandUpMetric = "gearbridge_gearmand_up"

// resultRefusals are the labels of gearbridge_bridge_results_refused_total:
// the first words of a passive result's refusal (invalid, not allowed),
// gearmand refusing or unavailable, and worker results that break the
// protocol, come after their job ended or name no job.
var resultRefusals = []string{"invalid", "not_allowed", "gearmand_refused", "unavailable", "protocol", "late", "unknown_job"}

// sessionRefusals are the reasons a worker session is refused after its
// certificate was accepted.
var sessionRefusals = []string{"invalid", "queue", "identifier", "session_owner", "identity_limit", "total_limit"}

// handshakeFailureReasons are the labels of failed TLS handshakes (see
// handshakeFailureReason).
var handshakeFailureReasons = []string{"unknown_ca", "expired", "bad_certificate", "no_certificate", "timeout", "other"}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gearbridge_bridge_sessions",
			Help: "Remote worker sessions, by state (attached or detached within the resume grace).",
		}, []string{"state"}),
		credit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gearbridge_bridge_credit",
			Help: "Free worker slots the bridge may fill, summed over sessions.",
		}),
		dispatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_jobs_dispatched_total",
			Help: "Jobs grabbed from gearmand and handed to a remote worker.",
		}, []string{"queue"}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_jobs_completed_total",
			Help: "Jobs whose result was submitted and which were completed towards gearmand.",
		}, []string{"queue"}),
		timedOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_jobs_timed_out_total",
			Help: "Jobs for which the bridge wrote the classic timeout result itself.",
		}, []string{"queue"}),
		requeued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_jobs_requeued_total",
			Help: "Unfinished jobs handed back to gearmand by closing a session's connection.",
		}),
		invalidJobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_jobs_invalid_total",
			Help: "Jobs failed towards gearmand because they can never run: undecodable (wrong key, garbage) or invalid (a field no worker or gearmand can use).",
		}, []string{"reason"}),
		refusedJobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_jobs_refused_total",
			Help: "Jobs not sent to the worker and answered with an explicit UNKNOWN result instead, by reason (too_large, unencodable).",
		}, []string{"reason"}),
		failedJobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_jobs_failed_total",
			Help: "Jobs failed towards gearmand because gearmand refused their result for good.",
		}),
		stalled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_streams_stalled_total",
			Help: "Worker streams detached because the worker stopped reading them.",
		}),
		queuesRevoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_session_queues_revoked_total",
			Help: "Queues taken away from live or detached sessions by an authorization reload.",
		}),
		unsendable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_messages_unencodable_total",
			Help: "Messages to workers that could not be encoded; a job among them gets an explicit result.",
		}),
		statusReplies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_status_replies_total",
			Help: "Pings on worker_<identifier> status queues answered for attached workers.",
		}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_jobs_resent_total",
			Help: "Jobs sent again after a resume because the worker never received them.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_results_refused_total",
			Help: "Results refused, by reason.",
		}, []string{"reason"}),
		submitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_result_submit_failures_total",
			Help: "Failed attempts to submit a result to gearmand (temporary errors are retried).",
		}),
		wakeups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_gearmand_wakeups_total",
			Help: "Times a session asleep on gearmand (PRE_SLEEP) was woken; only a few sessions per queue set sleep there at once.",
		}),
		passiveAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_passive_results_accepted_total",
			Help: "Passive results from senders that gearmand accepted.",
		}),
		dupErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_dupserver_failures_total",
			Help: "Result copies that a dupserver did not take.",
		}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gearbridge_bridge_job_duration_seconds",
			Help:    "Time from handing a job to a worker until its result is on the result queue.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}, []string{"queue"}),
		dispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gearbridge_bridge_dispatch_seconds",
			Help:    "Time the bridge adds between receiving a job from gearmand and sending it to the worker.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gearbridge_bridge_stream_batch_messages",
			Help:    "Jobs and acks per batched message to a worker (workers that announce batches).",
			Buckets: prometheus.ExponentialBuckets(2, 2, 7),
		}),
		sessionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_sessions_refused_total",
			Help: "Worker sessions refused after the certificate was accepted, by reason: invalid hello, queue or identifier not allowed, session of another identity, per-identity or total session limit.",
		}, []string{"reason"}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbridge_bridge_tls_handshake_failures_total",
			Help: "TLS handshakes that failed, by reason: unknown_ca, expired, bad_certificate (also a client refusing the bridge's), no_certificate, timeout, other. Connections closed before any TLS record are not counted.",
		}, []string{"reason"}),
		gearmandUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: GearmandUpMetric,
			Help: "1 while the gearmand server answers, 0 while it cannot be reached (probed every few seconds).",
		}, []string{"server"}),
		tlsReloadsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gearbridge_bridge_tls_reloads_refused_total",
			Help: "Reloaded bridge certificates refused (wrong role, no server authentication, not from the CA, not valid now); the previous one stays in use.",
		}),
	}
	// Every reason is reported from the start, so that an alert on a rate
	// sees a zero before the first event.
	for _, r := range []string{"undecodable", "invalid"} {
		m.invalidJobs.WithLabelValues(r)
	}
	for _, r := range []string{"too_large", "unencodable"} {
		m.refusedJobs.WithLabelValues(r)
	}
	for _, r := range resultRefusals {
		m.refused.WithLabelValues(r)
	}
	for _, st := range []string{"attached", "detached"} {
		m.sessions.WithLabelValues(st)
	}
	for _, r := range sessionRefusals {
		m.sessionsRefused.WithLabelValues(r)
	}
	for _, r := range handshakeFailureReasons {
		m.handshakeFailures.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.credit, m.dispatched, m.completed, m.timedOut, m.requeued,
			m.invalidJobs, m.refusedJobs, m.failedJobs, m.stalled, m.unsendable, m.queuesRevoked, m.statusReplies, m.resent, m.refused, m.submitErrors, m.passiveAccepted, m.dupErrors, m.jobDuration, m.dispatchLatency, m.batches, m.wakeups,
			m.sessionsRefused, m.handshakeFailures, m.tlsReloadsRefused, m.gearmandUp)
	}
	return m
}

// identitySessions reports the sessions held per certificate identity
// (attached and detached ones waiting to resume), the count that
// --max-sessions-per-identity bounds; identities without a session have no
// series.
type identitySessions struct {
	b    *Bridge
	desc *prometheus.Desc
}

func newIdentitySessions(b *Bridge) *identitySessions {
	return &identitySessions{b: b, desc: prometheus.NewDesc("gearbridge_bridge_identity_sessions",
		"Worker sessions held per certificate identity, detached ones waiting to resume included (bounded by --max-sessions-per-identity).",
		[]string{"identity"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *identitySessions) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *identitySessions) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	for _, s := range c.b.sessionList() {
		counts[s.identity]++
	}
	for id, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), id)
	}
}
