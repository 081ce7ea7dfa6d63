package bridge

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// TestUpstreamOutageLoggedOnce: failures of one gearmand are one line when
// the outage starts and one when it ends, however many sessions retry;
// health follows "no gearmand reachable".
func TestUpstreamOutageLoggedOnce(t *testing.T) {
	var logs syncBuffer
	var states []bool
	u := newUpstream(slog.New(slog.NewTextHandler(&logs, nil)), 2, func(up bool) { states = append(states, up) })
	for range 10 {
		u.failed("g1:4730", errors.New("connection refused"))
	}
	if len(states) != 0 {
		t.Fatalf("health changed with one of two gearmands down: %v", states)
	}
	u.failed("g2:4730", errors.New("connection refused"))
	u.ok("g1:4730")
	u.ok("g1:4730")
	if n := strings.Count(logs.String(), "cannot reach gearmand"); n != 2 {
		t.Fatalf("%d outage lines, want one per server:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "gearmand reachable again"); n != 1 {
		t.Fatalf("%d recovery lines, want 1:\n%s", n, logs.String())
	}
	if len(states) != 2 || states[0] || !states[1] {
		t.Fatalf("health changes %v, want [false true]", states)
	}
}

// TestWrongKeyLoggedOncePerQueue: jobs that do not decode are each failed
// and counted, but logged once per queue and interval, with the hint.
func TestWrongKeyLoggedOncePerQueue(t *testing.T) {
	e, logs := newLoggedEnv(t, nil)
	for range 5 {
		e.fake.add("service", []byte("not base64 at all!"))
	}
	e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	eventually(t, 5*time.Second, "all failed", func() bool {
		_, failed, _ := e.fake.snapshot()
		return len(failed) == 5
	})
	if n := strings.Count(logs.String(), `msg="refused a job that does not decode`); n != 1 {
		t.Fatalf("%d lines for 5 undecodable jobs, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "must be the core's") || !strings.Contains(logs.String(), "queue=service") {
		t.Fatalf("line lacks the hint or the queue:\n%s", logs.String())
	}
	// The admin API reports the total, for check --bridge.
	if got := adminCounters(t, e)["jobs_undecodable_total"]; got != 5 {
		t.Fatalf("admin counter jobs_undecodable_total = %d, want 5", got)
	}
}

// adminCounters returns the counters of the bridge's GetStatus.
func adminCounters(t *testing.T, e *testEnv) map[string]uint64 {
	t.Helper()
	st, err := pb.NewAdminServiceClient(e.dial(certs.RoleAdmin, "ops")).GetStatus(context.Background(), &pb.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, c := range st.GetCounters() {
		m[c.GetName()] = c.GetValue()
	}
	return m
}

// TestDrainedWorkerCloseReason: a worker that drained and left closes its
// session as "worker shut down", not as an expired grace.
func TestDrainedWorkerCloseReason(t *testing.T) {
	e, logs := newLoggedEnv(t, nil)
	st, w, cancel := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	if w == nil {
		t.Fatal("no welcome")
	}
	_ = st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Drain{Drain: &pb.Drain{Reason: "worker is shutting down"}}})
	time.Sleep(100 * time.Millisecond)
	cancel()
	eventually(t, 5*time.Second, "session closed", func() bool {
		return strings.Contains(logs.String(), `reason="worker shut down"`)
	})
}

// TestHealthFollowsGearmand: the bridge probes gearmand and reports
// NOT_SERVING while it cannot reach it, SERVING again when it can.
func TestHealthFollowsGearmand(t *testing.T) {
	e, logs := newLoggedEnv(t, func(c *Config) { c.ProbeInterval = 50 * time.Millisecond })
	hc := healthpb.NewHealthClient(e.dial(certs.RoleAdmin, "ops"))
	status := func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: pb.WorkerService_ServiceDesc.ServiceName})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	eventually(t, 5*time.Second, "serving", func() bool { return status() == healthpb.HealthCheckResponse_SERVING })
	e.fake.mu.Lock()
	e.fake.pingErr = errors.New("connection refused")
	e.fake.mu.Unlock()
	eventually(t, 5*time.Second, "not serving", func() bool { return status() == healthpb.HealthCheckResponse_NOT_SERVING })
	if c := adminCounters(t, e); c["gearmand_servers"] == 0 || c["gearmand_unreachable"] != c["gearmand_servers"] {
		t.Fatalf("admin counters during the outage: %v", c)
	}
	e.fake.mu.Lock()
	e.fake.pingErr = nil
	e.fake.mu.Unlock()
	eventually(t, 5*time.Second, "serving again", func() bool { return status() == healthpb.HealthCheckResponse_SERVING })
	if n := strings.Count(logs.String(), "cannot reach gearmand"); n != 1 {
		t.Fatalf("%d outage lines, want 1:\n%s", n, logs.String())
	}
}
