package sender

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// spoolCollector exports a spool's backlog, read from its directory at
// every scrape. It takes no lock: a scrape must not wait behind a drain
// that holds the spool for a slow bridge, and an entry renamed or removed
// during the read only makes one scrape a little off.
type spoolCollector struct {
	s                           *Spool
	entries, bytes, oldest, max *prometheus.Desc
}

// Collector returns the collector of the spool's gauges:
// gearbridge_sender_spool_entries, _bytes, _oldest_age_seconds (0 when
// empty; an entry's age is what spool-max-age compares) and _max_bytes.
func (s *Spool) Collector() prometheus.Collector {
	return &spoolCollector{
		s:       s,
		entries: prometheus.NewDesc("gearbridge_sender_spool_entries", "Entries (one per spooled batch of results) waiting in the spool.", nil, nil),
		bytes:   prometheus.NewDesc("gearbridge_sender_spool_bytes", "Bytes of the entries waiting in the spool.", nil, nil),
		oldest: prometheus.NewDesc("gearbridge_sender_spool_oldest_age_seconds",
			"Age of the oldest entry waiting in the spool (0 when empty); at spool-max-age it moves to dead/.", nil, nil),
		max: prometheus.NewDesc("gearbridge_sender_spool_max_bytes", "Spool size limit; beyond it results are refused.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.bytes
	ch <- c.oldest
	ch <- c.max
}

// Collect implements prometheus.Collector.
func (c *spoolCollector) Collect(ch chan<- prometheus.Metric) {
	n, size, oldest := c.s.backlog()
	age := 0.0
	if n > 0 {
		age = max(c.s.cfg.Now().Sub(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(size))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(c.s.cfg.MaxBytes))
}

// backlog counts the spool's entries, their bytes and the oldest one's
// time, as list sees them, without the lock.
func (s *Spool) backlog() (n int, size int64, oldest time.Time) {
	des, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return 0, 0, time.Time{}
	}
	for _, de := range des {
		num, ok := strings.CutSuffix(de.Name(), spoolExt)
		if !ok || !de.Type().IsRegular() || strings.HasPrefix(de.Name(), tmpPrefix) {
			continue
		}
		if _, err := strconv.ParseUint(num, 10, 64); err != nil {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		n++
		size += fi.Size()
		if oldest.IsZero() || fi.ModTime().Before(oldest) {
			oldest = fi.ModTime()
		}
	}
	return n, size, oldest
}
