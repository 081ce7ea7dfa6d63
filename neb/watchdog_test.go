package neb

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestWatchdogSweep(t *testing.T) {
	w := NewWatchdog()
	t0 := time.Unix(1000, 0)
	w.Track(KindService, "h", "s", "service", t0, t0.Add(10*time.Second))
	w.Track(KindHost, "h", "", "hostgroup_x", t0, t0.Add(20*time.Second))
	w.Track(KindService, "h", "done", "service", t0, t0.Add(5*time.Second))
	if !w.Done("h", "done") || w.Done("h", "done") {
		t.Error("Done must report a tracked check once")
	}
	if got := w.Sweep(t0.Add(9 * time.Second)); len(got) != 0 {
		t.Errorf("swept before the deadline: %+v", got)
	}
	got := w.Sweep(t0.Add(10 * time.Second))
	if len(got) != 1 || got[0] != (Expired{Kind: KindService, HostName: "h", ServiceDescription: "s",
		Queue: "service", Submitted: t0, Deadline: t0.Add(10 * time.Second)}) {
		t.Errorf("sweep at the deadline: %+v", got)
	}
	if got := w.Sweep(t0.Add(15 * time.Second)); len(got) != 0 {
		t.Errorf("a check was swept twice: %+v", got)
	}
	// A new submission of the same check moves its deadline.
	w.Track(KindHost, "h", "", "hostgroup_x", t0, t0.Add(40*time.Second))
	if got := w.Sweep(t0.Add(30 * time.Second)); len(got) != 0 || w.Len() != 1 {
		t.Errorf("re-tracked check swept at its old deadline: %+v", got)
	}
}

func TestOrphanGraceOption(t *testing.T) {
	for _, tt := range []struct {
		arg  string
		want time.Duration
	}{{"", 10 * time.Second}, {"orphan_grace=2s", 2 * time.Second}, {"orphan_grace=3", 3 * time.Second},
		{"orphan_grace=1500ms", 1500 * time.Millisecond}, {"orphan_grace=0", 0}} {
		c, err := ParseBrokerArgs("server=localhost encryption=no "+tt.arg, t.TempDir())
		if err != nil || c.OrphanGrace != tt.want {
			t.Errorf("%q: OrphanGrace %v, %v; want %v", tt.arg, c.OrphanGrace, err, tt.want)
		}
	}
	for _, bad := range []string{"orphan_grace=-1s", "orphan_grace=soon", "orphan_grace=", "orphan_grace=2d", "orphan_grace=25h"} {
		if _, err := ParseBrokerArgs("server=localhost encryption=no "+bad, t.TempDir()); err == nil || !strings.Contains(err.Error(), "orphan_grace") {
			t.Errorf("%q: err = %v, want an error naming orphan_grace", bad, err)
		}
	}
}

// watchdogModule starts a module on a fake clock whose watchdog sweeps
// every few milliseconds.
func watchdogModule(t *testing.T, args string, w *Watchdog) (*harness, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	h := newModule(t, args, Options{Now: clk.Now, Watchdog: w, WatchdogPeriod: 5 * time.Millisecond})
	return h, clk
}

// quiet fails if the module delivers a result within d.
func (h *harness) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	if rs := h.out.Take(nil); len(rs) > 0 {
		t.Errorf("unexpected results %+v", rs)
	}
}

