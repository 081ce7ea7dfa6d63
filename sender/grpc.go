package sender

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// DefaultBatchSize is the number of results per SubmitResults call: large
// enough to amortise the round trip, small enough that one message (1,000
// results of 1 KiB output) stays far below the bridge's 4 MiB limit.
const DefaultBatchSize = 1000

// GRPCConfig configures a [GRPCTransport].
type GRPCConfig struct {
	// BatchSize is the number of results per SubmitResults call; 0 means
	// DefaultBatchSize. The bridge accepts at most 10,000.
	BatchSize int
	// Parallel is the number of batches in flight; 0 means 4.
	Parallel int
	// Timeout bounds one call; 0 means 30s.
	Timeout time.Duration
}

// GRPCTransport sends results to the bridge's ResultService in batches.
type GRPCTransport struct {
	cfg    GRPCConfig
	client pb.ResultServiceClient
	closer func() error
}

// NewGRPCTransport returns a transport over conn. Close closes conn when it
// is a *grpc.ClientConn.
func NewGRPCTransport(conn grpc.ClientConnInterface, cfg GRPCConfig) *GRPCTransport {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	t := &GRPCTransport{cfg: cfg, client: pb.NewResultServiceClient(conn), closer: func() error { return nil }}
	if cc, ok := conn.(*grpc.ClientConn); ok {
		t.closer = cc.Close
	}
	return t
}

// Send implements [Transport]. Results that fail local validation are
// refused without a call. A call that fails as a whole is mapped from its
// status: PermissionDenied, Unauthenticated and InvalidArgument are final
// for every result of the batch (a wrong certificate does not get better by
// retrying) and marked [Outcome.Call]; anything else (Unavailable,
// DeadlineExceeded, Unimplemented by an older bridge, …) is temporary.
func (t *GRPCTransport) Send(ctx context.Context, results []Result) []Outcome {
	out := make([]Outcome, len(results))
	var idx []int
	var msgs []*pb.PassiveResult
	for i, r := range results {
		if err := r.Validate(); err != nil {
			out[i] = Outcome{Reason: err.Error()}
			continue
		}
		idx = append(idx, i)
		msgs = append(msgs, r.Proto())
	}
	sem := make(chan struct{}, t.cfg.Parallel)
	var wg sync.WaitGroup
	for lo := 0; lo < len(msgs); lo += t.cfg.BatchSize {
		hi := min(lo+t.cfg.BatchSize, len(msgs))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			for k, o := range t.batch(ctx, msgs[lo:hi]) {
				out[idx[lo+k]] = o
			}
		}()
	}
	wg.Wait()
	return out
}

func (t *GRPCTransport) batch(ctx context.Context, msgs []*pb.PassiveResult) []Outcome {
	cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	resp, err := t.client.SubmitResults(cctx, &pb.SubmitResultsRequest{Results: msgs})
	if err != nil {
		return all(len(msgs), callOutcome(err))
	}
	out := all(len(msgs), Outcome{Retry: true, Reason: "bridge sent no status for this result"})
	for _, st := range resp.GetStatuses() {
		i := int(st.GetIndex())
		if i >= len(msgs) {
			continue
		}
		if st.GetAccepted() {
			out[i] = Outcome{Accepted: true}
		} else {
			out[i] = Outcome{Retry: st.GetRetry(), Reason: st.GetReason()}
		}
	}
	return out
}

// callOutcome maps the error of a whole call.
func callOutcome(err error) Outcome {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument:
		return Outcome{Call: true, Reason: fmt.Sprintf("bridge refused the call: %s: %s", st.Code(), st.Message())}
	}
	if errors.Is(err, context.Canceled) {
		return Outcome{Retry: true, Reason: "canceled"}
	}
	return Outcome{Retry: true, Reason: fmt.Sprintf("bridge unavailable: %s: %s", st.Code(), st.Message())}
}

// Close closes the connection if the transport owns it.
func (t *GRPCTransport) Close() error { return t.closer() }
