package sender

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeTransport records what it delivered; down makes every result a
// temporary failure, refuse refuses hosts for good.
type fakeTransport struct {
	mu        sync.Mutex
	down      bool
	callFails bool
	refuse    map[string]bool
	got       []Result
	calls     int
}

func (f *fakeTransport) Send(_ context.Context, rs []Result) []Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	out := make([]Outcome, len(rs))
	for i, r := range rs {
		switch {
		case f.callFails:
			out[i] = Outcome{Call: true, Reason: "bridge refused the call: PermissionDenied"}
		case f.down:
			out[i] = Outcome{Retry: true, Reason: "bridge unavailable"}
		case f.refuse[r.Host]:
			out[i] = Outcome{Reason: "not allowed: " + r.Host}
		default:
			out[i] = Outcome{Accepted: true}
			f.got = append(f.got, r)
		}
	}
	return out
}

func (f *fakeTransport) Close() error { return nil }

func (f *fakeTransport) set(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fakeTransport) delivered() []Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Result(nil), f.got...)
}

func result(i int) Result {
	t := time.Unix(1700000000, int64(i)*1000).UTC()
	return Result{Host: fmt.Sprintf("h%04d", i), Service: "svc", ReturnCode: i % 4, Output: fmt.Sprintf("out %d\nlong|p=%d", i, i), Start: t, Finish: t}
}

func newTestSender(t *testing.T, tr Transport, cfg SpoolConfig) (*Sender, *Spool, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	cfg.Metrics = m
	sp, err := OpenSpool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Transport: tr, Spool: sp, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return s, sp, reg
}

// TestSpoolOrder: with the receiver down, 1,000 submits each spool their
// result; when it is back, the next submit drains the spool in order before
// its own result, and nothing is lost or duplicated.
func TestSpoolOrder(t *testing.T) {
	ctx := context.Background()
	tr := &fakeTransport{down: true}
	s, sp, reg := newTestSender(t, tr, SpoolConfig{DrainBatch: 64})
	const n = 1000
	for i := range n {
		rep, err := s.Submit(ctx, []Result{result(i)})
		if err != nil || rep.Spooled != 1 || rep.Accepted != 0 {
			t.Fatalf("submit %d while down: %+v, %v", i, rep, err)
		}
	}
	if got := testutil.ToFloat64(s.cfg.Metrics.spooled); got != n {
		t.Fatalf("spooled metric %v, want %d", got, n)
	}
	if _, results, _, err := sp.Stats(ctx); err != nil || results != n {
		t.Fatalf("spool holds %d results (%v), want %d", results, err, n)
	}
	tr.set(false)
	rep, err := s.Submit(ctx, []Result{result(n)})
	if err != nil || rep.Accepted != 1 || rep.FromSpool.Delivered != n || rep.FromSpool.Remaining != 0 {
		t.Fatalf("submit after recovery: %+v, %v", rep, err)
	}
	got := tr.delivered()
	if len(got) != n+1 {
		t.Fatalf("delivered %d, want %d", len(got), n+1)
	}
	for i, r := range got {
		if r != result(i) {
			t.Fatalf("delivery %d is %+v, want %+v", i, r, result(i))
		}
	}
	if entries, _, _, _ := sp.Stats(ctx); entries != 0 {
		t.Fatalf("%d entries left", entries)
	}
	if v := testutil.ToFloat64(s.cfg.Metrics.delivered); v != n {
		t.Fatalf("delivered metric %v", v)
	}
	if v := testutil.ToFloat64(s.cfg.Metrics.accepted); v != n+1 {
		t.Fatalf("accepted metric %v", v)
	}
	_ = reg
}

// TestSpoolBacklogKeepsOrder: while the spool is not empty, new results are
// spooled behind it even if the receiver would take them.
func TestSpoolBacklogKeepsOrder(t *testing.T) {
	ctx := context.Background()
	tr := &fakeTransport{down: true}
	s, _, _ := newTestSender(t, tr, SpoolConfig{})
	if _, err := s.Submit(ctx, []Result{result(0), result(1)}); err != nil {
		t.Fatal(err)
	}
	tr.set(false)
	if _, err := s.Submit(ctx, []Result{result(2)}); err != nil {
		t.Fatal(err)
	}
	got := tr.delivered()
	if len(got) != 3 || got[0] != result(0) || got[1] != result(1) || got[2] != result(2) {
		t.Fatalf("delivered %+v", got)
	}
}