func TestWatchdogAnswersOrphanedChecks(t *testing.T) {
	srv := gearmantest.Start(t)
	for _, tt := range []struct {
		name    string
		args    string
		check   Check
		want    bool
		code    int
		message string
	}{
		{name: "service", args: "orphan_grace=2s",
			check: Check{Kind: KindService, HostName: "h", ServiceDescription: "s", Timeout: 5 * time.Second},
			want:  true, code: 2, message: "(service check orphaned, is the mod-gearman worker on queue 'service' running?)\n"},
		{name: "host with orphan_return", args: "orphan_grace=2s orphan_return=3",
			check: Check{Kind: KindHost, HostName: "h", Timeout: 5 * time.Second},
			want:  true, code: 3, message: "(host check orphaned, is the mod-gearman worker on queue 'host' running?)\n"},
		{name: "service results off", args: "orphan_grace=2s orphan_service_checks=no",
			check: Check{Kind: KindService, HostName: "h", ServiceDescription: "s", Timeout: 5 * time.Second}},
		{name: "host results off", args: "orphan_grace=2s orphan_host_checks=no",
			check: Check{Kind: KindHost, HostName: "h", Timeout: 5 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, clk := watchdogModule(t, "server="+srv.Addr()+" encryption=no hosts=yes services=yes result_workers=0 "+tt.args, nil)
			c := tt.check
			c.CommandLine = "/bin/x"
			if d := h.m.Check(&c, fakeObjects{}); d.Action != ActionOverride {
				t.Fatalf("decision %+v", d)
			}
			// The deadline counts from the submission.
			waitFor(t, func() bool { return h.m.Stats().Submitted == 1 })
			clk.Advance(7*time.Second - time.Millisecond)
			h.quiet(t, 50*time.Millisecond)
			clk.Advance(time.Millisecond)
			if tt.want {
				r := h.next(t)
				if r.HostName != c.HostName || r.ServiceDescription != c.ServiceDescription || r.ReturnCode != tt.code ||
					r.Output != tt.message || r.Passive || !r.StartTime.Equal(clk.Now()) {
					t.Errorf("orphan result %+v", r)
				}
			}
			waitFor(t, func() bool { return h.m.Stats().WatchdogOrphans == 1 })
			h.quiet(t, 50*time.Millisecond)
		})
	}
}

func TestWatchdogForgetsAnsweredChecks(t *testing.T) {
	srv := gearmantest.Start(t)
	h, clk := watchdogModule(t, "server="+srv.Addr()+" encryption=no orphan_grace=2s accept_clear_results=yes", nil)
	c := &Check{Kind: KindService, HostName: "h", ServiceDescription: "s", CommandLine: "/bin/x", Timeout: 5 * time.Second}
	h.m.Check(c, fakeObjects{})
	send := resultSender(t, srv.Addr())
	// A passive result for the same service does not answer the check.
	send(modgearman.Result{Type: "passive", HostName: "h", ServiceDescription: "s", Output: "passive"})
	if r := h.next(t); r.Output != "passive" {
		t.Fatalf("result %+v", r)
	}
	send(modgearman.Result{Type: "active", HostName: "h", ServiceDescription: "s", Output: "real", ExitedOK: true})
	if r := h.next(t); r.Output != "real" {
		t.Fatalf("result %+v", r)
	}
	clk.Advance(time.Minute)
	h.quiet(t, 50*time.Millisecond)
	if st := h.m.Stats(); st.WatchdogOrphans != 0 {
		t.Errorf("stats %+v", st)
	}

	// A result that comes after the orphan result is still delivered.
	h.m.Check(c, fakeObjects{})
	waitFor(t, func() bool { return h.m.Stats().Submitted == 2 })
	clk.Advance(7 * time.Second)
	if r := h.next(t); !strings.Contains(r.Output, "orphaned") {
		t.Fatalf("orphan result %+v", r)
	}
	send(modgearman.Result{Type: "active", HostName: "h", ServiceDescription: "s", Output: "late", ExitedOK: true})
	if r := h.next(t); r.Output != "late" {
		t.Errorf("late result %+v", r)
	}
}

func TestWatchdogSkipsChecksAnsweredOtherwise(t *testing.T) {
	srv := gearmantest.Start(t)
	h, clk := watchdogModule(t, "server="+srv.Addr()+" encryption=no orphan_grace=1s", nil)
	// The core's own orphan re-check is answered at once, and only once.
	h.m.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: "o", CommandLine: "/bin/x",
		Timeout: time.Second, CheckOptions: CheckOptionOrphanCheck}, fakeObjects{})
	if r := h.next(t); !strings.Contains(r.Output, "orphaned") {
		t.Fatalf("orphan result %+v", r)
	}
	// A check that cannot be submitted waits for gearmand, then goes back
	// to the core's scheduler: no orphan result, no result at all.
	srv.Stop()
	waitFor(t, func() bool { return !h.m.health.Healthy() })
	h.m.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: "f", CommandLine: "/bin/x",
		Timeout: time.Second}, fakeObjects{})
	clk.Advance(time.Minute)
	if r := h.next(t); !r.GiveBack || r.ServiceDescription != "f" {
		t.Fatalf("give-back %+v", r)
	}
	h.quiet(t, 50*time.Millisecond)
	if st := h.m.Stats(); st.WatchdogOrphans != 0 || h.m.watch.Len() != 0 {
		t.Errorf("stats %+v, in flight %d", st, h.m.watch.Len())
	}
}

