// Package certwatch makes certificate expiry visible before it bites. A
// [Watcher] looks at a daemon's own certificate and the CA it trusts,
// exports when each expires as gearbridge_certificate_expiry_timestamp_seconds
// and logs a warning once one of them is within 30 days of expiry, again
// every day until it is replaced. The bridge, the worker and the sender
// daemon all use it, through [Start].
package certwatch

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearbridge/gearbridge/certs"
)

// MetricName is the gauge of each watched certificate's expiry time, as a
// Unix timestamp, labelled role and identity (see [Labels]).
const MetricName = "gearbridge_certificate_expiry_timestamp_seconds"

// Defaults of [Options].
const (
	// DefaultWarnBefore is when warnings start: 30 days leave time to renew
	// by hand or to find out why automatic renewal (due with a third of a
	// 90-day lifetime left) does not happen.
	DefaultWarnBefore = 30 * 24 * time.Hour
	// DefaultRepeat repeats the warning daily, so it shows up in every
	// day's logs without flooding them.
	DefaultRepeat = 24 * time.Hour
	// DefaultInterval is how often the certificates are looked at: a
	// renewal or reload shows in the metric within a minute, and reading two
	// small files a minute costs nothing.
	DefaultInterval = time.Minute
)

// Options tune a Watcher. Zero values mean the defaults.
type Options struct {
	WarnBefore time.Duration    // warn when less than this is left
	Repeat     time.Duration    // repeat a warning after this long
	Interval   time.Duration    // how often Run checks
	Now        func() time.Time // the clock; tests move it
}

func (o Options) withDefaults() Options {
	o.WarnBefore = cmp.Or(o.WarnBefore, DefaultWarnBefore)
	o.Repeat = cmp.Or(o.Repeat, DefaultRepeat)
	o.Interval = cmp.Or(o.Interval, DefaultInterval)
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Watcher checks the certificates of a [Source]. Create it with [New]; it
// is safe for concurrent use.
type Watcher struct {
	src  Source
	log  *slog.Logger
	o    Options
	desc *prometheus.Desc

	mu      sync.Mutex
	entries []entry            // the last certificates read
	logged  map[entry]logState // the last log line of each certificate
	readErr string             // the last read error logged, "" if none
}

// entry is one watched certificate.
type entry struct {
	role, identity, file string
	notAfter             time.Time
}

type logState struct {
	at      time.Time
	expired bool
}

// New returns a watcher of src that logs to log (nil discards) and
// registers the expiry metric with reg (nil registers nothing). It reads
// nothing until Check or Run.
func New(src Source, log *slog.Logger, reg prometheus.Registerer, o Options) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		src: src,
		log: log,
		o:   o.withDefaults(),
		desc: prometheus.NewDesc(MetricName,
			"When the certificate expires (Unix time): the process's own certificate (role and identity from the certificate) and each CA it trusts (role \"ca\", identity its common name).",
			[]string{"role", "identity"}, nil),
		logged: map[entry]logState{},
	}
	if reg != nil {
		if err := reg.Register(w); err != nil {
			return nil, fmt.Errorf("register certificate expiry metric: %w", err)
		}
	}
	return w, nil
}

// Start checks src at once and then every minute until ctx ends or the
// returned stop is called; stop waits for the watcher and may be called
// more than once. It is the one call a daemon makes:
//
//	defer certwatch.Start(ctx, certwatch.Reloaded(tlsReloader), log, reg)()
//
// If the metric cannot be registered (it already is, on reg), that is
// logged and the warnings still work.
func Start(ctx context.Context, src Source, log *slog.Logger, reg prometheus.Registerer) (stop func()) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := New(src, log, reg, Options{})
	if err != nil {
		log.Error("certificate expiry is not exported as a metric", "err", err)
		w, _ = New(src, log, nil, Options{})
	}
	w.Check()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.loop(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// Run checks at once and then every interval until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	w.Check()
	w.loop(ctx)
}

func (w *Watcher) loop(ctx context.Context) {
	t := time.NewTicker(w.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check()
		}
	}
}

// Check reads the certificates, updates the metric and logs the warnings
// that are due. If the source cannot be read, the last certificates read
// stay in the metric and the error is logged once.
func (w *Watcher) Check() {
	set, err := w.src.Certificates()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if msg := err.Error(); msg != w.readErr {
			w.readErr = msg
			w.log.Warn("cannot read certificate for expiry checks; the metric keeps the last values", "err", err)
		}
	} else {
		w.readErr = ""
		w.entries = set.entries()
	}
	now := w.o.Now()
	logged := make(map[entry]logState, len(w.entries))
	for _, e := range w.entries {
		last, seen := w.logged[e]
		left := e.notAfter.Sub(now)
		expired := left <= 0
		switch {
		case left > w.o.WarnBefore:
			continue
		case !seen || last.expired != expired || now.Sub(last.at) >= w.o.Repeat:
			w.logExpiry(e, left)
			last = logState{at: now, expired: expired}
		}
		logged[e] = last
	}
	w.logged = logged
}

func (w *Watcher) logExpiry(e entry, left time.Duration) {
	attrs := []any{"role", e.role, "identity", e.identity, "file", e.file,
		"expires", e.notAfter.UTC().Format(time.RFC3339)}
	if left <= 0 {
		w.log.Error("certificate has expired; connections that need it are refused", attrs...)
		return
	}
	w.log.Warn("certificate expires soon", append(attrs, "days_left", int(left/(24*time.Hour)))...)
}

// Describe implements prometheus.Collector.
func (w *Watcher) Describe(ch chan<- *prometheus.Desc) { ch <- w.desc }

// Collect implements prometheus.Collector.
func (w *Watcher) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	entries := w.entries
	w.mu.Unlock()
	for _, e := range entries {
		ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, float64(e.notAfter.Unix()), e.role, e.identity)
	}
}

// Labels are the role and identity a certificate is reported under: those
// of its gearbridge identity; for a CA "ca" and its common name; otherwise
// "unknown" and its common name.
func Labels(cert *x509.Certificate) (role, identity string) {
	if r, name, err := certs.IdentityOf(cert); err == nil {
		return string(r), name
	}
	if cert.IsCA {
		return "ca", cert.Subject.CommonName
	}
	return "unknown", cert.Subject.CommonName
}

// Set is what a Source returns: the process's own certificate and the CA
// certificates it trusts, with the files they come from.
type Set struct {
	Own     *x509.Certificate
	OwnFile string
	CAs     []*x509.Certificate
	CAFile  string
}

// entries lists the certificates of s, one per label set: of two CAs with
// the same name the one expiring first counts.
func (s Set) entries() []entry {
	var es []entry
	add := func(c *x509.Certificate, role, identity, file string) {
		i := slices.IndexFunc(es, func(e entry) bool { return e.role == role && e.identity == identity })
		switch {
		case i < 0:
			es = append(es, entry{role: role, identity: identity, file: file, notAfter: c.NotAfter})
		case c.NotAfter.Before(es[i].notAfter):
			es[i].notAfter = c.NotAfter
		}
	}
	if s.Own != nil {
		role, id := Labels(s.Own)
		add(s.Own, role, id, s.OwnFile)
	}
	for _, c := range s.CAs {
		add(c, "ca", c.Subject.CommonName, s.CAFile)
	}
	return es
}
