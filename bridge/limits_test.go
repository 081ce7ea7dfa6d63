package bridge

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// refusedWith opens a session that must be refused and returns the status.
func (e *testEnv) refusedWith(cert string, h *pb.Hello) error {
	e.t.Helper()
	st, w, cancel := e.session(e.dial(certs.RoleWorker, cert), h)
	defer cancel()
	if w != nil {
		e.t.Fatalf("identity %q got session %s, want it refused", cert, w.GetSessionId())
	}
	_, err := st.Recv()
	return err
}

// TestSessionCapPerIdentity: one identity gets at most
// MaxSessionsPerIdentity sessions (attached or waiting for a resume), so
// one certificate cannot use up gearmand's connections; the next is
// refused with ResourceExhausted and a clear message, while another
// identity still gets its sessions. A session that ended makes room.
func TestSessionCapPerIdentity(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.MaxSessionsPerIdentity = 2
		c.ResumeGrace = 300 * time.Millisecond
	})
	_, w1, cancel1 := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	_, w2, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	if w1 == nil || w2 == nil {
		t.Fatal("sessions within the limit refused")
	}
	err := e.refusedWith("w1", hello(1, "service"))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), `"w1"`) ||
		!strings.Contains(err.Error(), "2 sessions") || !strings.Contains(err.Error(), "max-sessions-per-identity") {
		t.Fatalf("err = %v, want ResourceExhausted naming the identity, the limit and its flag", err)
	}
	if got := testutil.ToFloat64(e.b.m.sessionsRefused.WithLabelValues("identity_limit")); got != 1 {
		t.Fatalf("refusals counted: %v", got)
	}
	if _, w, _ := e.session(e.dial(certs.RoleWorker, "w2"), &pb.Hello{Identifier: "w2", Queues: []string{"service"}, Slots: 1}); w == nil {
		t.Fatal("another identity was refused")
	}
	// A detached session still holds its gearmand connections until its
	// resume grace ends; then the identity has room again.
	cancel1()
	eventually(t, 5*time.Second, "the first session closed", func() bool {
		e.b.mu.Lock()
		defer e.b.mu.Unlock()
		return e.b.sessions[w1.GetSessionId()] == nil
	})
	if _, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service")); w == nil {
		t.Fatal("refused after a session of the identity ended")
	}
}

// TestSessionCapTotal: the bridge holds at most MaxSessions sessions.
func TestSessionCapTotal(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxSessions = 2 })
	for _, id := range []string{"w1", "w2"} {
		if _, w, _ := e.session(e.dial(certs.RoleWorker, id), &pb.Hello{Identifier: id, Queues: []string{"service"}, Slots: 1}); w == nil {
			t.Fatalf("%s refused within the limit", id)
		}
	}
	err := e.refusedWith("w3", &pb.Hello{Queues: []string{"service"}, Slots: 1})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "2 sessions") || !strings.Contains(err.Error(), "max-sessions") {
		t.Fatalf("err = %v, want ResourceExhausted naming the limit", err)
	}
	if got := testutil.ToFloat64(e.b.m.sessionsRefused.WithLabelValues("total_limit")); got != 1 {
		t.Fatalf("refusals counted: %v", got)
	}
}

// TestResumeDoesNotCountTwice: a worker that resumes its session is not a
// new session, even at the limit; a fresh one is.
func TestResumeDoesNotCountTwice(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxSessionsPerIdentity = 1 })
	_, w, cancel := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service"))
	if w == nil {
		t.Fatal("refused")
	}
	cancel()
	eventually(t, 5*time.Second, "detached", func() bool { return !e.sessionByID(w.GetSessionId()).status().GetConnected() })
	if err := e.refusedWith("w1", hello(1, "service")); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a second session while the first waits for its resume: err = %v, want ResourceExhausted", err)
	}
	h := hello(1, "service")
	h.SessionId = w.GetSessionId()
	_, w2, _ := e.session(e.dial(certs.RoleWorker, "w1"), h)
	if w2 == nil || !w2.GetResumed() || w2.GetSessionId() != w.GetSessionId() {
		t.Fatalf("resume at the limit: welcome %v", w2)
	}
}