// TestWatchdogAcrossModules is the reload: the broker module keeps one
// watchdog, so the next module answers what the closed one submitted, once.
func TestWatchdogAcrossModules(t *testing.T) {
	srv := gearmantest.Start(t)
	w := NewWatchdog()
	args := "server=" + srv.Addr() + " encryption=no orphan_grace=2s result_workers=0"
	c, err := ParseBrokerArgs(args, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	first, err := New(c, Options{Sink: func(r CheckResult) bool { t.Errorf("first module delivered %+v", r); return true },
		Now: clk.Now, Watchdog: w, WatchdogPeriod: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	first.Start()
	first.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: "s", CommandLine: "/bin/x",
		Timeout: 5 * time.Second}, fakeObjects{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}

	h := &harness{out: NewOutbox(0, nil)}
	second, err := New(c, Options{Sink: h.out.Push, Now: func() time.Time { return clk.Now() }, Watchdog: w,
		WatchdogPeriod: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.m = second
	second.Start()
	t.Cleanup(func() { _ = second.Close(context.Background()) })
	clk.Advance(7 * time.Second)
	if r := h.next(t); r.ServiceDescription != "s" || !strings.Contains(r.Output, "orphaned") {
		t.Errorf("orphan result %+v", r)
	}
	h.quiet(t, 50*time.Millisecond)
	if st := second.Stats(); st.WatchdogOrphans != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestWatchdogGivesBackChecksLostWithGearmand: a check submitted before a
// gearmand restart (its memory queue gone) is given back at its deadline,
// not answered with the orphan result: the outage is ours, not the check's.
func TestWatchdogGivesBackChecksLostWithGearmand(t *testing.T) {
	srv := gearmantest.Start(t)
	h, clk := watchdogModule(t, "server="+srv.Addr()+" encryption=no orphan_grace=2s result_workers=0", nil)
	c := &Check{Kind: KindService, HostName: "h", ServiceDescription: "lost", CommandLine: "/bin/x", Timeout: 5 * time.Second}
	h.m.Check(c, fakeObjects{})
	waitFor(t, func() bool { return h.m.Stats().Submitted == 1 })
	clk.Advance(time.Second)
	srv.Restart(t)
	waitFor(t, func() bool { return h.m.health.LostSince(clk.Now().Add(-time.Millisecond)) })
	clk.Advance(6 * time.Second)
	if r := h.next(t); !r.GiveBack || r.ServiceDescription != "lost" || r.Output != "" {
		t.Fatalf("result %+v, want a give-back", r)
	}
	// A check submitted after the restart is the worker's business again.
	waitFor(t, func() bool { return h.m.health.Healthy() || h.m.Check(c, fakeObjects{}).Action == ActionOverride })
	before := h.m.Stats().Submitted
	clk.Advance(time.Second)
	h.m.Check(c, fakeObjects{})
	waitFor(t, func() bool { return h.m.Stats().Submitted > before })
	clk.Advance(8 * time.Second)
	if r := h.next(t); r.GiveBack || !strings.Contains(r.Output, "orphaned") {
		t.Fatalf("result %+v, want the orphan result", r)
	}
	if st := h.m.Stats(); st.OutageOrphans != 1 || st.WatchdogOrphans != 1 {
		t.Errorf("stats %+v", st)
	}
}

// backlogModule starts a module on a fake clock whose sink blocks on a
// result for the service "block" until release is closed: the result
// worker stops reading, as when the core's main thread falls behind, and
// the results behind it wait in gearmand.
func backlogModule(t *testing.T, args string, release chan struct{}, logs *lockedBuffer) (*harness, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	h := &harness{out: NewOutbox(0, nil)}
	// One result at a time: a result held in the sink holds up the next.
	h.start(t, args, Options{Now: clk.Now, ResultsInFlight: 1, WatchdogPeriod: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil)), Sink: func(r CheckResult) bool {
		if r.ServiceDescription == "block" {
			<-release
		}
		return h.out.Push(r)
	}})
	return h, clk
}

// TestWatchdogWaitsForResultBacklog: a check whose result waits unread in
// the result queue past the check's deadline gets that result, not the
// orphan result; a check whose result never comes is orphaned once the
// module has read everything that was waiting.
func TestWatchdogWaitsForResultBacklog(t *testing.T) {
	srv := gearmantest.Start(t)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	var logs lockedBuffer
	h, clk := backlogModule(t, "server="+srv.Addr()+" encryption=no orphan_grace=2s result_workers=1 accept_clear_results=yes", release, &logs)
	t.Cleanup(unblock) // before the module's Close: cleanups run last first
	answered := &Check{Kind: KindService, HostName: "h", ServiceDescription: "answered", CommandLine: "/bin/x", Timeout: 5 * time.Second}
	silent := &Check{Kind: KindHost, HostName: "silent", CommandLine: "/bin/x", Timeout: 5 * time.Second}
	h.m.Check(answered, fakeObjects{})
	h.m.Check(silent, fakeObjects{})
	waitFor(t, func() bool { return h.m.Stats().Submitted == 2 })

	send := resultSender(t, srv.Addr())
	// The reader takes this one and hangs in the sink ...
	send(modgearman.Result{Type: "passive", HostName: "h", ServiceDescription: "block", Output: "first"})
	waitFor(t, func() bool { return h.m.Stats().Results == 1 })
	// ... so the real result of "answered" waits in gearmand, in time.
	send(modgearman.Result{Type: "active", HostName: "h", ServiceDescription: "answered", Output: "real", ExitedOK: true})

	clk.Advance(8 * time.Second) // both deadlines (7s) passed
	waitFor(t, func() bool { return h.m.Stats().OrphansDeferred == 2 })
	h.quiet(t, 100*time.Millisecond)
	if st := h.m.Stats(); st.WatchdogOrphans != 0 || h.m.watch.Len() != 2 {
		t.Fatalf("behind the result queue: stats %+v, in flight %d", st, h.m.watch.Len())
	}
	// Dozens of sweeps were behind: one log line, naming the backlog.
	if n := strings.Count(logs.String(), "not declared orphaned yet"); n != 1 ||
		!strings.Contains(logs.String(), srv.Addr()+": 2 results in queue 'check_results'") {
		t.Errorf("%d lines about deferred orphans, want 1 naming the backlog:\n%s", n, logs.String())
	}

	// The module catches up: the real result, then the orphan result of
	// the check that never had one.
	unblock()
	got := map[string]CheckResult{}
	for len(got) < 3 {
		r := h.next(t)
		if _, dup := got[r.HostName+"/"+r.ServiceDescription]; dup {
			t.Fatalf("second result %+v", r)
		}
		got[r.HostName+"/"+r.ServiceDescription] = r
	}
	if r := got["h/answered"]; r.Output != "real" {
		t.Errorf("answered check got %+v, want its real result", r)
	}
	if r := got["silent/"]; r.ReturnCode != 2 || !strings.Contains(r.Output, "host check orphaned") {
		t.Errorf("silent check got %+v, want the orphan result", r)
	}
	h.quiet(t, 100*time.Millisecond)
	if st := h.m.Stats(); st.WatchdogOrphans != 1 || st.OrphansDeferred != 2 || h.m.watch.Len() != 0 {
		t.Errorf("stats %+v, in flight %d", st, h.m.watch.Len())
	}
}

// resultSender returns a function that puts a result, in clear, on the
// check_results queue of the gearmand at addr.
func resultSender(t *testing.T, addr string) func(modgearman.Result) {
	t.Helper()
	client := gearman.NewClient([]string{addr}, gearman.ClientOptions{})
	t.Cleanup(func() { client.Close() })
	clearCodec, _ := modgearman.NewCodec("", false)
	return func(r modgearman.Result) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		payload := r.Marshal()
		if r.IsPassive() {
			payload = r.MarshalPassive()
		}
		if _, err := client.Submit(ctx, "check_results", "", clearCodec.Encode(payload), gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
	}
}
