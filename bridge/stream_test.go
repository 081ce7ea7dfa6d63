package bridge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/modgearman"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// bigJob is a service check whose command line has n bytes.
func bigJob(t *testing.T, host string, n int, timeout time.Duration) []byte {
	t.Helper()
	c, _ := modgearman.NewCodec(testKey, true)
	j := modgearman.Job{
		Type: modgearman.JobService, ResultQueue: "check_results", HostName: host, ServiceDescription: "s",
		CoreTime: time.Unix(1700000000, 0), Timeout: timeout, CommandLine: "/bin/echo " + strings.Repeat("x", n),
	}
	return c.Encode(j.Marshal())
}

func onlySession(t *testing.T, b *Bridge) *session {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.sessions {
		return s
	}
	t.Fatal("no session")
	return nil
}

// TestSlowWorkerDoesNotBlockSession: a worker that stops reading its
// stream freezes nothing. The bridge detaches it after the send timeout;
// jobs that went out get their timeout results on time, jobs that never
// left go back to gearmand when the session ends, and nothing is lost or
// answered twice. The bridge still shuts down within its drain timeout.
func TestSlowWorkerDoesNotBlockSession(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.SendTimeout = 300 * time.Millisecond
		c.TimeoutGrace = 100 * time.Millisecond
		c.ResumeGrace = 1500 * time.Millisecond
	})
	const n = 40
	for i := range n {
		e.fake.add("service", bigJob(t, "h"+string(rune('A'+i)), 1<<20, time.Second))
	}
	h := hello(n, "service")
	h.MaxReceiveBytes = 64 << 20
	_, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), h) // reads the welcome, then nothing
	if w == nil {
		t.Fatal("no welcome")
	}
	eventually(t, 5*time.Second, "stalled worker detached", func() bool {
		return testutil.ToFloat64(e.b.m.stalled) >= 1
	})
	// Every job ends within timeout + grace + resume grace: with a timeout
	// result if it went out, back in gearmand if it never did.
	eventually(t, 8*time.Second, "every job answered or requeued", func() bool {
		_, _, results := e.fake.snapshot()
		return len(results)+e.fake.queued("service") == n
	})
	_, _, results := e.fake.snapshot()
	seen := map[string]bool{}
	for _, r := range results {
		res := decodeResult(t, r.payload)
		if !strings.Contains(res.Output, "Timed Out") {
			t.Errorf("result for %s: %q, want the timeout text", res.HostName, res.Output)
		}
		if seen[res.HostName] {
			t.Errorf("two results for %s", res.HostName)
		}
		seen[res.HostName] = true
	}
	if len(results) == 0 {
		t.Error("no job that went out got its timeout result")
	}
	t.Logf("%d timeout results, %d requeued", len(results), e.fake.queued("service"))
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > e.b.cfg.DrainTimeout+5*time.Second {
		t.Errorf("shutdown took %v with a drain timeout of %v", d, e.b.cfg.DrainTimeout)
	}
}

// TestOversizedJobAnsweredExplicitly: a job larger than the worker's
// receive limit (from its hello) is not sent — sending it would break the
// stream on every reconnect — but answered with UNKNOWN saying why; the
// session goes on.
func TestOversizedJobAnsweredExplicitly(t *testing.T) {
	e := newTestEnv(t, nil)
	h := hello(1, "service")
	h.MaxReceiveBytes = 64 << 10
	st, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), h)
	if w == nil {
		t.Fatal("no welcome")
	}
	big := e.fake.add("service", bigJob(t, "big", 100<<10, time.Minute))
	eventually(t, 5*time.Second, "explicit result", func() bool {
		_, _, results := e.fake.snapshot()
		return len(results) == 1
	})
	_, _, results := e.fake.snapshot()
	res := decodeResult(t, results[0].payload)
	if res.ReturnCode != 3 || res.HostName != "big" || !strings.Contains(res.Output, "exceeds the worker's receive limit of 65536 bytes") {
		t.Fatalf("result = rc %d host %q output %q", res.ReturnCode, res.HostName, res.Output)
	}
	eventually(t, 2*time.Second, "job completed", func() bool {
		completed, _, _ := e.fake.snapshot()
		return len(completed) == 1 && completed[0] == big
	})
	if got := testutil.ToFloat64(e.b.m.refusedJobs.WithLabelValues("too_large")); got != 1 {
		t.Fatalf("refused jobs = %v", got)
	}
	// The slot was never taken: the next check goes to the worker.
	e.fake.add("service", serviceJob(t, "next", "s", time.Minute))
	if j := recvMsg(t, st, 5*time.Second).GetJob(); string(j.GetHostName()) != "next" {
		t.Fatalf("got %v, want the next check", j)
	}
}

// TestUnencodableJobAnsweredExplicitly: a job message that cannot be
// marshalled fails alone: it gets an explicit result, and the stream and
// the session go on.
func TestUnencodableJobAnsweredExplicitly(t *testing.T) {
	e := newTestEnv(t, nil)
	st, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(2, "service"))
	if w == nil {
		t.Fatal("no welcome")
	}
	s := onlySession(t, e.b)
	job := modgearman.Job{Type: modgearman.JobService, ResultQueue: "check_results", HostName: "h", ServiceDescription: "bad"}
	// A string field that is not UTF-8 cannot be marshalled.
	msg := jobMessage("x1", "service\xff", time.Now().Add(time.Minute), time.Minute, job)
	ij := &inflightJob{id: "x1", conn: s.conns[0], handle: "H:none", queue: "service", job: job, msg: msg, dispatched: time.Now()}
	s.mu.Lock()
	s.inflight["x1"] = ij
	s.sendLocked(outMsg{m: jobResponse(msg), job: ij})
	s.mu.Unlock()
	eventually(t, 5*time.Second, "explicit result", func() bool {
		_, _, results := e.fake.snapshot()
		return len(results) == 1
	})
	_, _, results := e.fake.snapshot()
	if res := decodeResult(t, results[0].payload); res.ReturnCode != 3 || !strings.Contains(res.Output, "cannot be encoded") {
		t.Fatalf("result = rc %d output %q", res.ReturnCode, res.Output)
	}
	if got := testutil.ToFloat64(e.b.m.unsendable); got != 1 {
		t.Fatalf("unencodable = %v", got)
	}
	e.fake.add("service", serviceJob(t, "next", "s", time.Minute))
	if j := recvMsg(t, st, 5*time.Second).GetJob(); string(j.GetHostName()) != "next" {
		t.Fatalf("got %v, want the next check on the same stream", j)
	}
}

