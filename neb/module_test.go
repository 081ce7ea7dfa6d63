package neb

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

const testKey = "testkey-0123456789"

type harness struct {
	m    *Module
	out  *Outbox
	woke chan struct{}
}

func newModule(t *testing.T, args string, opts Options) *harness {
	t.Helper()
	h := &harness{woke: make(chan struct{}, 1)}
	h.out = NewOutbox(0, func() {
		select {
		case h.woke <- struct{}{}:
		default:
		}
	})
	opts.Sink = h.out.Push
	h.start(t, args, opts)
	return h
}

// start builds h's module from args and opts, starts it and closes it when
// the test ends.
func (h *harness) start(t *testing.T, args string, opts Options) {
	t.Helper()
	c, err := ParseBrokerArgs(args, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h.m, err = New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.m.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.m.Close(ctx)
	})
}

// next waits for the next result delivered to the outbox.
func (h *harness) next(t *testing.T) CheckResult {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if rs := h.out.Take(nil); len(rs) > 0 {
			for _, r := range rs[1:] {
				h.out.Push(r)
			}
			return rs[0]
		}
		select {
		case <-h.woke:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatal("no result delivered")
		}
	}
}

func grab(t *testing.T, addr, fn string) *gearman.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wc, err := gearman.DialWorker(ctx, addr, gearman.WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo(fn); err != nil {
		t.Fatal(err)
	}
	j, err := wc.Grab(ctx)
	if err != nil {
		t.Fatalf("grab %s: %v", fn, err)
	}
	_ = wc.Complete(j.Handle, nil)
	return j
}

