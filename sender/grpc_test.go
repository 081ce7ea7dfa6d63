package sender

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// fakeResultService mimics the bridge: hosts starting with "deny" are not
// allowed, "flaky" ones are temporarily refused; callErr fails whole calls.
type fakeResultService struct {
	pb.UnimplementedResultServiceServer
	mu      sync.Mutex
	got     []*pb.PassiveResult
	batches []int
	callErr error
}

func (f *fakeResultService) SubmitResults(_ context.Context, req *pb.SubmitResultsRequest) (*pb.SubmitResultsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.callErr != nil {
		return nil, f.callErr
	}
	f.batches = append(f.batches, len(req.GetResults()))
	resp := &pb.SubmitResultsResponse{}
	for i, r := range req.GetResults() {
		st := &pb.ResultStatus{Index: uint32(i)}
		switch {
		case strings.HasPrefix(string(r.GetHostName()), "deny"):
			st.Reason = "not allowed: identity \"s\" may not send results for host " + string(r.GetHostName())
		case strings.HasPrefix(string(r.GetHostName()), "flaky"):
			st.Reason, st.Retry = "gearmand unavailable: down", true
		default:
			st.Accepted = true
			f.got = append(f.got, r)
		}
		resp.Statuses = append(resp.Statuses, st)
	}
	return resp, nil
}

func startFake(t *testing.T, f *fakeResultService) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	pb.RegisterResultServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestGRPCTransport(t *testing.T) {
	f := &fakeResultService{}
	tr := NewGRPCTransport(startFake(t, f), GRPCConfig{BatchSize: 7, Parallel: 3})
	var rs []Result
	for i := range 50 {
		rs = append(rs, result(i))
	}
	rs[3].Host = "deny-1"
	rs[10].Host = "flaky-1"
	rs[20].ReturnCode = 9 // refused locally
	rs[30].Active = true
	rs[30].Latency = 1500 * time.Millisecond
	out := tr.Send(context.Background(), rs)
	for i, o := range out {
		switch i {
		case 3:
			if o.Accepted || o.Retry || !strings.HasPrefix(o.Reason, "not allowed") {
				t.Errorf("deny: %+v", o)
			}
		case 10:
			if o.Accepted || !o.Retry {
				t.Errorf("flaky: %+v", o)
			}
		case 20:
			if o.Accepted || o.Retry || !strings.Contains(o.Reason, "return code 9") {
				t.Errorf("invalid: %+v", o)
			}
		default:
			if !o.Accepted {
				t.Errorf("result %d: %+v", i, o)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) != 47 {
		t.Fatalf("fake got %d results", len(f.got))
	}
	for _, b := range f.batches {
		if b > 7 {
			t.Fatalf("batch of %d > 7", b)
		}
	}
	byHost := map[string]*pb.PassiveResult{}
	for _, p := range f.got {
		byHost[string(p.GetHostName())] = p
	}
	p := byHost[rs[30].Host]
	want := rs[30]
	if p.GetCheckType() != pb.CheckType_CHECK_TYPE_ACTIVE || p.GetLatency().AsDuration() != want.Latency ||
		!p.GetStartTime().AsTime().Equal(want.Start) || !p.GetFinishTime().AsTime().Equal(want.Finish) ||
		string(p.GetServiceDescription()) != "svc" || p.GetReturnCode() != int32(want.ReturnCode) ||
		joinOutput(string(p.GetOutput()), string(p.GetPerfData()), string(p.GetLongOutput())) != want.Output {
		t.Fatalf("message %v does not carry %+v", p, want)
	}
	if byHost[rs[0].Host].GetCheckType() != pb.CheckType_CHECK_TYPE_PASSIVE {
		t.Fatal("passive result not marked passive")
	}
}

func TestGRPCTransportCallErrors(t *testing.T) {
	for _, tc := range []struct {
		code       codes.Code
		retry, cll bool
	}{
		{codes.PermissionDenied, false, true},
		{codes.Unauthenticated, false, true},
		{codes.Unavailable, true, false},
		{codes.DeadlineExceeded, true, false},
		{codes.Unimplemented, true, false},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			f := &fakeResultService{callErr: status.Error(tc.code, "nope")}
			out := NewGRPCTransport(startFake(t, f), GRPCConfig{}).Send(context.Background(), []Result{result(1), result(2)})
			for _, o := range out {
				if o.Accepted || o.Retry != tc.retry || o.Call != tc.cll || !strings.Contains(o.Reason, "nope") {
					t.Fatalf("%+v", o)
				}
			}
		})
	}
}