// TestJobGrabbedAtDetachGetsNoFalseTimeout: a GRAB in flight when the
// worker disconnects brings a job to a detached session. The job never
// reached a worker, so it gets no timeout result: it goes back to gearmand
// when the session ends.
func TestJobGrabbedAtDetachGetsNoFalseTimeout(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.TimeoutGrace = 50 * time.Millisecond
		c.ResumeGrace = 1500 * time.Millisecond
	})
	gate := make(chan struct{})
	e.fake.mu.Lock()
	e.fake.grabGate = gate
	e.fake.mu.Unlock()
	_, w, cancel := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	if w == nil {
		t.Fatal("no welcome")
	}
	s := onlySession(t, e.b)
	e.fake.add("service", serviceJob(t, "h", "s", 200*time.Millisecond))
	cancel()
	eventually(t, 5*time.Second, "worker detached", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.stream == nil
	})
	close(gate) // the GRAB sent while attached now brings the job
	eventually(t, 2*time.Second, "job grabbed", func() bool { return s.inFlight() == 1 })
	time.Sleep(500 * time.Millisecond) // well past timeout + grace
	if _, _, results := e.fake.snapshot(); len(results) != 0 {
		t.Fatalf("false timeout result for a job no worker had: %d results", len(results))
	}
	eventually(t, 5*time.Second, "job back in gearmand", func() bool { return e.fake.queued("service") == 1 })
	if _, _, results := e.fake.snapshot(); len(results) != 0 {
		t.Fatalf("%d results written; want none", len(results))
	}
}

// TestHelloRefusesIdentifiersGearmandCannotTake: an identifier that cannot
// be a Gearman client id is refused at the hello, not accepted and then
// retried against gearmand forever.
func TestHelloRefusesIdentifiersGearmandCannotTake(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, id := range []string{"w 1", strings.Repeat("w", 200)} {
		st, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), &pb.Hello{Identifier: id, Queues: []string{"service"}, Slots: 1})
		if w != nil {
			t.Fatalf("identifier %q accepted", id)
		}
		_, err := st.Recv()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "client id") {
			t.Fatalf("identifier %q: err = %v, want InvalidArgument about the client id", id, err)
		}
	}
}

// nullStream is a worker stream that takes every message and never sends.
type nullStream struct{ ctx context.Context }

func (n nullStream) SetHeader(metadata.MD) error  { return nil }
func (n nullStream) SendHeader(metadata.MD) error { return nil }
func (n nullStream) SetTrailer(metadata.MD)       {}
func (n nullStream) Context() context.Context     { return n.ctx }
func (n nullStream) SendMsg(any) error            { return nil }
func (n nullStream) RecvMsg(any) error            { <-n.ctx.Done(); return n.ctx.Err() }

// TestAttachDetachRace: a stream that detaches right after it attached
// (a worker whose link breaks at once) must not take the bridge down: the
// stream's sender works on that stream's own queue, whatever the session
// holds by the time it runs.
func TestAttachDetachRace(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w, cancel := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	if w == nil {
		t.Fatal("no welcome")
	}
	s := onlySession(t, e.b)
	cancel()
	eventually(t, 5*time.Second, "worker detached", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.stream == nil
	})
	for i := range 300 {
		st := nullStream{ctx: t.Context()}
		if _, err := s.attach(st, 1, 1, 1<<20, false, nil, &pb.Welcome{}); err != nil {
			t.Fatalf("attach %d: %v", i, err)
		}
		s.detach(st, errors.New("link broke"))
	}
}

// TestShutdownRequeuesDetachedSessions: a bridge that stops while a worker
// is away (its link broke after a job went out) cannot take the worker
// back: the job goes back to gearmand at once, with no timeout result for
// a plugin that may never have run, and the stop does not wait for it.
func TestShutdownRequeuesDetachedSessions(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.TimeoutGrace = 50 * time.Millisecond
		c.ResumeGrace = 30 * time.Second
		c.DrainTimeout = 10 * time.Second
	})
	st, w, cancel := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	if w == nil {
		t.Fatal("no welcome")
	}
	e.fake.add("service", serviceJob(t, "h", "s", time.Second))
	if m := recvMsg(t, st, 5*time.Second); m.GetJob() == nil {
		t.Fatalf("want a job, got %v", m)
	}
	s := onlySession(t, e.b)
	cancel() // the link breaks with the job at the worker
	eventually(t, 5*time.Second, "worker detached", func() bool { return s.detached() })
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stop took %v with only a detached session", d)
	}
	if _, _, results := e.fake.snapshot(); len(results) != 0 {
		t.Fatalf("%d results written for a job of an absent worker; want none", len(results))
	}
	if n := e.fake.queued("service"); n != 1 {
		t.Fatalf("%d jobs back in gearmand, want 1", n)
	}
}