func TestModuleSubmitsJobsAndTakesResults(t *testing.T) {
	srv := gearmantest.Start(t)
	h := newModule(t, "server="+srv.Addr()+" key="+testKey+" hosts=yes services=yes eventhandler=yes hostgroups=hg accept_clear_results=yes",
		Options{CancelHonoured: true, Version: "test"})
	codec, _ := modgearman.NewCodec(testKey, true)

	c := &Check{Kind: KindService, HostName: "h1", ServiceDescription: "disk /", CommandLine: "/bin/check_disk -w 10",
		Timeout: 60 * time.Second, Latency: 1500 * time.Millisecond}
	before := time.Now()
	d := h.m.Check(c, fakeObjects{})
	if d.Action != ActionOverride || d.Queue != "service" {
		t.Fatalf("decision %+v", d)
	}
	j := grab(t, srv.Addr(), "service")
	if j.Unique != modgearman.Uniq("h1", "disk /") {
		t.Errorf("unique %q", j.Unique)
	}
	plain, err := codec.Decode(j.Data)
	if err != nil {
		t.Fatal(err)
	}
	job, err := modgearman.ParseJob(plain)
	if err != nil {
		t.Fatal(err)
	}
	if job.Type != modgearman.JobService || job.HostName != "h1" || job.ServiceDescription != "disk /" ||
		job.CommandLine != c.CommandLine || job.ResultQueue != "check_results" || job.TargetQueue != "service" ||
		job.Timeout != 60*time.Second {
		t.Errorf("job %+v", job)
	}
	if lag := before.Sub(job.CoreTime); lag < 1400*time.Millisecond || lag > 2*time.Second {
		t.Errorf("core_time %v is not now - latency (%v)", job.CoreTime, lag)
	}

	// Host check in a hostgroup → hostgroup queue, NORMAL priority.
	d = h.m.Check(&Check{Kind: KindHost, HostName: "h2", CommandLine: "/bin/check_ping"}, fakeObjects{hostGroups: []string{"hg"}})
	if d.Queue != "hostgroup_hg" {
		t.Fatalf("decision %+v", d)
	}
	if j := grab(t, srv.Addr(), "hostgroup_hg"); j.Unique != modgearman.Uniq("h2") {
		t.Errorf("host unique %q", j.Unique)
	}

	// Event handler: no unique, eventhandler queue.
	d = h.m.Check(&Check{Kind: KindServiceEventHandler, HostName: "h1", ServiceDescription: "x", CommandLine: "/bin/restart"}, fakeObjects{})
	if d.Action != ActionOverride || d.Queue != "eventhandler" {
		t.Fatalf("decision %+v", d)
	}
	ej := grab(t, srv.Addr(), "eventhandler")
	plain, _ = codec.Decode(ej.Data)
	if job, err := modgearman.ParseJob(plain); err != nil || job.Type != modgearman.JobEventHandler || job.CommandLine != "/bin/restart" {
		t.Errorf("event handler job %+v %v", job, err)
	}

	// Results: encrypted (C and Go padding are the codec's business) and clear.
	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	res := modgearman.Result{Type: "active", HostName: "h1", ServiceDescription: "disk /",
		CoreStartTime: now.Add(-3 * time.Second), StartTime: now.Add(-2 * time.Second), FinishTime: now.Add(-time.Second),
		ReturnCode: 1, ExitedOK: true, Source: "test", Output: "WARN - 91%\nlong|used=91%"}
	if _, err := client.Submit(ctx, "check_results", "", codec.Encode(res.Marshal()), gearman.PriorityNormal, true); err != nil {
		t.Fatal(err)
	}
	r := h.next(t)
	if r.HostName != "h1" || r.ServiceDescription != "disk /" || r.ReturnCode != 1 || r.Output != res.Output || r.Passive {
		t.Errorf("result %+v", r)
	}
	if r.Latency < 1900*time.Millisecond || r.Latency > 3*time.Second {
		t.Errorf("latency %v, want about 2s", r.Latency)
	}
	clear := modgearman.Result{Type: "passive", HostName: "h3", ReturnCode: 2, Output: "down"}
	clearWL, _ := modgearman.NewCodec("", false)
	if _, err := client.Submit(ctx, "check_results", "", clearWL.Encode(clear.MarshalPassive()), gearman.PriorityNormal, true); err != nil {
		t.Fatal(err)
	}
	if r := h.next(t); r.HostName != "h3" || !r.Passive || r.ReturnCode != 2 || r.ServiceDescription != "" {
		t.Errorf("clear result %+v", r)
	}
	// Garbage is counted, not delivered.
	_, _ = client.Submit(ctx, "check_results", "", []byte("bm90IGEgcGF5bG9hZA=="), gearman.PriorityNormal, true)

	// The check ping.
	reply, err := client.Do(ctx, "check_results", "", []byte("check"), gearman.PriorityHigh)
	if err != nil || !strings.HasPrefix(string(reply), "0:OK - result worker running on") {
		t.Errorf("ping reply %q %v", reply, err)
	}
	waitFor(t, func() bool { return h.m.Stats().BadResults == 1 })
	st := h.m.Stats()
	if st.Submitted != 3 || st.Results != 2 || st.Pings != 1 {
		t.Errorf("stats %+v", st)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func TestPriorities(t *testing.T) {
	srv := gearmantest.Start(t)
	h := newModule(t, "server="+srv.Addr()+" encryption=no", Options{})
	h.m.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: "low", CommandLine: "c"}, fakeObjects{})
	h.m.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: "forced", CommandLine: "c",
		CheckOptions: CheckOptionForceExecution}, fakeObjects{})
	h.m.Check(&Check{Kind: KindHost, HostName: "h", CommandLine: "c"}, fakeObjects{})
	waitFor(t, func() bool { return h.m.Stats().Submitted == 3 })
	adm := gearman.NewAdmin(srv.Addr(), gearman.AdminOptions{})
	defer adm.Close()
	ps, err := adm.PriorityStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]gearman.PriorityStatus{}
	for _, p := range ps {
		got[p.Name] = p
	}
	if s := got["service"]; s.High != 1 || s.Low != 1 || s.Normal != 0 {
		t.Errorf("service priorities %+v", s)
	}
	if s := got["host"]; s.Normal != 1 {
		t.Errorf("host priorities %+v", s)
	}
}

