package certwatch

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gearbridge/gearbridge/certs"
)

// logRecorder keeps the records a watcher logs.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// take returns the records logged since the last take, as
// "LEVEL message key=value ..." lines.
func (l *logRecorder) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		var b strings.Builder
		b.WriteString(r.Level.String() + " " + r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.Key + "=" + a.Value.String())
			return true
		})
		out = append(out, b.String())
	}
	l.recs = nil
	return out
}

// testPKI is a CA directory with one worker certificate issued from it.
type testPKI struct {
	ca                        *certs.CA
	certFile, keyFile, caFile string
}

func newPKI(t *testing.T, caLifetime, leafLifetime time.Duration) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.InitCA(dir, certs.CAOptions{CommonName: "test CA", Lifetime: caLifetime})
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{ca: ca, certFile: filepath.Join(dir, "w1.crt"), keyFile: filepath.Join(dir, "w1.key"), caFile: filepath.Join(dir, certs.CACertFile)}
	p.issue(t, leafLifetime)
	return p
}

// issue writes a new worker certificate for w1 with the given lifetime.
func (p *testPKI) issue(t *testing.T, lifetime time.Duration) {
	t.Helper()
	crt, key, err := p.ca.IssueClient(certs.RoleWorker, "w1", lifetime)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFileAtomic(p.certFile, crt, certs.CertFileMode); err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFileAtomic(p.keyFile, key, certs.KeyFileMode); err != nil {
		t.Fatal(err)
	}
}

