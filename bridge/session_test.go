package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/modgearman"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

const testKey = "should_be_changed"

func serviceJob(t *testing.T, host, svc string, timeout time.Duration) []byte {
	t.Helper()
	c, err := modgearman.NewCodec(testKey, true)
	if err != nil {
		t.Fatal(err)
	}
	j := modgearman.Job{
		Type: modgearman.JobService, ResultQueue: "check_results", TargetQueue: "service",
		HostName: host, ServiceDescription: svc, CoreTime: time.Unix(1700000000, 0),
		Timeout: timeout, CommandLine: "/bin/true",
	}
	return c.Encode(j.Marshal())
}

func decodeResult(t *testing.T, payload []byte) modgearman.Result {
	t.Helper()
	c, _ := modgearman.NewCodec(testKey, true)
	plain, err := c.Decode(payload)
	if err != nil {
		t.Fatal(err)
	}
	r, err := modgearman.ParseResult(plain)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// hello is a worker's first message without an identifier: the session
// is named after the certificate identity (w1 in most tests).
func hello(slots uint32, queues ...string) *pb.Hello {
	return &pb.Hello{Queues: queues, Slots: slots, Version: "test"}
}

func TestCreditLimitsGrabs(t *testing.T) {
	e := newTestEnv(t, nil)
	for i := range 5 {
		e.fake.add("service", serviceJob(t, "h", "s"+string(rune('0'+i)), time.Minute))
	}
	st, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(2, "service"))
	if w == nil {
		t.Fatal("no welcome")
	}
	j1 := recvMsg(t, st, 5*time.Second).GetJob()
	j2 := recvMsg(t, st, 5*time.Second).GetJob()
	if j1 == nil || j2 == nil {
		t.Fatal("want two jobs")
	}
	// Nothing is grabbed ahead of need: three jobs stay queued in gearmand.
	time.Sleep(100 * time.Millisecond)
	if n := e.fake.queued("service"); n != 3 {
		t.Fatalf("queued = %d, want 3 (the bridge hoarded jobs)", n)
	}
	// A credit beyond the announced slots is ignored: both slots are busy.
	if err := st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Credit{Credit: &pb.Credit{Slots: 1}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := e.fake.queued("service"); n != 3 {
		t.Fatalf("queued = %d, want 3 (credit beyond the slots was honoured)", n)
	}
	// One finished job and its freed slot get exactly one more job.
	_ = st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: &pb.JobResult{JobId: j1.GetJobId(), Output: []byte("OK"), ExitedOk: true}}})
	if recvMsg(t, st, 5*time.Second).GetAck() == nil {
		t.Fatal("want an ack")
	}
	if err := st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Credit{Credit: &pb.Credit{Slots: 1}}}); err != nil {
		t.Fatal(err)
	}
	if recvMsg(t, st, 5*time.Second).GetJob() == nil {
		t.Fatal("want a third job")
	}
	eventually(t, 2*time.Second, "two jobs left", func() bool { return e.fake.queued("service") == 2 })
}

func TestResultTakesHostFromJobAndCompletesAfterSubmit(t *testing.T) {
	e := newTestEnv(t, nil)
	h := e.fake.add("service", serviceJob(t, "web1", "http", time.Minute))
	st, _, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	job := recvMsg(t, st, 5*time.Second).GetJob()
	if string(job.GetHostName()) != "web1" || string(job.GetServiceDescription()) != "http" || job.GetType() != pb.JobType_JOB_TYPE_SERVICE {
		t.Fatalf("job %+v", job)
	}
	start := time.Unix(1700000001, 250000000)
	err := st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: &pb.JobResult{
		JobId: job.GetJobId(), ReturnCode: 1, Output: []byte("WARN - slow\nline two|t=1s"),
		StartTime: timestamppb.New(start), FinishTime: timestamppb.New(start.Add(time.Second)), ExitedOk: true,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ack := recvMsg(t, st, 5*time.Second).GetAck()
	if ack.GetJobId() != job.GetJobId() {
		t.Fatalf("want ack for %s, got %v", job.GetJobId(), ack)
	}
	completed, _, results := e.fake.snapshot()
	if len(results) != 1 || results[0].queue != "check_results" {
		t.Fatalf("results %+v", results)
	}
	if len(completed) != 1 || completed[0] != h {
		t.Fatalf("completed %v, want [%s]", completed, h)
	}
	r := decodeResult(t, results[0].payload)
	if r.HostName != "web1" || r.ServiceDescription != "http" || r.ReturnCode != 1 ||
		r.Output != "WARN - slow\nline two|t=1s" || !r.StartTime.Equal(start) ||
		!r.CoreStartTime.Equal(time.Unix(1700000000, 0)) || r.Type != "active" || !r.ExitedOK {
		t.Fatalf("result %+v", r)
	}
	if !strings.Contains(r.Source, "w1") {
		t.Fatalf("source %q", r.Source)
	}
}

func TestUnknownJobResultIsRefusedAndCounted(t *testing.T) {
	e := newTestEnv(t, nil)
	st, _, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	if err := st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: &pb.JobResult{JobId: "999", Output: []byte("forged")}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "refusal counted", func() bool {
		return testutil.ToFloat64(e.b.m.refused.WithLabelValues("unknown_job")) == 1
	})
	if _, _, results := e.fake.snapshot(); len(results) != 0 {
		t.Fatalf("a forged result reached gearmand: %+v", results)
	}
}

