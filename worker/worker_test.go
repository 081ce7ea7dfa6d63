package worker

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// testConfig is a two-slot worker for the named fake bridges.
func testConfig(names ...string) Config {
	cfg := DefaultConfig()
	for _, n := range names {
		cfg.Bridges = append(cfg.Bridges, target(n))
	}
	cfg.Identifier = "w1"
	cfg.Queues = []string{"service", "hostgroup_a"}
	cfg.Slots = 2
	// Most tests end with unacknowledged results; their cleanup drain
	// gives up after this.
	cfg.DrainTimeout = 500 * time.Millisecond
	cfg.BackoffMin = 5 * time.Millisecond
	cfg.BackoffMax = 50 * time.Millisecond
	return cfg
}

// runningWorker is a worker whose Run executes in the background.
type runningWorker struct {
	w      *Worker
	stop   context.CancelFunc
	result chan error
}

// startWorker runs a worker until the test ends (or stop is called).
func startWorker(t *testing.T, cfg Config, deps Deps) *runningWorker {
	t.Helper()
	deps.Registerer = prometheus.NewRegistry()
	w, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rw := &runningWorker{w: w, stop: cancel, result: make(chan error, 1)}
	go func() { rw.result <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		rw.wait(t)
		// Run waits for everything it started: nothing of the loop, its
		// streams or its plugin runners may be left.
		// A goroutine that has just called wg.Done may still be on its way
		// out, so look again for a short while before calling it a leak.
		buf := make([]byte, 1<<20)
		deadline := time.Now().Add(time.Second)
		for {
			stacks := string(buf[:runtime.Stack(buf, true)])
			if !strings.Contains(stacks, "gearbridge/worker.(*loop)") {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines left after Run returned:\n%s", stacks)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return rw
}

// wait returns Run's result.
func (rw *runningWorker) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-rw.result:
		rw.result <- err // for the cleanup
		return err
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
		return nil
	}
}

// waitFor polls cond, for state only visible through metrics.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func serviceJob(id, cmd string) *pb.Job {
	return &pb.Job{
		JobId:              id,
		Queue:              "service",
		Type:               pb.JobType_JOB_TYPE_SERVICE,
		HostName:           []byte("h1"),
		ServiceDescription: []byte("s1"),
		CoreTime:           timestamppb.Now(),
		Timeout:            durationpb.New(30 * time.Second),
		CommandLine:        []byte(cmd),
	}
}

func checkHello(t *testing.T, h *pb.Hello, session string, slots uint32, held ...string) {
	t.Helper()
	if h.GetSessionId() != session || h.GetSlots() != slots || !slices.Equal(h.GetHeldJobIds(), held) {
		t.Fatalf("hello: session %q slots %d held %q; want session %q slots %d held %q",
			h.GetSessionId(), h.GetSlots(), h.GetHeldJobIds(), session, slots, held)
	}
}