func TestSpoolFull(t *testing.T) {
	ctx := context.Background()
	tr := &fakeTransport{down: true}
	s, sp, _ := newTestSender(t, tr, SpoolConfig{MaxBytes: 2000})
	var err error
	var rep Report
	i := 0
	for ; i < 100; i++ {
		if rep, err = s.Submit(ctx, []Result{result(i)}); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrSpoolFull) || len(rep.Failed) != 1 || rep.Spooled != 0 {
		t.Fatalf("after %d results: %+v, %v; want ErrSpoolFull", i, rep, err)
	}
	for _, want := range []string{"spool is full", sp.Dir(), "limit 2000 bytes", "NOT spooled"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// What was spooled before is intact and drains.
	tr.set(false)
	if dr, err := s.Drain(ctx); err != nil || dr.Delivered != i {
		t.Fatalf("drain: %+v, %v; want %d", dr, err, i)
	}
}

func TestSpoolExpiredAndRefusedGoToDead(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	tr := &fakeTransport{down: true, refuse: map[string]bool{"h0001": true}}
	dir := t.TempDir()
	s, sp, _ := newTestSender(t, tr, SpoolConfig{Dir: dir, MaxAge: time.Hour, Now: clock})
	if _, err := s.Submit(ctx, []Result{result(0)}); err != nil {
		t.Fatal(err)
	}
	// Age the first entry beyond MaxAge.
	ents, _ := filepath.Glob(filepath.Join(dir, "*"+spoolExt))
	old := now.Add(-2 * time.Hour)
	if err := os.Chtimes(ents[0], old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Submit(ctx, []Result{result(1), result(2)}); err != nil {
		t.Fatal(err)
	}
	tr.set(false)
	dr, err := s.Drain(ctx)
	if err != nil || dr.Delivered != 1 || dr.Dead != 1 {
		t.Fatalf("drain: %+v, %v", dr, err)
	}
	dead, _ := os.ReadDir(filepath.Join(dir, deadDir))
	if len(dead) != 2 {
		t.Fatalf("dead/ holds %d files, want 2 (expired, refused)", len(dead))
	}
	if got := testutil.ToFloat64(sp.cfg.Metrics.dead.WithLabelValues("expired")); got != 1 {
		t.Errorf("expired metric %v", got)
	}
	if got := testutil.ToFloat64(sp.cfg.Metrics.dead.WithLabelValues("refused")); got != 1 {
		t.Errorf("refused metric %v", got)
	}
}

// TestSpoolCallRefusalKeepsEntries: a refusal of the whole call (wrong
// certificate) is a configuration problem; the spool keeps the results.
func TestSpoolCallRefusalKeepsEntries(t *testing.T) {
	ctx := context.Background()
	tr := &fakeTransport{down: true}
	s, sp, _ := newTestSender(t, tr, SpoolConfig{})
	if _, err := s.Submit(ctx, []Result{result(0)}); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	tr.down, tr.callFails = false, true
	tr.mu.Unlock()
	if _, err := s.Drain(ctx); !errors.Is(err, ErrUndelivered) {
		t.Fatalf("drain: %v", err)
	}
	if _, n, _, _ := sp.Stats(ctx); n != 1 {
		t.Fatalf("spool holds %d results, want 1", n)
	}
}

func TestSubmitWithoutSpool(t *testing.T) {
	tr := &fakeTransport{down: true}
	m := NewMetrics(prometheus.NewRegistry())
	s, err := New(Config{Transport: tr, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Submit(context.Background(), []Result{result(0), {Host: "", ReturnCode: 0}})
	if err == nil || len(rep.Failed) != 1 || len(rep.Refused) != 1 || rep.Failed[0].Index != 0 || rep.Refused[0].Index != 1 {
		t.Fatalf("%+v, %v", rep, err)
	}
	tr.mu.Lock()
	tr.down, tr.refuse = false, map[string]bool{"h0001": true}
	tr.mu.Unlock()
	rep, err = s.Submit(context.Background(), []Result{result(0), result(1)})
	if err != nil || rep.Accepted != 1 || len(rep.Refused) != 1 || !strings.HasPrefix(rep.Refused[0].Reason, "not allowed") {
		t.Fatalf("%+v, %v", rep, err)
	}
	for label, want := range map[string]float64{"invalid": 1, "not_allowed": 1} {
		if got := testutil.ToFloat64(m.refused.WithLabelValues(label)); got != want {
			t.Errorf("refused{reason=%q} = %v, want %v", label, got, want)
		}
	}
	if got := testutil.ToFloat64(m.accepted); got != 1 {
		t.Errorf("accepted = %v", got)
	}
}

// TestSpoolConcurrentProcesses: several spool handles on one directory (as
// separate processes would have) append concurrently; every result arrives
// exactly once.
func TestSpoolConcurrent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tr := &fakeTransport{down: true}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _, _ := newTestSender(t, tr, SpoolConfig{Dir: dir})
			for i := range 50 {
				if _, err := s.Submit(ctx, []Result{result(w*100 + i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	tr.set(false)
	s, _, _ := newTestSender(t, tr, SpoolConfig{Dir: dir})
	if dr, err := s.Drain(ctx); err != nil || dr.Delivered != 200 {
		t.Fatalf("drain %+v %v", dr, err)
	}
	seen := map[string]int{}
	for _, r := range tr.delivered() {
		seen[r.Host]++
	}
	if len(seen) != 200 {
		t.Fatalf("%d distinct results", len(seen))
	}
	for h, n := range seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times", h, n)
		}
	}
}