func TestQueueNotAllowedIsPermissionDenied(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.Authz = &Authz{Rules: []Rule{{Identity: "w1", Role: RoleWorker, Queues: []string{"hostgroup_a"}}}}
	})
	st, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "hostgroup_a", "service"))
	if w != nil {
		t.Fatal("session was accepted")
	}
	_, err := st.Recv()
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"service"`) {
		t.Fatalf("err = %v, want PermissionDenied naming the queue", err)
	}
}

func TestWrongRoleIsPermissionDenied(t *testing.T) {
	e := newTestEnv(t, nil)
	st, w, _ := e.session(e.dial(certs.RoleSender, "s1"), hello(1, "service"))
	if w != nil {
		t.Fatal("a sender certificate opened a worker session")
	}
	if _, err := st.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("err = %v, want PermissionDenied", err)
	}
}

func TestTimeoutResultWrittenByBridge(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.TimeoutGrace = 50 * time.Millisecond })
	e.fake.add("service", serviceJob(t, "db1", "slow", time.Second))
	st, _, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	job := recvMsg(t, st, 5*time.Second).GetJob()
	cancel := recvMsg(t, st, 5*time.Second).GetCancel()
	if cancel.GetJobId() != job.GetJobId() {
		t.Fatalf("want cancel of %s, got %v", job.GetJobId(), cancel)
	}
	eventually(t, 2*time.Second, "timeout result", func() bool { _, _, r := e.fake.snapshot(); return len(r) == 1 })
	_, _, results := e.fake.snapshot()
	r := decodeResult(t, results[0].payload)
	// rc 2, CRITICAL: the default timeout-return.
	if r.ReturnCode != 2 || r.Output != "(Service Check Timed Out On Worker: w1)" || r.HostName != "db1" {
		t.Fatalf("timeout result %+v", r)
	}
	// The late real result is refused: the job is already answered.
	_ = st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: &pb.JobResult{JobId: job.GetJobId(), Output: []byte("late")}}})
	eventually(t, 2*time.Second, "late result refused", func() bool {
		return testutil.ToFloat64(e.b.m.timedOut.WithLabelValues("service")) == 1 &&
			testutil.ToFloat64(e.b.m.refused.WithLabelValues("late")) == 1
	})
}

// TestInvalidJobIsFailedAndCounted: a job that can never run — it does not
// decode, or names a result queue gearmand cannot take — is failed towards
// gearmand at once, counted, and holds no slot: the worker's only slot
// takes the next check.
func TestInvalidJobIsFailedAndCounted(t *testing.T) {
	codec, _ := modgearman.NewCodec(testKey, true)
	withResultQueue := func(q string) []byte {
		j := modgearman.Job{Type: modgearman.JobService, ResultQueue: q, HostName: "h", ServiceDescription: "s",
			CoreTime: time.Unix(1700000000, 0), Timeout: time.Minute, CommandLine: "/bin/true"}
		return codec.Encode(j.Marshal())
	}
	for _, tc := range []struct {
		name, reason string
		data         []byte
	}{
		{"undecodable", "undecodable", []byte("not base64 at all!")},
		{"result queue with a space", "invalid", withResultQueue("check results")},
		{"result queue too long", "invalid", withResultQueue(strings.Repeat("q", 600))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, nil)
			h := e.fake.add("service", tc.data)
			st, _, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
			eventually(t, 2*time.Second, "invalid job failed", func() bool {
				_, failed, _ := e.fake.snapshot()
				return len(failed) == 1 && failed[0] == h
			})
			if got := testutil.ToFloat64(e.b.m.invalidJobs.WithLabelValues(tc.reason)); got != 1 {
				t.Fatalf("invalid jobs (%s) = %v", tc.reason, got)
			}
			e.fake.add("service", serviceJob(t, "next", "s", time.Minute))
			if j := recvMsg(t, st, 5*time.Second).GetJob(); string(j.GetHostName()) != "next" {
				t.Fatalf("got %v, want the next check", j)
			}
			if _, _, results := e.fake.snapshot(); len(results) != 0 {
				t.Fatalf("a result was written for the invalid job: %v", results)
			}
		})
	}
}

func TestResumeResendsLostJobAndAcceptsResult(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.ResumeGrace = 5 * time.Second })
	e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
	cc := e.dial(certs.RoleWorker, "w1")
	st, w, cancel := e.session(cc, hello(1, "service"))
	job := recvMsg(t, st, 5*time.Second).GetJob()
	cancel() // the network goes away
	eventually(t, 2*time.Second, "session detached", func() bool {
		return testutil.ToFloat64(e.b.m.sessions.WithLabelValues("detached")) == 1
	})
	// The worker comes back without the job (say it was lost in transit).
	h := hello(1, "service")
	h.SessionId = w.GetSessionId()
	st2, w2, _ := e.session(cc, h)
	if !w2.GetResumed() {
		t.Fatal("session not resumed")
	}
	again := recvMsg(t, st2, 5*time.Second).GetJob()
	if again.GetJobId() != job.GetJobId() {
		t.Fatalf("resent job %s, want %s", again.GetJobId(), job.GetJobId())
	}
	_ = st2.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: &pb.JobResult{JobId: job.GetJobId(), Output: []byte("OK"), ExitedOk: true}}})
	if recvMsg(t, st2, 5*time.Second).GetAck() == nil {
		t.Fatal("want ack")
	}
	if got := testutil.ToFloat64(e.b.m.requeued); got != 0 {
		t.Fatalf("requeued %v, want 0", got)
	}
}

func TestGraceExpiryRequeues(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.ResumeGrace = 200 * time.Millisecond })
	e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
	st, _, cancel := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	recvMsg(t, st, 5*time.Second)
	if e.fake.queued("service") != 0 {
		t.Fatal("job not grabbed")
	}
	cancel()
	eventually(t, 3*time.Second, "job requeued", func() bool { return e.fake.queued("service") == 1 })
	eventually(t, 2*time.Second, "requeue counted", func() bool { return testutil.ToFloat64(e.b.m.requeued) == 1 })
}

func TestSubmitRetriedUntilAccepted(t *testing.T) {
	e := newTestEnv(t, nil)
	e.fake.failSubmit = 2
	e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
	st, _, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	job := recvMsg(t, st, 5*time.Second).GetJob()
	_ = st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: &pb.JobResult{JobId: job.GetJobId(), Output: []byte("OK"), ExitedOk: true}}})
	if recvMsg(t, st, 10*time.Second).GetAck() == nil {
		t.Fatal("want ack")
	}
	completed, _, results := e.fake.snapshot()
	if len(results) != 1 || len(completed) != 1 {
		t.Fatalf("results %d completed %d", len(results), len(completed))
	}
	if got := testutil.ToFloat64(e.b.m.submitErrors); got != 2 {
		t.Fatalf("submit errors %v, want 2", got)
	}
}

func TestOversizedMessageRefused(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxMessageBytes = 64 << 10 })
	e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
	st, _, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	job := recvMsg(t, st, 5*time.Second).GetJob()
	_ = st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: &pb.JobResult{JobId: job.GetJobId(), Output: []byte(strings.Repeat("x", 128<<10))}}})
	_, err := st.Recv()
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("err = %v, want ResourceExhausted", err)
	}
	if _, _, results := e.fake.snapshot(); len(results) != 0 {
		t.Fatal("oversized result reached gearmand")
	}
}

// TestStatusQueuePing: a ping on worker_<identifier> is answered by the
// bridge with the classic status line; it takes no slot and never reaches
// the worker, which still gets the next check.
func TestStatusQueuePing(t *testing.T) {
	e := newTestEnv(t, nil)
	st, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	if w == nil {
		t.Fatal("no welcome")
	}
	ping := e.fake.add("worker_w1", []byte("check"))
	eventually(t, 5*time.Second, "ping answered", func() bool {
		e.fake.mu.Lock()
		defer e.fake.mu.Unlock()
		return e.fake.replies[ping] != nil
	})
	e.fake.mu.Lock()
	reply := string(e.fake.replies[ping])
	e.fake.mu.Unlock()
	want := "w1 has 1 worker and is working on 0 jobs. Version: " + e.b.version + "|worker=1;;;1;1 jobs=0c"
	if reply != want {
		t.Fatalf("reply\n got %q\nwant %q", reply, want)
	}
	// The ping's credit came back: the only slot takes the next check.
	e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
	if m := recvMsg(t, st, 5*time.Second); string(m.GetJob().GetHostName()) != "h" {
		t.Fatalf("got %v, want the check", m)
	}
	// With the only slot busy the ping is still answered, as the C and Go
	// workers answer it while every process is busy.
	busy := e.fake.add("worker_w1", []byte("check"))
	eventually(t, 5*time.Second, "ping answered while busy", func() bool {
		e.fake.mu.Lock()
		defer e.fake.mu.Unlock()
		return e.fake.replies[busy] != nil
	})
	e.fake.mu.Lock()
	reply = string(e.fake.replies[busy])
	e.fake.mu.Unlock()
	if want := "w1 has 1 worker and is working on 1 jobs."; !strings.HasPrefix(reply, want) {
		t.Fatalf("reply while busy\n got %q\nwant prefix %q", reply, want)
	}
}

func TestHelloRefusesControlCharacters(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, h := range []*pb.Hello{
		{Identifier: "w\x001", Queues: []string{"service"}, Slots: 1},
		{Identifier: "w1", Queues: []string{"service\tx"}, Slots: 1},
		{Identifier: "w1", Queues: []string{"host\n"}, Slots: 1},
	} {
		st, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), h)
		if w != nil {
			t.Fatalf("hello %v accepted", h)
		}
		_, err := st.Recv()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "control character") {
			t.Fatalf("hello %v: err = %v, want InvalidArgument naming the control character", h, err)
		}
	}
}

// TestResultResentWhileSubmittingIsNotRefused: a worker's result reaches
// the bridge on its old stream (say held back by a cut network link), and
// the worker, which never saw the ack, sends it again on the stream that
// resumed the session while the bridge is still submitting the first copy.
// The copy must be neither refused nor submitted twice, and the worker
// gets its ack.
func TestResultResentWhileSubmittingIsNotRefused(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.ResumeGrace = 5 * time.Second })
	e.fake.failSubmit = 4 // the first copy takes a while (backoff) to get through
	e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
	cc := e.dial(certs.RoleWorker, "w1")
	st, w, _ := e.session(cc, hello(1, "service"))
	job := recvMsg(t, st, 5*time.Second).GetJob()
	res := &pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: &pb.JobResult{JobId: job.GetJobId(), Output: []byte("OK"), ExitedOk: true}}}
	if err := st.Send(res); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "first copy being submitted", func() bool {
		return testutil.ToFloat64(e.b.m.submitErrors) >= 1
	})
	h := hello(1, "service")
	h.SessionId, h.HeldJobIds = w.GetSessionId(), []string{job.GetJobId()}
	st2, w2, _ := e.session(cc, h)
	if !w2.GetResumed() {
		t.Fatal("session not resumed")
	}
	if err := st2.Send(res); err != nil {
		t.Fatal(err)
	}
	if ack := recvMsg(t, st2, 10*time.Second).GetAck(); ack.GetJobId() != job.GetJobId() {
		t.Fatalf("want ack for %s, got %v", job.GetJobId(), ack)
	}
	time.Sleep(200 * time.Millisecond)
	if got := testutil.ToFloat64(e.b.m.refused.WithLabelValues("unknown_job")); got != 0 {
		t.Fatalf("refused %v result(s) as unknown_job; the job was still being answered", got)
	}
	if _, _, results := e.fake.snapshot(); len(results) != 1 {
		t.Fatalf("%d results submitted, want 1", len(results))
	}
}