func TestSessionRunsJobsAndReturnsCredit(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	rw := startWorker(t, testConfig("a"), b.deps())

	fs := b.accept("a")
	h := fs.hello
	if h.GetIdentifier() != "w1" || !slices.Equal(h.GetQueues(), []string{"service", "hostgroup_a"}) || h.GetVersion() != "test" ||
		h.GetMaxReceiveBytes() != maxReceiveBytes {
		t.Fatalf("hello %v", h)
	}
	checkHello(t, h, "", 2)
	fs.welcome("s1", false)

	fs.job(serviceJob("1", p.cmd("ok.sh")))
	r := fs.expectResult()
	if r.GetJobId() != "1" || r.GetReturnCode() != 0 || string(r.GetOutput()) != "OK - fine|a=1\nsecond line" ||
		!r.GetExitedOk() || r.GetEarlyTimeout() {
		t.Fatalf("result %v", r)
	}
	if r.GetStartTime() == nil || r.GetFinishTime() == nil || r.GetFinishTime().AsTime().Before(r.GetStartTime().AsTime()) {
		t.Fatalf("result times %v .. %v", r.GetStartTime(), r.GetFinishTime())
	}
	fs.expectCredit(1)

	// Event handlers get a result too: the bridge completes them with it.
	eh := &pb.Job{JobId: "2", Queue: "eventhandler", Type: pb.JobType_JOB_TYPE_EVENTHANDLER, HostName: []byte("h1"), CommandLine: []byte(p.cmd("crit.sh"))}
	fs.job(eh)
	r = fs.expectResult()
	if r.GetJobId() != "2" || r.GetReturnCode() != 2 || string(r.GetOutput()) != "CRITICAL - broken\n[details]" {
		t.Fatalf("event handler result %v", r)
	}
	fs.expectCredit(1)

	fs.ack("1")
	fs.ack("2")
	// Messages arrive in order, so the acks are handled before the stream
	// breaks: the next hello holds nothing.
	fs.hangUp()
	fs2 := b.accept("a")
	checkHello(t, fs2.hello, "s1", 2)
	fs2.welcome("s1", true)

	m := rw.w.m
	for name, got := range map[string]float64{
		"received": testutil.ToFloat64(m.received), "sent": testutil.ToFloat64(m.resultsSent),
		"acks": testutil.ToFloat64(m.acks), "resent": testutil.ToFloat64(m.resultsResent),
	} {
		want := map[string]float64{"received": 2, "sent": 2, "acks": 2, "resent": 0}[name]
		if got != want {
			t.Errorf("metric %s = %v, want %v", name, got, want)
		}
	}
}

func TestNeverMoreRunningThanSlots(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	startWorker(t, testConfig("a"), b.deps())

	fs := b.accept("a")
	fs.welcome("s1", false)
	// Three jobs for two slots, as after a resume in which the bridge sent
	// a lost job again: the third waits on the worker.
	for _, id := range []string{"1", "2", "3"} {
		fs.job(serviceJob(id, p.cmd("gated.sh", id)))
	}
	first := []string{p.waitStarted().id, p.waitStarted().id}
	slices.Sort(first)
	if !slices.Equal(first, []string{"1", "2"}) {
		t.Fatalf("started %q first", first)
	}
	p.noneStarted(300 * time.Millisecond)

	p.release("1")
	if r := fs.expectResult(); r.GetJobId() != "1" {
		t.Fatalf("result %v", r)
	}
	// Job 3 takes the freed slot, so no credit follows this result.
	if s := p.waitStarted(); s.id != "3" {
		t.Fatalf("started %s, want 3", s.id)
	}
	p.release("2")
	if r := fs.expectResult(); r.GetJobId() != "2" {
		t.Fatalf("result %v", r)
	}
	fs.expectCredit(1)
	p.release("3")
	if r := fs.expectResult(); r.GetJobId() != "3" {
		t.Fatalf("result %v", r)
	}
	fs.expectCredit(1)
}

func TestResumeResendsUnackedResults(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	rw := startWorker(t, testConfig("a"), b.deps())

	fs := b.accept("a")
	fs.welcome("s1", false)
	fs.job(serviceJob("1", p.cmd("ok.sh")))
	r1 := fs.expectResult()
	fs.expectCredit(1)
	fs.job(serviceJob("2", p.cmd("gated.sh", "2")))
	p.waitStarted()

	// The bridge goes away before acknowledging result 1.
	fs.hangUp()
	fs2 := b.accept("a")
	checkHello(t, fs2.hello, "s1", 1, "1", "2")
	fs2.welcome("s1", true)
	if r := fs2.expectResult(); r.GetJobId() != "1" || string(r.GetOutput()) != string(r1.GetOutput()) {
		t.Fatalf("resent result %v, want %v", r, r1)
	}
	p.release("2")
	if r := fs2.expectResult(); r.GetJobId() != "2" || string(r.GetOutput()) != "done 2" {
		t.Fatalf("result %v", r)
	}
	fs2.expectCredit(1)
	fs2.ack("1")
	fs2.ack("2")

	fs2.hangUp()
	fs3 := b.accept("a")
	checkHello(t, fs3.hello, "s1", 2)
	if got := testutil.ToFloat64(rw.w.m.resultsResent); got != 1 {
		t.Errorf("resent = %v, want 1", got)
	}
	if got := testutil.ToFloat64(rw.w.m.reconnects); got != 1 {
		// The third stream's welcome has not been sent.
		t.Errorf("reconnects = %v, want 1", got)
	}
}

