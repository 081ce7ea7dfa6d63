package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"

	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// runStream dials c's bridge, opens the session stream, sends hello, waits
// for the welcome and then reports every message to the loop until the
// stream ends. It returns why the stream ended.
func (l *loop) runStream(c *conn, hello *pb.Hello) error {
	cc, err := grpc.NewClient(c.addr, l.w.dialOpts...)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", c.addr, err)
	}
	defer cc.Close()

	hello.Batches = true // this worker reads Jobs messages
	// The handshake timer ends the stream through a context of its own:
	// c.ctx is ended only by the loop, once it has given up c, so the
	// report that this attempt failed always reaches the loop. (Ending
	// c.ctx here let post drop that report, and the worker waited for an
	// attempt that was over, never trying again.)
	sctx, scancel := context.WithCancelCause(c.ctx)
	defer scancel(errSessionDone)
	timer := time.AfterFunc(handshakeTimeout, func() { scancel(errHandshakeTimeout) })
	wel, st, err := handshake(sctx, pb.NewWorkerServiceClient(cc), hello)
	if !timer.Stop() && err == nil {
		err = errHandshakeTimeout
	}
	if err != nil {
		if cause := context.Cause(sctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
		return fmt.Errorf("bridge %s: %w", c.addr, err)
	}
	var ws workStream = st
	if wel.GetBatches() {
		bs := newBatchSender(st, l.cfg.ResultBatchWait, l.cfg.Slots/2)
		defer bs.stop()
		ws = bs
	}
	if !l.post(c, streamEvent{c: c, kind: evWelcome, stream: ws, welcome: wel}) {
		return contextCause(c)
	}
	if l.w.renew != nil {
		stop := l.startRenewal(c.ctx, cc)
		defer stop() // before cc.Close
	}
	for {
		msg, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("bridge %s ended the session stream", c.addr)
		}
		if err != nil {
			return fmt.Errorf("bridge %s: receive: %w", c.addr, err)
		}
		if jobs := msg.GetJobs(); jobs != nil {
			// The loop handles one message at a time: the acks, then the
			// jobs, as if each had come alone.
			for _, id := range jobs.GetAckedJobIds() {
				if !l.post(c, streamEvent{c: c, kind: evMessage, msg: &pb.WorkResponse{Msg: &pb.WorkResponse_Ack{Ack: &pb.Ack{JobId: id}}}}) {
					return contextCause(c)
				}
			}
			for _, j := range jobs.GetJobs() {
				if !l.post(c, streamEvent{c: c, kind: evMessage, msg: &pb.WorkResponse{Msg: &pb.WorkResponse_Job{Job: j}}}) {
					return contextCause(c)
				}
			}
			continue
		}
		if !l.post(c, streamEvent{c: c, kind: evMessage, msg: msg}) {
			return contextCause(c)
		}
	}
}

// handshake opens the stream, sends hello and reads the welcome.
func handshake(ctx context.Context, client pb.WorkerServiceClient, hello *pb.Hello) (*pb.Welcome, pb.WorkerService_WorkClient, error) {
	st, err := client.Work(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("open session stream: %w", err)
	}
	if err := st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Hello{Hello: hello}}); err != nil {
		if errors.Is(err, io.EOF) {
			// The stream ended; its status says why.
			_, err = st.Recv()
		}
		return nil, nil, fmt.Errorf("send hello: %w", err)
	}
	first, err := st.Recv()
	if errors.Is(err, io.EOF) {
		return nil, nil, errors.New("wait for welcome: the bridge ended the stream")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("wait for welcome: %w", err)
	}
	wel := first.GetWelcome()
	if wel == nil {
		return nil, nil, fmt.Errorf("wait for welcome: the first message is %T", first.GetMsg())
	}
	if wel.GetSessionId() == "" {
		return nil, nil, errors.New("wait for welcome: the welcome carries no session id")
	}
	return wel, st, nil
}

// contextCause is why c's context ended, or nil.
func contextCause(c *conn) error {
	if c.ctx.Err() == nil {
		return nil
	}
	return context.Cause(c.ctx)
}
