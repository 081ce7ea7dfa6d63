package buildinfo

import "github.com/prometheus/client_golang/prometheus"

// MetricName is the constant 1 gauge labelled with the build's version
// and commit, so that dashboards show which build runs and alerts can join
// on it.
const MetricName = "gearbridge_build_info"

// Collector returns the gearbridge_build_info gauge of i.
func (i Info) Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        MetricName,
		Help:        "Always 1; labelled with the version and commit of the running gearbridge build.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit},
	})
	g.Set(1)
	return g
}