func TestCheckDummyAndOrphans(t *testing.T) {
	srv := gearmantest.Start(t)
	h := newModule(t, "server="+srv.Addr()+" encryption=no", Options{})
	d := h.m.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: "d",
		CommandLine: "/usr/lib/nagios/plugins/check_dummy 1 hello"}, fakeObjects{})
	if d.Action != ActionOverride {
		t.Fatalf("%+v", d)
	}
	if r := h.next(t); r.ReturnCode != 1 || r.Output != "WARNING: hello" || r.ServiceDescription != "d" {
		t.Errorf("dummy %+v", r)
	}
	h.m.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: "o", CommandLine: "/bin/x",
		CheckOptions: CheckOptionOrphanCheck}, fakeObjects{})
	r := h.next(t)
	if r.ReturnCode != 2 || !strings.Contains(r.Output, "service check orphaned, is the mod-gearman worker on queue 'service' running?") {
		t.Errorf("orphan %+v", r)
	}
	if st := h.m.Stats(); st.DummyAnswered != 1 || st.Orphans != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestGearmandDownHold(t *testing.T) {
	srv := gearmantest.Start(t)
	for _, honoured := range []bool{true, false} {
		h := newModule(t, "server="+srv.Addr()+" encryption=no gearmand_down_hold=1s result_workers=0",
			Options{CancelHonoured: honoured, SubmitTimeout: time.Second})
		srv.Stop()
		// Checks wait in the module while gearmand is away: the core
		// sees them taken, and nothing comes back before the hold ends.
		start := time.Now()
		for _, svc := range []string{"a", "b"} {
			c := &Check{Kind: KindService, HostName: "h", ServiceDescription: svc, CommandLine: "/bin/x"}
			if d := h.m.Check(c, fakeObjects{}); d.Action != ActionOverride {
				t.Errorf("decision while down %+v", d)
			}
		}
		h.m.Check(&Check{Kind: KindServiceEventHandler, HostName: "h", ServiceDescription: "a", CommandLine: "/bin/eh"}, fakeObjects{})
		got := map[string]bool{}
		for range 2 {
			r := h.next(t)
			if !r.GiveBack || r.Output != "" || r.HostName != "h" {
				t.Errorf("give-back %+v", r)
			}
			got[r.ServiceDescription] = true
		}
		if el := time.Since(start); el < 900*time.Millisecond {
			t.Errorf("given back after %v, before gearmand_down_hold", el)
		}
		if !got["a"] || !got["b"] {
			t.Errorf("given back %v", got)
		}
		// The handler was queued after the checks: it is settled after
		// their give-backs were delivered.
		waitFor(t, func() bool { return h.m.Stats().HandlersLost == 1 })
		st := h.m.Stats()
		if st.GivenBack != 2 || st.Held != 3 || st.HandlersLost != 1 || st.ExplicitResults != 0 {
			t.Errorf("stats %+v", st)
		}
		srv.Restart(t)
		c := &Check{Kind: KindService, HostName: "h", ServiceDescription: "back", CommandLine: "/bin/x"}
		waitFor(t, func() bool { return h.m.health.Healthy() || h.m.Check(c, fakeObjects{}).Action != ActionOverride })
		h.m.Check(c, fakeObjects{})
		if j := grab(t, srv.Addr(), "service"); j.Unique != modgearman.Uniq("h", "back") {
			t.Errorf("job after the outage %q", j.Data)
		}
	}
}

// TestGearmandBackWithinHold: checks taken during a short outage are
// submitted when gearmand returns; none is given back or answered.
func TestGearmandBackWithinHold(t *testing.T) {
	srv := gearmantest.Start(t)
	h := newModule(t, "server="+srv.Addr()+" encryption=no gearmand_down_hold=30s result_workers=0",
		Options{CancelHonoured: true, SubmitTimeout: time.Second})
	srv.Stop()
	for i := range 5 {
		c := &Check{Kind: KindService, HostName: "h", ServiceDescription: fmt.Sprint("s", i), CommandLine: "/bin/x"}
		if d := h.m.Check(c, fakeObjects{}); d.Action != ActionOverride {
			t.Fatalf("decision %+v", d)
		}
	}
	waitFor(t, func() bool { return !h.m.health.Healthy() })
	time.Sleep(500 * time.Millisecond)
	srv.Restart(t)
	seen := map[string]bool{}
	for range 5 {
		seen[string(grab(t, srv.Addr(), "service").Unique)] = true
	}
	if len(seen) != 5 {
		t.Errorf("jobs after the outage: %v", seen)
	}
	h.quiet(t, 100*time.Millisecond)
	if st := h.m.Stats(); st.GivenBack != 0 || st.Submitted != 5 || st.Held != 5 {
		t.Errorf("stats %+v", st)
	}
}

// silentServer returns the address of a server that accepts connections
// and never answers, like a hung gearmand.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

// TestCloseGivesBackHeldChecks: a reload while gearmand hangs turns no
// queued check into a result; each goes back to the scheduler.
func TestCloseGivesBackHeldChecks(t *testing.T) {
	h := newModule(t, "server="+silentServer(t)+" encryption=no result_workers=0",
		Options{CancelHonoured: false, Submitters: 2, SubmitTimeout: 30 * time.Second})
	for i := range 6 {
		h.m.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: fmt.Sprint("s", i), CommandLine: "/bin/x"}, fakeObjects{})
	}
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_ = h.m.Close(ctx)
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("Close took %v", el)
	}
	rs := h.out.Take(nil)
	if len(rs) != 6 {
		t.Fatalf("%d results after Close, want 6 give-backs: %+v", len(rs), rs)
	}
	for _, r := range rs {
		if !r.GiveBack || r.Output != "" {
			t.Errorf("result after Close %+v", r)
		}
	}
	if st := h.m.Stats(); st.ExplicitResults != 0 || st.GivenBack != 6 {
		t.Errorf("stats %+v", st)
	}
}