func expiryOf(t *testing.T, reg *prometheus.Registry, role, identity string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != MetricName {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["role"] == role && labels["identity"] == identity {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{role=%q,identity=%q}", MetricName, role, identity)
	return 0
}

func TestMetricFollowsReloads(t *testing.T) {
	p := newPKI(t, 0, 90*24*time.Hour)
	r, err := certs.NewReloader(p.certFile, p.keyFile, p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := New(Reloaded(r), nil, reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Check()
	if got, want := expiryOf(t, reg, "worker", "w1"), float64(r.Leaf().NotAfter.Unix()); got != want {
		t.Errorf("own certificate: %v, want %v", got, want)
	}
	if got, want := expiryOf(t, reg, "ca", "test CA"), float64(p.ca.Certificate().NotAfter.Unix()); got != want {
		t.Errorf("CA: %v, want %v", got, want)
	}
	if n := testutil.CollectAndCount(reg, MetricName); n != 2 {
		t.Errorf("%d series, want 2", n)
	}

	// A renewal writes new files and reloads; the metric follows.
	old := r.Leaf().NotAfter
	p.issue(t, 10*24*time.Hour)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	w.Check()
	if got, want := expiryOf(t, reg, "worker", "w1"), float64(r.Leaf().NotAfter.Unix()); got != want || got == float64(old.Unix()) {
		t.Errorf("after reload: %v, want %v", got, want)
	}
}

func TestFilesSource(t *testing.T) {
	p := newPKI(t, 0, 90*24*time.Hour)
	reg := prometheus.NewRegistry()
	rec := &logRecorder{}
	w, err := New(Files(p.certFile, p.caFile), slog.New(rec), reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Check()
	first := expiryOf(t, reg, "worker", "w1")
	p.issue(t, 20*24*time.Hour)
	w.Check()
	if got := expiryOf(t, reg, "worker", "w1"); got >= first {
		t.Errorf("the metric did not follow the file: %v, first %v", got, first)
	}
	rec.take()

	// An unreadable file keeps the last values and is logged once.
	if err := certs.WriteFileAtomic(p.certFile, []byte("garbage"), certs.CertFileMode); err != nil {
		t.Fatal(err)
	}
	w.Check()
	w.Check()
	logs := rec.take()
	if len(logs) != 1 || !strings.HasPrefix(logs[0], "WARN cannot read certificate for expiry checks") {
		t.Errorf("logs = %q, want one warning", logs)
	}
	if n := testutil.CollectAndCount(reg, MetricName); n != 2 {
		t.Errorf("%d series after a read error, want the last 2", n)
	}
}

func TestWarnsBeforeExpiryThenDaily(t *testing.T) {
	p := newPKI(t, 0, 90*24*time.Hour)
	r, err := certs.NewReloader(p.certFile, p.keyFile, p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	notAfter := r.Leaf().NotAfter
	now := notAfter.Add(-60 * 24 * time.Hour)
	rec := &logRecorder{}
	w, err := New(Reloaded(r), slog.New(rec), prometheus.NewRegistry(), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		at      time.Time
		want    string // prefix of the one line expected; "" for none
		details []string
	}{
		{"60 days left", notAfter.Add(-60 * 24 * time.Hour), "", nil},
		{"29 days left", notAfter.Add(-29 * 24 * time.Hour), "WARN certificate expires soon",
			[]string{"role=worker", "identity=w1", "file=" + p.certFile, "expires=" + notAfter.UTC().Format(time.RFC3339), "days_left=29"}},
		{"an hour later", notAfter.Add(-29*24*time.Hour + time.Hour), "", nil},
		{"a day later", notAfter.Add(-28*24*time.Hour + time.Minute), "WARN certificate expires soon", []string{"days_left=27"}},
		{"expired", notAfter.Add(time.Hour), "ERROR certificate has expired", []string{"identity=w1"}},
		{"expired, same day", notAfter.Add(2 * time.Hour), "", nil},
	}
	for _, s := range steps {
		now = s.at
		w.Check()
		logs := rec.take()
		if s.want == "" {
			if len(logs) != 0 {
				t.Errorf("%s: logged %q, want nothing", s.name, logs)
			}
			continue
		}
		if len(logs) != 1 || !strings.HasPrefix(logs[0], s.want) {
			t.Errorf("%s: logged %q, want one %q", s.name, logs, s.want)
			continue
		}
		for _, d := range s.details {
			if !strings.Contains(logs[0], d) {
				t.Errorf("%s: %q lacks %q", s.name, logs[0], d)
			}
		}
	}

	// A renewed certificate ends the warnings.
	p.issue(t, 90*24*time.Hour)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	now = time.Now()
	w.Check()
	if logs := rec.take(); len(logs) != 0 {
		t.Errorf("after renewal: %q", logs)
	}
}

func TestWarnsAboutTheCA(t *testing.T) {
	p := newPKI(t, 40*24*time.Hour, 10*24*time.Hour)
	caAfter := p.ca.Certificate().NotAfter
	now := caAfter.Add(-20 * 24 * time.Hour)
	rec := &logRecorder{}
	w, err := New(Files(p.certFile, p.caFile), slog.New(rec), prometheus.NewRegistry(), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	w.Check()
	var caLines []string
	for _, l := range rec.take() {
		if strings.Contains(l, "role=ca") {
			caLines = append(caLines, l)
		}
	}
	if len(caLines) != 1 || !strings.HasPrefix(caLines[0], "WARN certificate expires soon") ||
		!strings.Contains(caLines[0], "identity=test CA") || !strings.Contains(caLines[0], "file="+p.caFile) {
		t.Errorf("CA warnings %q", caLines)
	}
}

func TestStartStops(t *testing.T) {
	p := newPKI(t, 0, 90*24*time.Hour)
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := Start(ctx, Files(p.certFile, p.caFile), nil, reg)
	if n := testutil.CollectAndCount(reg, MetricName); n != 2 {
		t.Errorf("%d series right after Start, want 2", n)
	}
	stop()
	stop() // twice is fine
	// A second watcher on the same registry cannot register; it still
	// runs (logging) and stops.
	Start(ctx, Files(p.certFile, p.caFile), nil, reg)()
}

func TestLabels(t *testing.T) {
	p := newPKI(t, 0, time.Hour)
	r, err := certs.NewReloader(p.certFile, p.keyFile, p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if role, id := Labels(r.Leaf()); role != "worker" || id != "w1" {
		t.Errorf("leaf: %s %s", role, id)
	}
	if role, id := Labels(p.ca.Certificate()); role != "ca" || id != "test CA" {
		t.Errorf("CA: %s %s", role, id)
	}
}
