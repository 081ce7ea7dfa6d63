package bridge

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/gearman"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

func senderEnv(t *testing.T) *testEnv {
	return newTestEnv(t, func(c *Config) {
		c.Authz = &Authz{Rules: []Rule{
			{Identity: "ci", Role: RoleSender, Hosts: []string{"ci-*"}},
			{Identity: "w1", Role: RoleWorker, Queues: []string{"*"}},
		}}
	})
}

func TestPassiveBatchRefusesPerHost(t *testing.T) {
	e := senderEnv(t)
	cl := pb.NewResultServiceClient(e.dial(certs.RoleSender, "ci"))
	start := time.Unix(1700000000, 500000000)
	resp, err := cl.SubmitResults(context.Background(), &pb.SubmitResultsRequest{Results: []*pb.PassiveResult{
		{HostName: []byte("ci-web"), ServiceDescription: []byte("build"), ReturnCode: 2, Output: []byte("BROKEN"), PerfData: []byte("t=3s"), LongOutput: []byte("step 4 failed"),
			StartTime: timestamppb.New(start), FinishTime: timestamppb.New(start.Add(time.Second))},
		{HostName: []byte("db1"), ServiceDescription: []byte("x"), ReturnCode: 0, Output: []byte("OK")},
		{HostName: []byte("ci-db"), ReturnCode: 7, Output: []byte("bad rc")},
		{HostName: []byte("ci-host"), ReturnCode: 0, Output: []byte("UP"), CheckType: pb.CheckType_CHECK_TYPE_ACTIVE},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetAccepted() != 2 || resp.GetRefused() != 2 {
		t.Fatalf("accepted %d refused %d: %v", resp.GetAccepted(), resp.GetRefused(), resp.GetStatuses())
	}
	st := resp.GetStatuses()
	if !st[0].GetAccepted() || st[1].GetAccepted() || !strings.Contains(st[1].GetReason(), `host "db1"`) ||
		st[2].GetAccepted() || !strings.Contains(st[2].GetReason(), "return code 7") || !st[3].GetAccepted() {
		t.Fatalf("statuses %v", st)
	}
	_, _, results := e.fake.snapshot()
	if len(results) != 2 {
		t.Fatalf("%d results submitted, want 2", len(results))
	}
	byHost := map[string]int{}
	for i, s := range results {
		if s.queue != "check_results" {
			t.Fatalf("queue %q", s.queue)
		}
		byHost[decodeResult(t, s.payload).HostName] = i
	}
	r := decodeResult(t, results[byHost["ci-web"]].payload)
	if r.Type != "passive" || r.ServiceDescription != "build" || r.ReturnCode != 2 ||
		r.Output != "BROKEN|t=3s\nstep 4 failed" || !r.StartTime.Equal(start) || !r.FinishTime.Equal(start.Add(time.Second)) {
		t.Fatalf("result %+v", r)
	}
	if a := decodeResult(t, results[byHost["ci-host"]].payload); a.Type != "active" || a.ServiceDescription != "" {
		t.Fatalf("active host result %+v", a)
	}
}

func TestPassiveSingleRefusals(t *testing.T) {
	e := senderEnv(t)
	cl := pb.NewResultServiceClient(e.dial(certs.RoleSender, "ci"))
	_, err := cl.SubmitResult(context.Background(), &pb.SubmitResultRequest{Result: &pb.PassiveResult{HostName: []byte("db1"), Output: []byte("x")}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("err = %v, want PermissionDenied", err)
	}
	_, err = cl.SubmitResult(context.Background(), &pb.SubmitResultRequest{Result: &pb.PassiveResult{HostName: []byte("ci-1")}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
	e.fake.failSubmit = 1
	_, err = cl.SubmitResult(context.Background(), &pb.SubmitResultRequest{Result: &pb.PassiveResult{HostName: []byte("ci-1"), Output: []byte("OK")}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
	if _, err = cl.SubmitResult(context.Background(), &pb.SubmitResultRequest{Result: &pb.PassiveResult{HostName: []byte("ci-1"), Output: []byte("OK")}}); err != nil {
		t.Fatal(err)
	}
	// gearmand refusing the result for good is not worth a retry.
	e.fake.mu.Lock()
	e.fake.failSubmit, e.fake.submitErr = 1, &gearman.ServerError{Code: gearman.CodeArgumentTooLarge}
	e.fake.mu.Unlock()
	resp, err := cl.SubmitResults(context.Background(), &pb.SubmitResultsRequest{Results: []*pb.PassiveResult{{HostName: []byte("ci-1"), Output: []byte("OK")}}})
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.GetStatuses()[0]; st.GetAccepted() || st.GetRetry() || !strings.Contains(st.GetReason(), "ARGUMENT_TOO_LARGE") {
		t.Fatalf("status %v, want refused for good", st)
	}
}

func TestWorkerCertCannotSendResults(t *testing.T) {
	e := senderEnv(t)
	cl := pb.NewResultServiceClient(e.dial(certs.RoleWorker, "w1"))
	_, err := cl.SubmitResults(context.Background(), &pb.SubmitResultsRequest{Results: []*pb.PassiveResult{{HostName: []byte("ci-1"), Output: []byte("x")}}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("err = %v, want PermissionDenied", err)
	}
	if _, _, results := e.fake.snapshot(); len(results) != 0 {
		t.Fatal("a worker certificate submitted a passive result")
	}
}

func TestWorkersMaySendWhenConfigured(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.WorkersMaySend = true
		c.Authz = &Authz{Rules: []Rule{
			{Identity: "w1", Role: RoleWorker, Queues: []string{"*"}},
			{Identity: "w1", Role: RoleSender, Hosts: []string{"site-*"}},
			{Identity: "w2", Role: RoleWorker, Queues: []string{"*"}},
		}}
	})
	req := &pb.SubmitResultRequest{Result: &pb.PassiveResult{HostName: []byte("site-1"), Output: []byte("OK")}}
	if _, err := pb.NewResultServiceClient(e.dial(certs.RoleWorker, "w1")).SubmitResult(context.Background(), req); err != nil {
		t.Fatalf("worker with a sender rule: %v", err)
	}
	_, err := pb.NewResultServiceClient(e.dial(certs.RoleWorker, "w2")).SubmitResult(context.Background(), req)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("worker without a sender rule: err = %v, want PermissionDenied", err)
	}
}
