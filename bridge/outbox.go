package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// errStalled is the cause of a detach when the worker stopped reading its
// stream: its send queue filled up, or one Send blocked longer than the
// send timeout.
var errStalled = errors.New("worker stopped reading its stream")

// outMsg is one message waiting to be written to a worker; job is set for
// job messages, so that the writer can mark the job as sent.
type outMsg struct {
	m   *pb.WorkResponse
	job *inflightJob
}

// outbox is the send side of one attached stream: a bounded queue and a
// single writer goroutine (pump). Nothing on a session's paths — dispatch,
// timeouts, acks, drain — ever blocks on a worker that stops reading: a
// full queue or a Send blocked past the send timeout detaches the stream,
// and the resume logic takes over.
type outbox struct {
	st    workStream
	ch    chan outMsg
	since atomic.Int64 // UnixNano when the Send in progress began; 0 when idle
}

func newOutbox(st workStream, size int) *outbox {
	return &outbox{st: st, ch: make(chan outMsg, size)}
}

// put queues m without blocking; it reports false when the queue is full.
func (o *outbox) put(m outMsg) bool {
	select {
	case o.ch <- m:
		return true
	default:
		return false
	}
}

// blockedFor is how long the Send in progress has been blocked (zero when
// the writer is idle).
func (o *outbox) blockedFor(now time.Time) time.Duration {
	since := o.since.Load()
	if since == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, since))
}

// pump writes the outbox to the stream until ctx ends (the stream was
// detached) or the stream breaks, which it reports through stop. Each
// message is encoded before it is sent: gRPC ends the whole stream when
// Send fails, but a message that cannot be marshalled is a failure of that
// message alone, handled by unsendable while the stream goes on.
func (s *session) pump(ctx context.Context, o *outbox, stop context.CancelCauseFunc) {
	for {
		select {
		case <-ctx.Done():
			return
		case om := <-o.ch:
			pm := new(grpc.PreparedMsg)
			if err := pm.Encode(o.st, om.m); err != nil {
				s.unsendable(om, err)
				continue
			}
			o.since.Store(time.Now().UnixNano())
			err := o.st.SendMsg(pm)
			o.since.Store(0)
			if err != nil {
				stop(fmt.Errorf("send to worker: %w", err))
				return
			}
			if om.job != nil {
				om.job.sent.Store(true)
			}
		}
	}
}

// unsendable handles a message that cannot be encoded: a job gets an
// explicit result instead, anything else is counted and skipped.
func (s *session) unsendable(om outMsg, err error) {
	s.b.m.unsendable.Inc()
	if om.job != nil {
		s.refuseJob(om.job, fmt.Sprintf("its message cannot be encoded: %v", err), "unencodable")
		return
	}
	s.log.Error("message to the worker cannot be encoded; skipped", "type", fmt.Sprintf("%T", om.m.GetMsg()), "err", err)
}
