package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// job messages, so that the writer can mark the job as sent, and size is
// then the encoded size of m.
type outMsg struct {
	m    *pb.WorkResponse
	job  *inflightJob
	size int
}

// Batching towards workers that announce it (Hello.batches): the pump puts
// every ack and job waiting in the queue into one Jobs message, so that a
// busy session costs one stream write (one TLS record, one syscall) for
// many jobs instead of one each.
const (
	// maxJobsBatch bounds the jobs and acks of one Jobs message.
	maxJobsBatch = 128
	// ackDelay is how long an ack waits for a job to ride with. An ack
	// is not urgent (the worker only forgets a result it keeps for a
	// resend; a result resent after a reconnect is acknowledged again),
	// and at a steady rate of a few checks per second or more the next
	// job comes within it: sent together, they cost one write and one
	// read on each side (at 100 checks/s, 0.8 writes and 5 context
	// switches less per check than with 2ms). Short enough that a
	// draining worker, which waits for its acks, is hardly kept waiting.
	ackDelay = 50 * time.Millisecond
	// batchOverhead is room left in a Jobs message for its framing.
	batchOverhead = 1024
)

// outbox is the send side of one attached stream: a bounded queue and a
// single writer goroutine (pump). Nothing on a session's paths — dispatch,
// timeouts, acks, drain — ever blocks on a worker that stops reading: a
// full queue or a Send blocked past the send timeout detaches the stream,
// and the resume logic takes over.
type outbox struct {
	st      workStream
	ch      chan outMsg
	batches bool         // the worker understands Jobs messages
	maxRecv int          // the worker's receive limit
	since   atomic.Int64 // UnixNano when the Send in progress began; 0 when idle

	// Acks of a batching worker wait here, not in ch, so that an ack wakes
	// nobody: the pump takes them with the next job it sends, or when
	// ackTimer says they have waited ackDelay.
	ackMu    sync.Mutex
	acks     []string
	ackTimer *time.Timer
	ackArmed bool
	ackDue   chan struct{} // capacity 1
}

func newOutbox(st workStream, size int, batches bool, maxRecv int) *outbox {
	return &outbox{st: st, ch: make(chan outMsg, size), batches: batches, maxRecv: maxRecv, ackDue: make(chan struct{}, 1)}
}

// putAck queues the ack of job id for a batching worker; it reports false
// when too many wait (the worker stopped reading; see sendLocked).
func (o *outbox) putAck(id string) bool {
	o.ackMu.Lock()
	defer o.ackMu.Unlock()
	if len(o.acks) >= maxJobsBatch {
		return false
	}
	o.acks = append(o.acks, id)
	if !o.ackArmed {
		o.ackArmed = true
		if o.ackTimer == nil {
			o.ackTimer = time.AfterFunc(ackDelay, o.acksDue)
		} else {
			o.ackTimer.Reset(ackDelay)
		}
	}
	return true
}

func (o *outbox) acksDue() {
	select {
	case o.ackDue <- struct{}{}:
	default:
	}
}

// takeAcks returns the waiting acks as messages.
func (o *outbox) takeAcks(batch []outMsg) []outMsg {
	o.ackMu.Lock()
	defer o.ackMu.Unlock()
	for _, id := range o.acks {
		batch = append(batch, outMsg{m: ackMsg(id)})
	}
	o.acks = o.acks[:0]
	if o.ackArmed {
		o.ackTimer.Stop()
		o.ackArmed = false
	}
	return batch
}

// stopAcks stops the ack timer of a pump that ends.
func (o *outbox) stopAcks() {
	o.ackMu.Lock()
	defer o.ackMu.Unlock()
	if o.ackTimer != nil {
		o.ackTimer.Stop()
	}
	o.ackArmed = false
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
	defer o.stopAcks()
	batch := make([]outMsg, 0, maxJobsBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case om := <-o.ch:
			batch = append(batch, om)
		case <-o.ackDue:
		}
		if !o.batches {
			if !s.write(o, batch[0], stop) {
				return
			}
			continue
		}
		batch = o.takeAcks(takeQueued(o.ch, batch))
		if !s.writeBatch(o, batch, stop) {
			return
		}
	}
}

// takeQueued appends what is waiting in ch to batch, up to maxJobsBatch.
func takeQueued(ch chan outMsg, batch []outMsg) []outMsg {
	for len(batch) < maxJobsBatch {
		select {
		case m := <-ch:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// writeBatch writes batch in order: runs of acks and jobs as Jobs
// messages (within the worker's receive limit), anything else alone.
func (s *session) writeBatch(o *outbox, batch []outMsg, stop context.CancelCauseFunc) bool {
	limit := o.maxRecv - batchOverhead
	var run []outMsg
	size := 0
	flush := func() bool {
		ok := true
		switch len(run) {
		case 0:
		case 1:
			ok = s.write(o, run[0], stop)
		default:
			ok = s.writeJobs(o, run, stop)
		}
		run, size = run[:0], 0
		return ok
	}
	for _, om := range batch {
		batchable := om.m.GetAck() != nil || om.job != nil
		if !batchable {
			if !flush() || !s.write(o, om, stop) {
				return false
			}
			continue
		}
		n := om.size + 16
		if om.job == nil {
			n = len(om.m.GetAck().GetJobId()) + 4
		}
		if len(run) > 0 && size+n > limit {
			if !flush() {
				return false
			}
		}
		run = append(run, om)
		size += n
	}
	return flush()
}

// writeJobs sends run, acks and jobs only, as one Jobs message. If that
// message cannot be encoded, each goes alone, so that only the one at
// fault is refused.
func (s *session) writeJobs(o *outbox, run []outMsg, stop context.CancelCauseFunc) bool {
	jobs := &pb.Jobs{}
	for _, om := range run {
		if a := om.m.GetAck(); a != nil {
			jobs.AckedJobIds = append(jobs.AckedJobIds, a.GetJobId())
		} else {
			jobs.Jobs = append(jobs.Jobs, om.m.GetJob())
		}
	}
	pm := new(grpc.PreparedMsg)
	if err := pm.Encode(o.st, &pb.WorkResponse{Msg: &pb.WorkResponse_Jobs{Jobs: jobs}}); err != nil {
		for _, om := range run {
			if !s.write(o, om, stop) {
				return false
			}
		}
		return true
	}
	if !s.sendPrepared(o, pm, stop) {
		return false
	}
	s.b.m.batches.Observe(float64(len(run)))
	for _, om := range run {
		if om.job != nil {
			om.job.sent.Store(true)
		}
	}
	return true
}

// write sends one message.
func (s *session) write(o *outbox, om outMsg, stop context.CancelCauseFunc) bool {
	pm := new(grpc.PreparedMsg)
	if err := pm.Encode(o.st, om.m); err != nil {
		s.unsendable(om, err)
		return true
	}
	if !s.sendPrepared(o, pm, stop) {
		return false
	}
	if om.job != nil {
		om.job.sent.Store(true)
	}
	return true
}

func (s *session) sendPrepared(o *outbox, pm *grpc.PreparedMsg, stop context.CancelCauseFunc) bool {
	o.since.Store(time.Now().UnixNano())
	err := o.st.SendMsg(pm)
	o.since.Store(0)
	if err != nil {
		stop(fmt.Errorf("send to worker: %w", err))
		return false
	}
	return true
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