func TestLostSessionDropsResultsAndStopsPlugins(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	rw := startWorker(t, testConfig("a"), b.deps())

	fs := b.accept("a")
	fs.welcome("s1", false)
	fs.job(serviceJob("1", p.cmd("ok.sh")))
	fs.expectResult()
	fs.expectCredit(1)
	fs.job(serviceJob("2", p.cmd("gated.sh", "2")))
	running := p.waitStarted()

	fs.hangUp()
	fs2 := b.accept("a")
	checkHello(t, fs2.hello, "s1", 1, "1", "2")
	// The bridge does not know s1 any more: gearmand has requeued both jobs.
	fs2.welcome("s2", false)
	// No result is sent again; the slot of the killed plugin comes back.
	fs2.expectCredit(1)
	if !processGone(running.pid) {
		t.Errorf("plugin %d still running", running.pid)
	}
	if got := testutil.ToFloat64(rw.w.m.discarded.WithLabelValues(discardSessionLost)); got != 2 {
		t.Errorf("discarded session_lost = %v, want 2", got)
	}

	// Job ids start again in the new session.
	fs2.job(serviceJob("1", p.cmd("ok.sh")))
	if r := fs2.expectResult(); r.GetJobId() != "1" || r.GetReturnCode() != 0 {
		t.Fatalf("result %v", r)
	}
	fs2.expectCredit(1)
}

func TestCancelKillsPluginWithoutResult(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	rw := startWorker(t, testConfig("a"), b.deps())

	fs := b.accept("a")
	fs.welcome("s1", false)
	fs.job(serviceJob("1", p.cmd("gated.sh", "1")))
	running := p.waitStarted()
	fs.cancel("1")
	// The slot is offered again once the plugin is gone, and no result
	// came before (expectCredit fails on any other message).
	fs.expectCredit(1)
	if !processGone(running.pid) {
		t.Errorf("plugin %d still running", running.pid)
	}
	fs.job(serviceJob("2", p.cmd("ok.sh")))
	if r := fs.expectResult(); r.GetJobId() != "2" {
		t.Fatalf("result %v, want the one of job 2", r)
	}
	fs.expectCredit(1)
	if got := testutil.ToFloat64(rw.w.m.cancelled); got != 1 {
		t.Errorf("cancelled = %v, want 1", got)
	}
}

func TestPluginTimeout(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	rw := startWorker(t, testConfig("a"), b.deps())

	fs := b.accept("a")
	fs.welcome("s1", false)
	j := serviceJob("1", p.cmd("gated.sh", "1"))
	j.Timeout = durationpb.New(200 * time.Millisecond)
	fs.job(j)
	r := fs.expectResult()
	// rc 2, CRITICAL: the default timeout_return.
	if r.GetReturnCode() != 2 || !strings.HasPrefix(string(r.GetOutput()), "(Service Check Timed Out On Worker: w1)") || !r.GetEarlyTimeout() {
		t.Fatalf("timeout result %v", r)
	}
	fs.expectCredit(1)
	if got := testutil.ToFloat64(rw.w.m.timeouts); got != 1 {
		t.Errorf("timeouts = %v, want 1", got)
	}
}

func TestMaxAge(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	cfg := testConfig("a")
	cfg.MaxAge = time.Minute
	rw := startWorker(t, cfg, b.deps())

	fs := b.accept("a")
	fs.welcome("s1", false)
	old := serviceJob("1", p.cmd("touch.sh"))
	old.CoreTime = timestamppb.New(time.Now().Add(-2 * time.Minute))
	fs.job(old)
	r := fs.expectResult()
	if r.GetReturnCode() != 3 || string(r.GetOutput()) != "Could not start check in time (worker: w1)" {
		t.Fatalf("result %v", r)
	}
	fs.expectCredit(1)
	if p.touched() {
		t.Fatal("the plugin of a too old job ran")
	}
	fs.job(serviceJob("2", p.cmd("touch.sh")))
	if r := fs.expectResult(); r.GetReturnCode() != 0 || !p.touched() {
		t.Fatalf("fresh job: result %v, ran %v", r, p.touched())
	}
	if got := testutil.ToFloat64(rw.w.m.tooOld); got != 1 {
		t.Errorf("too old = %v, want 1", got)
	}
}

