package bridge

import (
	"slices"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// batchedMsgs reads messages until want jobs and wantAcks acks came, in
// single or Jobs messages, and returns their ids.
func batchedMsgs(t *testing.T, st pb.WorkerService_WorkClient, want, wantAcks int) (jobs, acks []string) {
	t.Helper()
	for len(jobs) < want || len(acks) < wantAcks {
		m := recvMsg(t, st, 5*time.Second)
		switch {
		case m.GetJob() != nil:
			jobs = append(jobs, m.GetJob().GetJobId())
		case m.GetAck() != nil:
			acks = append(acks, m.GetAck().GetJobId())
		case m.GetJobs() != nil:
			acks = append(acks, m.GetJobs().GetAckedJobIds()...)
			for _, j := range m.GetJobs().GetJobs() {
				jobs = append(jobs, j.GetJobId())
			}
		default:
			t.Fatalf("unexpected message %v", m)
		}
	}
	if len(jobs) != want || len(acks) != wantAcks {
		t.Fatalf("got jobs %v and acks %v, want %d jobs and %d acks", jobs, acks, want, wantAcks)
	}
	return jobs, acks
}

// TestBatchingWorker: a worker that announces batches gets jobs and acks
// in Jobs messages and may send results with their credit in one Results
// message; credit still bounds the grabs, every result is submitted and
// its job completed, and each job is acknowledged once.
func TestBatchingWorker(t *testing.T) {
	e := newTestEnv(t, nil)
	for i := range 6 {
		e.fake.add("service", serviceJob(t, "h", "s"+string(rune('0'+i)), time.Minute))
	}
	h := hello(3, "service")
	h.Batches = true
	st, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), h)
	if !w.GetBatches() {
		t.Fatal("welcome does not offer batches")
	}
	first, _ := batchedMsgs(t, st, 3, 0)
	time.Sleep(100 * time.Millisecond)
	if n := e.fake.queued("service"); n != 3 {
		t.Fatalf("queued = %d, want 3 (the bridge hoarded jobs)", n)
	}
	res := func(id string) *pb.JobResult { return &pb.JobResult{JobId: id, Output: []byte("OK"), ExitedOk: true} }
	// Two results and their two slots in one message; credit beyond the
	// freed slots is ignored.
	if err := st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Results{Results: &pb.Results{
		Results: []*pb.JobResult{res(first[0]), res(first[1])}, Credit: 3,
	}}}); err != nil {
		t.Fatal(err)
	}
	second, acks := batchedMsgs(t, st, 2, 2)
	slices.Sort(acks)
	if want := []string{first[0], first[1]}; !slices.Equal(acks, sortedCopy(want)) {
		t.Errorf("acks %v, want %v", acks, want)
	}
	if slices.ContainsFunc(second, func(id string) bool { return slices.Contains(first, id) }) {
		t.Errorf("jobs %v sent again (first %v)", second, first)
	}
	eventually(t, 2*time.Second, "one job left", func() bool { return e.fake.queued("service") == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := e.fake.queued("service"); n != 1 {
		t.Fatalf("queued = %d, want 1 (credit beyond the freed slots was honoured)", n)
	}
	completed, _, results := e.fake.snapshot()
	if len(results) != 2 || len(completed) != 2 {
		t.Fatalf("%d results and %d completions, want 2 each", len(results), len(completed))
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// TestJobIDsDifferAcrossSessions: a worker that starts a new session (its
// old one ended, or the bridge restarted) may still hold jobs of the old
// one; the new session's job ids must not repeat them, or the worker takes
// a new job for a copy of an old one and never runs it.
func TestJobIDsDifferAcrossSessions(t *testing.T) {
	e := newTestEnv(t, nil)
	seen := map[string]bool{}
	for i := range 3 {
		e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
		st, _, cancel := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
		m := recvMsg(t, st, 5*time.Second)
		id := m.GetJob().GetJobId()
		if id == "" {
			t.Fatalf("session %d: no job: %v", i, m)
		}
		if seen[id] {
			t.Fatalf("session %d repeats job id %s of an earlier session", i, id)
		}
		seen[id] = true
		t.Logf("session %d: job id %s", i, id)
		cancel()
	}
}