func TestQueueFullNeverBlocks(t *testing.T) {
	// A server that accepts and never answers: submitters hang, the queue
	// fills, Check keeps returning at once.
	h := newModule(t, "server="+silentServer(t)+" encryption=no result_workers=0",
		Options{CancelHonoured: true, QueueSize: 4, Submitters: 2, SubmitTimeout: 2 * time.Second})
	start := time.Now()
	var cancelled int
	for i := range 100 {
		c := &Check{Kind: KindService, HostName: "h", ServiceDescription: string(rune('a' + i%26)), CommandLine: "/bin/x"}
		if h.m.Check(c, fakeObjects{}).Action == ActionCancel {
			cancelled++
		}
	}
	if st := h.m.Stats(); st.GivenBack != uint64(cancelled) {
		t.Errorf("given back %d, cancelled %d", st.GivenBack, cancelled)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("100 checks took %v", el)
	}
	if st := h.m.Stats(); cancelled < 90 || st.QueueFull != uint64(cancelled) {
		t.Errorf("cancelled %d, stats %+v", cancelled, st)
	}
}

func TestToCheckResultLatency(t *testing.T) {
	now := time.Unix(1700000100, 0)
	tests := []struct {
		name string
		r    modgearman.Result
		want time.Duration
		sane bool
	}{
		{"spec formula", modgearman.Result{CoreStartTime: now.Add(-10 * time.Second), StartTime: now.Add(-5 * time.Second), FinishTime: now.Add(-2 * time.Second)}, 7 * time.Second, true},
		{"missing core time", modgearman.Result{StartTime: now.Add(-5 * time.Second), FinishTime: now}, 0, true},
		{"all missing", modgearman.Result{}, 0, true},
		{"negative clamped", modgearman.Result{CoreStartTime: now.Add(time.Hour), StartTime: now, FinishTime: now}, 0, true},
		{"absurd discarded", modgearman.Result{CoreStartTime: time.Unix(1, 0), StartTime: now, FinishTime: now}, 0, false},
		{"latency key added", modgearman.Result{CoreStartTime: now.Add(-time.Second), StartTime: now, FinishTime: now, Latency: 2 * time.Second, HasLatency: true}, 3 * time.Second, true},
		{"finish before start", modgearman.Result{CoreStartTime: now.Add(-time.Second), StartTime: now, FinishTime: now.Add(-time.Hour)}, time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr, sane := ToCheckResult(tt.r, now)
			if cr.Latency != tt.want || sane != tt.sane {
				t.Errorf("latency %v sane %v, want %v %v", cr.Latency, sane, tt.want, tt.sane)
			}
			if cr.FinishTime.Before(cr.StartTime) {
				t.Error("finish before start")
			}
		})
	}
}

// TestEverySubmissionArrives guards the dispatcher's buffer swap: every
// check becomes exactly one job, across many idle/busy transitions.
func TestEverySubmissionArrives(t *testing.T) {
	srv := gearmantest.Start(t)
	h := newModule(t, "server="+srv.Addr()+" encryption=no use_uniq_jobs=off result_workers=0", Options{})
	const n = 3000
	for i := range n {
		c := &Check{Kind: KindService, HostName: "h", ServiceDescription: "s", CommandLine: "/bin/x"}
		if d := h.m.Check(c, fakeObjects{}); d.Action != ActionOverride {
			t.Fatalf("check %d: %+v", i, d)
		}
		if i%7 == 0 {
			time.Sleep(time.Duration(i%3) * time.Millisecond)
		}
	}
	waitFor(t, func() bool { return h.m.Stats().Submitted+h.m.Stats().SubmitFailed == n })
	if st := h.m.Stats(); st.Submitted != n {
		t.Errorf("stats %+v", st)
	}
	adm := gearman.NewAdmin(srv.Addr(), gearman.AdminOptions{})
	defer adm.Close()
	ss, err := adm.Status(context.Background())
	if err != nil || len(ss) != 1 || ss[0].Total != n {
		t.Errorf("gearmand status %+v %v", ss, err)
	}
}

