package worker

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

func result(id string) *pb.WorkRequest {
	return &pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: &pb.JobResult{JobId: id}}}
}

func credit(n uint32) *pb.WorkRequest {
	return &pb.WorkRequest{Msg: &pb.WorkRequest_Credit{Credit: &pb.Credit{Slots: n}}}
}

func drainReq() *pb.WorkRequest {
	return &pb.WorkRequest{Msg: &pb.WorkRequest_Drain{Drain: &pb.Drain{Reason: "x"}}}
}

// describe renders requests compactly: R(a,b)+2 for Results, r(a) for a
// Result, c2 for a Credit, D for a Drain.
func describe(reqs []*pb.WorkRequest) string {
	s := ""
	for _, r := range reqs {
		switch m := r.GetMsg().(type) {
		case *pb.WorkRequest_Results:
			ids := ""
			for i, x := range m.Results.GetResults() {
				if i > 0 {
					ids += ","
				}
				ids += x.GetJobId()
			}
			s += fmt.Sprintf("R(%s)+%d ", ids, m.Results.GetCredit())
		case *pb.WorkRequest_Result:
			s += "r(" + m.Result.GetJobId() + ") "
		case *pb.WorkRequest_Credit:
			s += fmt.Sprintf("c%d ", m.Credit.GetSlots())
		case *pb.WorkRequest_Drain:
			s += "D "
		}
	}
	return s
}

func TestCoalesce(t *testing.T) {
	tests := []struct {
		name string
		in   []*pb.WorkRequest
		want string
	}{
		{"nothing", nil, ""},
		{"one result stays a result", []*pb.WorkRequest{result("a")}, "r(a) "},
		{"one credit stays a credit", []*pb.WorkRequest{credit(1)}, "c1 "},
		{"credits add up", []*pb.WorkRequest{credit(1), credit(2)}, "c3 "},
		{"result and its credit", []*pb.WorkRequest{result("a"), credit(1)}, "R(a)+1 "},
		{"several", []*pb.WorkRequest{result("a"), credit(1), result("b"), credit(1)}, "R(a,b)+2 "},
		{"a drain keeps its place", []*pb.WorkRequest{result("a"), drainReq(), result("b"), credit(2)}, "r(a) D R(b)+2 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(coalesce(tt.in)); got != tt.want {
				t.Errorf("coalesce = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		var in []*pb.WorkRequest
		for i := range maxResultsBatch + 1 {
			in = append(in, result(fmt.Sprint(i)))
		}
		out := coalesce(in)
		if len(out) != 2 || len(out[0].GetResults().GetResults()) != maxResultsBatch || out[1].GetResult() == nil {
			t.Errorf("coalesce of %d results = %d messages, want one full batch and one result", len(in), len(out))
		}
	})
}

// recordingStream records what the batch sender writes.
type recordingStream struct {
	mu     sync.Mutex
	sent   []*pb.WorkRequest
	closed bool
	err    error
	block  chan struct{} // when set, Send waits for it
}

func (r *recordingStream) Send(m *pb.WorkRequest) error {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if r.closed {
		return errors.New("send after CloseSend")
	}
	r.sent = append(r.sent, m)
	return nil
}

func (r *recordingStream) CloseSend() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

func (r *recordingStream) snapshot() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return describe(r.sent), r.closed
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBatchSender: what queues up while a write is in progress goes out
// merged, in order, and CloseSend comes after everything queued; a failed
// write is reported by the next Send, and Send fails after stop.
func TestBatchSender(t *testing.T) {
	st := &recordingStream{block: make(chan struct{})}
	b := newBatchSender(st, 0, 1)
	_ = b.Send(result("a")) // the writer takes it and blocks in Send
	time.Sleep(20 * time.Millisecond)
	_ = b.Send(credit(1))
	_ = b.Send(result("b"))
	_ = b.Send(credit(1))
	_ = b.CloseSend()
	close(st.block)
	waitUntil(t, "the close", func() bool { _, c := st.snapshot(); return c })
	if got, _ := st.snapshot(); got != "r(a) R(b)+2 " {
		t.Errorf("sent %q, want %q", got, "r(a) R(b)+2 ")
	}
	b.stop()
	if err := b.Send(result("c")); err == nil {
		t.Error("Send after stop succeeded")
	}

	st2 := &recordingStream{err: errors.New("broken")}
	b2 := newBatchSender(st2, 0, 1)
	defer b2.stop()
	_ = b2.Send(result("a"))
	waitUntil(t, "the write error to stick", func() bool { return b2.Send(credit(1)) != nil })
}

// TestBatchSenderWaitsForMoreResults: with a wait, a result waits for
// others until flushAt results are queued, a Flush, or something that is
// not a result; credit alone and the end of the wait send at once.
func TestBatchSenderWaitsForMoreResults(t *testing.T) {
	quiet := func(st *recordingStream, what, before string) {
		t.Helper()
		time.Sleep(100 * time.Millisecond)
		if got, _ := st.snapshot(); got != before {
			t.Fatalf("%s: sent %q before the batch was ready", what, got)
		}
	}
	sent := func(st *recordingStream, want string) {
		t.Helper()
		waitUntil(t, want, func() bool { got, _ := st.snapshot(); return got == want })
	}

	// flushAt results.
	st := &recordingStream{}
	b := newBatchSender(st, time.Hour, 3)
	_ = b.Send(result("a"))
	_ = b.Send(credit(1))
	_ = b.Send(result("b"))
	quiet(st, "two of three results", "")
	_ = b.Send(result("c"))
	sent(st, "R(a,b,c)+1 ")
	b.stop()

	// A Flush, and credit alone.
	st = &recordingStream{}
	b = newBatchSender(st, time.Hour, 3)
	_ = b.Send(credit(2))
	sent(st, "c2 ")
	_ = b.Send(result("a"))
	quiet(st, "one result", "c2 ")
	b.Flush()
	sent(st, "c2 r(a) ")
	b.stop()

	// The end of the wait.
	st = &recordingStream{}
	b = newBatchSender(st, 50*time.Millisecond, 100)
	_ = b.Send(result("a"))
	sent(st, "r(a) ")
	b.stop()

	// CloseSend does not wait.
	st = &recordingStream{}
	b = newBatchSender(st, time.Hour, 100)
	_ = b.Send(result("a"))
	_ = b.CloseSend()
	waitUntil(t, "the close", func() bool { _, c := st.snapshot(); return c })
	if got, _ := st.snapshot(); got != "r(a) " {
		t.Errorf("sent %q before the close, want %q", got, "r(a) ")
	}
	b.stop()
}
