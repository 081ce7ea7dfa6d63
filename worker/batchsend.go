package worker

import (
	"errors"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// Bounds of one Results message: a batch stays well under any receive
// limit a bridge is likely to have (the gRPC default is 4 MiB).
const (
	maxResultsBatch      = 128
	maxResultsBatchBytes = 1 << 20
)

// batchSender is the send side of a stream to a bridge that takes Results
// messages (Welcome.batches). The loop's Send only queues; one writer
// goroutine sends what has queued up since its last write, with the
// results and credit that follow each other merged into one Results
// message. A busy worker thus costs the bridge one stream read for many
// results instead of one per result and one per credit. Order is kept: a
// drain, or CloseSend, goes out after everything queued before it.
//
// A failed write is sticky: the next Send reports it, and the loop drops
// the stream; results not acknowledged are sent again after the reconnect.
type batchSender struct {
	st interface {
		Send(*pb.WorkRequest) error
		CloseSend() error
	}
	wake chan struct{} // capacity 1: something queued
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the writer has returned

	// wait, flushAt: see Config.ResultBatchWait. A writer woken by a result
	// waits up to wait for flushAt results, a Flush, or anything but results
	// and credit.
	wait    time.Duration
	flushAt int

	mu        sync.Mutex
	pending   []*pb.WorkRequest
	results   int  // results in pending
	urgent    bool // pending holds a message that is not to wait
	flush     bool // Flush was called
	closeSend bool
	err       error
}

func newBatchSender(st interface {
	Send(*pb.WorkRequest) error
	CloseSend() error
}, wait time.Duration, flushAt int) *batchSender {
	b := &batchSender{st: st, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		wait: wait, flushAt: max(flushAt, 1)}
	go b.run()
	return b
}

// Send queues req.
func (b *batchSender) Send(req *pb.WorkRequest) error {
	b.mu.Lock()
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return err
	}
	b.pending = append(b.pending, req)
	switch req.GetMsg().(type) {
	case *pb.WorkRequest_Result:
		b.results++
	case *pb.WorkRequest_Credit:
	default:
		b.urgent = true
	}
	b.mu.Unlock()
	b.signal()
	return nil
}

// Flush sends what is queued without waiting for more results: the loop
// calls it when no plugin is running, so no result is coming.
func (b *batchSender) Flush() {
	b.mu.Lock()
	b.flush = true
	b.mu.Unlock()
	b.signal()
}

// ready reports whether the writer should send now rather than wait for
// more results to join the batch.
func (b *batchSender) ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.results == 0 || b.results >= b.flushAt || b.urgent || b.flush || b.closeSend
}

// CloseSend half-closes the stream after everything queued.
func (b *batchSender) CloseSend() error {
	b.mu.Lock()
	b.closeSend = true
	b.mu.Unlock()
	b.signal()
	return nil
}

func (b *batchSender) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// stop ends the writer and waits for it. It is called once the stream has
// ended, so a write in progress returns at once.
func (b *batchSender) stop() {
	close(b.quit)
	<-b.done
	b.mu.Lock()
	if b.err == nil {
		b.err = errStreamEnded
	}
	b.mu.Unlock()
}

// errStreamEnded answers a Send after the stream has ended.
var errStreamEnded = errors.New("session stream ended")

func (b *batchSender) run() {
	defer close(b.done)
	closed := false
	for {
		select {
		case <-b.wake:
		case <-b.quit:
			return
		}
		if b.wait > 0 && !b.ready() && !b.linger() {
			return
		}
		b.mu.Lock()
		pending, closeSend := b.pending, b.closeSend
		b.pending, b.results, b.urgent, b.flush = nil, 0, false, false
		b.mu.Unlock()
		for _, m := range coalesce(pending) {
			if err := b.st.Send(m); err != nil {
				b.mu.Lock()
				b.err = err
				b.mu.Unlock()
				return
			}
		}
		if closeSend && !closed {
			closed = true
			_ = b.st.CloseSend()
		}
	}
}

// linger waits until the batch is ready or b.wait has passed; false when
// the sender was stopped.
func (b *batchSender) linger() bool {
	t := time.NewTimer(b.wait)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-b.wake:
			if b.ready() {
				return true
			}
		case <-b.quit:
			return false
		}
	}
}

// coalesce merges runs of results and credits into Results messages and
// keeps everything else, and the order, as it is.
func coalesce(reqs []*pb.WorkRequest) []*pb.WorkRequest {
	out := make([]*pb.WorkRequest, 0, 2)
	var cur *pb.Results
	size := 0
	end := func() {
		if cur == nil {
			return
		}
		switch {
		case len(cur.Results) == 0:
			out = append(out, &pb.WorkRequest{Msg: &pb.WorkRequest_Credit{Credit: &pb.Credit{Slots: cur.Credit}}})
		case len(cur.Results) == 1 && cur.Credit == 0:
			out = append(out, &pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: cur.Results[0]}})
		default:
			out = append(out, &pb.WorkRequest{Msg: &pb.WorkRequest_Results{Results: cur}})
		}
		cur, size = nil, 0
	}
	for _, r := range reqs {
		switch m := r.GetMsg().(type) {
		case *pb.WorkRequest_Result:
			n := proto.Size(m.Result)
			if cur != nil && (len(cur.Results) >= maxResultsBatch || size+n > maxResultsBatchBytes) {
				end()
			}
			if cur == nil {
				cur = &pb.Results{}
			}
			cur.Results = append(cur.Results, m.Result)
			size += n
		case *pb.WorkRequest_Credit:
			if cur == nil {
				cur = &pb.Results{}
			}
			cur.Credit += m.Credit.GetSlots()
		default:
			end()
			out = append(out, r)
		}
	}
	end()
	return out
}