// fakeLoad is an injectable load average that reports when it was read.
type fakeLoad struct {
	load1 atomic.Uint64 // float64 bits
	read  chan struct{}
}

func newFakeLoad(v float64) *fakeLoad {
	f := &fakeLoad{read: make(chan struct{}, 1)}
	f.set(v)
	return f
}

func (f *fakeLoad) set(v float64) { f.load1.Store(uint64(v * 1000)) }

func (f *fakeLoad) get() ([3]float64, error) {
	// Signal first, then read: a signal the test receives after a set
	// belongs to a read of the new value.
	select {
	case f.read <- struct{}{}:
	default:
	}
	return [3]float64{float64(f.load1.Load()) / 1000, 0, 0}, nil
}

// seen waits until the worker has read the load twice, so that at least one
// read (the second; the first signal may be left over) saw the last set.
func (f *fakeLoad) seen(t *testing.T) {
	t.Helper()
	for range 2 {
		select {
		case <-f.read:
		case <-time.After(waitTimeout):
			t.Fatal("load not read")
		}
	}
}

func TestLoadLimitHoldsCredit(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	cfg := testConfig("a")
	cfg.LoadLimit1 = 4
	cfg.LoadInterval = 5 * time.Millisecond
	load := newFakeLoad(10)
	deps := b.deps()
	deps.Load = load.get
	rw := startWorker(t, cfg, deps)

	// Over the limit at connect time: the hello offers nothing.
	fs := b.accept("a")
	checkHello(t, fs.hello, "", 0)
	fs.welcome("s1", false)
	waitFor(t, "credit withheld", func() bool { return testutil.ToFloat64(rw.w.m.creditWithheld) == 2 })
	load.set(1)
	fs.expectCredit(2)

	fs.job(serviceJob("1", p.cmd("ok.sh")))
	fs.expectResult()
	fs.expectCredit(1)

	load.set(8)
	load.seen(t)
	fs.job(serviceJob("2", p.cmd("ok.sh")))
	fs.expectResult()
	waitFor(t, "credit withheld", func() bool { return testutil.ToFloat64(rw.w.m.creditWithheld) == 1 })
	load.set(2)
	fs.expectCredit(1)
	if got := testutil.ToFloat64(rw.w.m.creditWithheld); got != 0 {
		t.Errorf("withheld = %v after the load dropped", got)
	}
}

func TestBridgeDrainMovesToNextBridge(t *testing.T) {
	b := newBridges(t, "a", "b")
	p := newTestPlugins(t)
	startWorker(t, testConfig("a", "b"), b.deps())

	fs := b.accept("a")
	fs.welcome("sa", false)
	fs.job(serviceJob("1", p.cmd("gated.sh", "1")))
	p.waitStarted()
	fs.drain()
	// A job the bridge dispatched just before its drain still runs. Its
	// start also proves the drain was handled (messages are handled in
	// order).
	fs.job(serviceJob("2", p.cmd("gated.sh", "2")))
	if s := p.waitStarted(); s.id != "2" {
		t.Fatalf("started %s", s.id)
	}
	p.release("1")
	p.release("2")
	// Draining: freed slots are not offered (expectResult fails on a
	// credit); after the acks the worker leaves this bridge.
	ids := []string{fs.expectResult().GetJobId(), fs.expectResult().GetJobId()}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"1", "2"}) {
		t.Fatalf("results for %q", ids)
	}
	fs.ack("1")
	fs.ack("2")
	fs.expectClosed()

	fb := b.accept("b")
	checkHello(t, fb.hello, "", 2) // the drained session is over
	fb.welcome("sb", false)
	fb.job(serviceJob("1", p.cmd("ok.sh")))
	fb.expectResult()
	fb.expectCredit(1)
	b.noStream("a")
}

