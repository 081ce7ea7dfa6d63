package worker

import (
	"errors"
	"sync"

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

	mu        sync.Mutex
	pending   []*pb.WorkRequest
	closeSend bool
	err       error
}

func newBatchSender(st interface {
	Send(*pb.WorkRequest) error
	CloseSend() error
}) *batchSender {
	b := &batchSender{st: st, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
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
	b.mu.Unlock()
	b.signal()
	return nil
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
		b.mu.Lock()
		pending, closeSend := b.pending, b.closeSend
		b.pending = nil
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