// TestRefusedSessionsLogRateLimited: a worker retrying against the limit
// is counted every time but logged once per interval.
func TestRefusedSessionsLogRateLimited(t *testing.T) {
	e, logs := newLoggedEnv(t, func(c *Config) { c.MaxSessionsPerIdentity = 1 })
	if _, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service")); w == nil {
		t.Fatal("refused")
	}
	for range 4 {
		_ = e.refusedWith("w1", hello(1, "service"))
	}
	if got := testutil.ToFloat64(e.b.m.sessionsRefused.WithLabelValues("identity_limit")); got != 4 {
		t.Fatalf("refusals counted: %v, want 4", got)
	}
	if n := strings.Count(logs.String(), `msg="refused worker session"`); n != 1 {
		t.Fatalf("%d refusal lines within the interval, want 1:\n%s", n, logs)
	}
	line := logs.String()[strings.Index(logs.String(), `msg="refused worker session"`):]
	line = line[:strings.IndexByte(line, '\n')]
	for _, want := range []string{"identity=w1", "identifier=w1", "peer=bufconn", "ResourceExhausted"} {
		if !strings.Contains(line, want) {
			t.Errorf("refusal line lacks %q: %s", want, line)
		}
	}
}

// TestStreamsPerConnectionBounded: one connection carries at most
// maxStreamsPerConn calls at once; a further one waits.
func TestStreamsPerConnectionBounded(t *testing.T) {
	e := newTestEnv(t, nil)
	hc := healthpb.NewHealthClient(e.dial(certs.RoleAdmin, "ops"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range maxStreamsPerConn {
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	w, err := hc.Watch(short, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("stream %d: err = %v, want it held back until the deadline", maxStreamsPerConn+1, err)
	}
}

// TestHandshakeTimeout: a connection that never completes TLS is closed
// after HandshakeTimeout, and that is logged and counted.
func TestHandshakeTimeout(t *testing.T) {
	e, logs := newLoggedEnv(t, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	raw, err := e.lis.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	start := time.Now()
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = raw.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) && (err == nil || strings.Contains(err.Error(), "deadline")) {
		t.Fatalf("read: %v, want the bridge to close the connection", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
	eventually(t, 5*time.Second, "timeout counted", func() bool {
		return testutil.ToFloat64(e.b.m.handshakeFailures.WithLabelValues("timeout")) == 1
	})
	eventually(t, 5*time.Second, "timeout logged", func() bool {
		return strings.Contains(logs.String(), `msg="TLS handshake failed" peer=bufconn reason=timeout`)
	})
}

// TestIdleConnectionsClosed: a connection without calls for IdleTimeout is
// closed by the bridge (the client goes idle and reconnects when needed).
func TestIdleConnectionsClosed(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	cc := e.dial(certs.RoleAdmin, "ops")
	admin := pb.NewAdminServiceClient(cc)
	if _, err := admin.GetStatus(context.Background(), &pb.GetStatusRequest{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "connection closed for idleness", func() bool { return cc.GetState() == connectivity.Idle })
	if _, err := admin.GetStatus(context.Background(), &pb.GetStatusRequest{}); err != nil {
		t.Fatalf("after the idle close: %v", err)
	}
}

// TestConfigValidatesLimits: every limit must be positive.
func TestConfigValidatesLimits(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"max-sessions":              func(c *Config) { c.MaxSessions = 0 },
		"max-sessions-per-identity": func(c *Config) { c.MaxSessionsPerIdentity = -1 },
		"handshake-timeout":         func(c *Config) { c.HandshakeTimeout = 0 },
		"idle-timeout":              func(c *Config) { c.IdleTimeout = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			c.Key = testKey
			mutate(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name+":") {
				t.Fatalf("err = %v, want one naming %s", err, name)
			}
		})
	}
}