func TestStopDrainsAndWaitsForAcks(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	rw := startWorker(t, testConfig("a"), b.deps())

	fs := b.accept("a")
	fs.welcome("s1", false)
	fs.job(serviceJob("1", p.cmd("gated.sh", "1")))
	p.waitStarted()

	rw.stop()
	fs.expectDrain()
	select {
	case err := <-rw.result:
		t.Fatalf("Run returned %v before the running job finished", err)
	default:
	}
	p.release("1")
	if r := fs.expectResult(); r.GetJobId() != "1" || string(r.GetOutput()) != "done 1" {
		t.Fatalf("result %v", r)
	}
	fs.ack("1")
	fs.expectClosed()
	if err := rw.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestStopDrainTimeoutKillsPlugins(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	cfg := testConfig("a")
	cfg.DrainTimeout = 300 * time.Millisecond
	rw := startWorker(t, cfg, b.deps())

	fs := b.accept("a")
	fs.welcome("s1", false)
	fs.job(serviceJob("1", p.cmd("gated.sh", "1")))
	running := p.waitStarted()
	rw.stop()
	fs.expectDrain()
	if err := rw.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !processGone(running.pid) {
		t.Errorf("plugin %d survived the drain timeout", running.pid)
	}
	if got := testutil.ToFloat64(rw.w.m.discarded.WithLabelValues(discardDrainTimeout)); got != 1 {
		t.Errorf("discarded drain_timeout = %v, want 1", got)
	}
}

func TestStopWhenAllAckedReturnsAtOnce(t *testing.T) {
	b := newBridges(t, "a")
	rw := startWorker(t, testConfig("a"), b.deps())
	p := newTestPlugins(t)
	fs := b.accept("a")
	fs.welcome("s1", false)
	fs.job(serviceJob("1", p.cmd("ok.sh")))
	fs.expectResult()
	fs.expectCredit(1)
	fs.ack("1")
	rw.stop()
	fs.expectDrain()
	fs.expectClosed()
	if err := rw.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestUnreachableBridgeIsSkipped(t *testing.T) {
	b := newBridges(t, "a")
	cfg := testConfig("a")
	cfg.Bridges = []string{target("nowhere"), target("a")}
	rw := startWorker(t, cfg, b.deps())
	fs := b.accept("a")
	checkHello(t, fs.hello, "", 2)
	fs.welcome("s1", false)
	if got := testutil.ToFloat64(rw.w.m.connectFailures); got < 1 {
		t.Errorf("connect failures = %v, want at least 1", got)
	}
}

func TestRunTwice(t *testing.T) {
	b := newBridges(t, "a")
	rw := startWorker(t, testConfig("a"), b.deps())
	b.accept("a")
	if err := rw.w.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

// TestTimedOutAttemptsAreRetried: a bridge that takes the hello but never
// answers it (as behind a black-holed link) makes every attempt run into
// the handshake timeout. Each timed-out attempt must lead to the next one,
// however many there are, until a bridge welcomes the worker.
func TestTimedOutAttemptsAreRetried(t *testing.T) {
	old := handshakeTimeout
	handshakeTimeout = 250 * time.Millisecond
	t.Cleanup(func() { handshakeTimeout = old })
	b := newBridges(t, "a")
	rw := startWorker(t, testConfig("a"), b.deps())
	for range 10 {
		b.accept("a") // never welcomed
	}
	fs := b.accept("a")
	checkHello(t, fs.hello, "", 2)
	fs.welcome("s1", false)
	waitFor(t, "session attached", func() bool { return rw.w.m.sessionUp.Load() })
	// At least the ten: on a loaded machine the welcomed attempt may time
	// out too before the welcome is read, and is then retried as well.
	if got := testutil.ToFloat64(rw.w.m.connectFailures); got < 10 {
		t.Errorf("connect failures = %v, want at least 10", got)
	}
}