// TestCloseStopsGoroutines: Close waits for every goroutine the module
// started, and can be called twice.
func TestCloseStopsGoroutines(t *testing.T) {
	srv := gearmantest.Start(t)
	before := runtime.NumGoroutine()
	c, err := ParseBrokerArgs("server="+srv.Addr()+" encryption=no result_workers=3", "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(c, Options{Sink: func(CheckResult) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	m.Start()
	m.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: "s", CommandLine: "/bin/x"}, fakeObjects{})
	waitFor(t, func() bool { return m.Stats().Submitted == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
	if d := m.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: "s", CommandLine: "/bin/x"}, fakeObjects{}); d.Action != ActionLocal {
		t.Errorf("check after Close: %+v", d)
	}
}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogStatsInterval: with log_stats_interval=1 the module logs every
// second what it submitted in that second.
func TestLogStatsInterval(t *testing.T) {
	srv := gearmantest.Start(t)
	var logs lockedBuffer
	h := newModule(t, "server="+srv.Addr()+" key="+testKey+" services=yes log_stats_interval=1",
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for i := range 3 {
		if d := h.m.Check(&Check{Kind: KindService, HostName: "h", ServiceDescription: fmt.Sprint("s", i), CommandLine: "/bin/true"}, fakeObjects{}); d.Action != ActionOverride {
			t.Fatalf("decision %+v", d)
		}
	}
	// Each line counts only its own interval: the lines add up to 3, and
	// a later interval reports 0.
	rx := regexp.MustCompile(`statistics: (\d+) jobs submitted in \d+s`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		sum, zeroAfter := 0, false
		for _, m := range rx.FindAllStringSubmatch(logs.String(), -1) {
			n, _ := strconv.Atoi(m[1])
			sum += n
			zeroAfter = sum == 3 && n == 0
		}
		if sum > 3 {
			t.Fatalf("more than 3 jobs counted:\n%s", logs.String())
		}
		if zeroAfter {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statistics lines adding up to 3 jobs, then 0:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCheckMergedIntoFinishedJobIsResubmitted: a check's next run, with
// the same unique key, submitted after its previous result came but before
// gearmand processed that job's WORK_COMPLETE, is merged by gearmand into
// the finished job and would never run. The module sees its previous
// job's handle come back and submits the check again under a key of its
// own.
func TestCheckMergedIntoFinishedJobIsResubmitted(t *testing.T) {
	srv := gearmantest.Start(t)
	h := newModule(t, "server="+srv.Addr()+" encryption=no services=yes", Options{CancelHonoured: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wc, err := gearman.DialWorker(ctx, srv.Addr(), gearman.WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo("service"); err != nil {
		t.Fatal(err)
	}
	c := &Check{Kind: KindService, HostName: "h", ServiceDescription: "s", CommandLine: "/bin/x", Timeout: time.Minute}
	h.m.Check(c, fakeObjects{})
	first, err := wc.Grab(ctx) // running, never completed: gearmand keeps its unique
	if err != nil {
		t.Fatal(err)
	}
	// Its result reaches the module.
	send := resultSender(t, srv.Addr())
	now := time.Now()
	res := modgearman.Result{Type: "active", HostName: "h", ServiceDescription: "s", StartTime: now, FinishTime: now, ExitedOK: true, Output: "OK"}
	send(res)
	if r := h.next(t); r.HostName != "h" || r.Output != "OK" {
		t.Fatalf("result %+v", r)
	}
	// The core runs the check again at once.
	h.m.Check(c, fakeObjects{})
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	second, err := wc.Grab(gctx)
	if err != nil {
		t.Fatalf("the check's next run never reached a worker: %v (merged into %s)", err, first.Handle)
	}
	if second.Handle == first.Handle || !strings.HasPrefix(second.Unique, first.Unique+"-") {
		t.Errorf("next run: handle %s unique %q; first: handle %s unique %q", second.Handle, second.Unique, first.Handle, first.Unique)
	}
	if st := h.m.Stats(); st.UniqMerged != 1 {
		t.Errorf("UniqMerged = %d, want 1", st.UniqMerged)
	}
	// Once gearmand has the WORK_COMPLETE, the usual key is used again.
	_ = wc.Complete(first.Handle, nil)
	_ = wc.Complete(second.Handle, nil)
	res.Output = "OK again"
	send(res)
	h.next(t)
	time.Sleep(100 * time.Millisecond)
	h.m.Check(c, fakeObjects{})
	third, err := wc.Grab(gctx)
	if err != nil {
		t.Fatal(err)
	}
	if third.Unique != first.Unique {
		t.Errorf("third run unique %q, want %q", third.Unique, first.Unique)
	}
}
