package bridge

import (
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// newServedEnv is newTestEnv for a bridge that serves its own TLS material
// (Deps.TLS through ServerTLSConfig, as the bridge command does) and whose
// log the test reads. configure adjusts the configuration; dir is the CA
// directory.
func newServedEnv(t *testing.T, configure func(dir string, c *Config)) (*testEnv, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	ca := newBridgeCA(t, dir)
	r, err := certs.NewReloader(filepath.Join(dir, "bridge.crt"), filepath.Join(dir, "bridge.key"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Key = testKey
	cfg.DrainTimeout = 2 * time.Second
	cfg.WatchInterval = 50 * time.Millisecond
	configure(dir, &cfg)
	logs := &syncBuffer{}
	fake := newFakeGearman()
	reg := prometheus.NewRegistry()
	b, err := New(cfg, Deps{Gearman: fake, Registerer: reg, TLS: r, Version: "9.9.9-test",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := b.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	e := &testEnv{t: t, b: b, fake: fake, lis: lis, caDir: dir, ca: ca, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- b.Serve(ctx, lis, srvTLS) }()
	t.Cleanup(e.stop)
	return e, logs
}

// newLoggedEnv is newServedEnv with every identity allowed everything.
func newLoggedEnv(t *testing.T, mutate func(*Config)) (*testEnv, *syncBuffer) {
	t.Helper()
	return newServedEnv(t, func(_ string, c *Config) {
		c.Authz = AllowAll()
		if mutate != nil {
			mutate(c)
		}
	})
}

// siteRules lets every worker identity work on every queue under its own
// name, and the identity site-a also as site-a-<anything>.
func siteRules(c *Config) {
	c.Authz = &Authz{Rules: []Rule{
		{Identity: "*", Role: RoleWorker, Queues: []string{"*"}},
		{Identity: "site-a", Role: RoleWorker, Queues: []string{"service"}, Identifiers: []string{"site-a-*"}},
		{Identity: "*", Role: RoleAdmin},
	}}
}

// sessionByID finds a live session of the bridge.
func (e *testEnv) sessionByID(id string) *session {
	e.t.Helper()
	e.b.mu.Lock()
	defer e.b.mu.Unlock()
	s := e.b.sessions[id]
	if s == nil {
		e.t.Fatalf("no session %s", id)
	}
	return s
}

// TestIdentifierIsTheCertificateIdentity: a worker's identifier defaults to
// its certificate identity; another identifier is refused with
// PermissionDenied unless a rule lists it for that identity.
func TestIdentifierIsTheCertificateIdentity(t *testing.T) {
	e := newTestEnv(t, siteRules)
	tests := []struct {
		name, cert, identifier string
		want                   string // the session's identifier; "" means refused
	}{
		{"empty defaults to the identity", "w1", "", "w1"},
		{"the identity itself", "w1", "w1", "w1"},
		{"another name", "w1", "w2", ""},
		{"another identity's name", "w1", "site-a-1", ""},
		{"listed for the identity", "site-a", "site-a-1", "site-a-1"},
		{"not listed for the identity", "site-a", "site-b-1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &pb.Hello{Identifier: tt.identifier, Queues: []string{"service"}, Slots: 1}
			st, w, cancel := e.session(e.dial(certs.RoleWorker, tt.cert), h)
			defer cancel()
			if tt.want == "" {
				if w != nil {
					t.Fatalf("identity %q got a session as %q", tt.cert, tt.identifier)
				}
				_, err := st.Recv()
				if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"`+tt.cert+`"`) ||
					!strings.Contains(err.Error(), `"`+tt.identifier+`"`) || !strings.Contains(err.Error(), "identifiers") {
					t.Fatalf("err = %v, want PermissionDenied naming identity, identifier and the identifiers rule", err)
				}
				return
			}
			if w == nil {
				t.Fatalf("identity %q refused as %q", tt.cert, tt.identifier)
			}
			if got := e.sessionByID(w.GetSessionId()).identifier; got != tt.want {
				t.Fatalf("identifier = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSessionShowsIdentityIdentifierAndPeer: the session's log lines and
// its status (for top) name the certificate identity, the identifier and
// the peer's address.
func TestSessionShowsIdentityIdentifierAndPeer(t *testing.T) {
	e, logs := newLoggedEnv(t, siteRules)
	_, w, cancel := e.session(e.dial(certs.RoleWorker, "site-a"), &pb.Hello{Identifier: "site-a-1", Queues: []string{"service"}, Slots: 2})
	if w == nil {
		t.Fatalf("refused:\n%s", logs)
	}
	// The line is written after the welcome went out.
	startedRx := regexp.MustCompile(`msg="worker session started".*`)
	eventually(t, 5*time.Second, "session start logged", func() bool { return startedRx.MatchString(logs.String()) })
	started := startedRx.FindString(logs.String())
	for _, want := range []string{"identity=site-a ", "identifier=site-a-1 ", "peer=bufconn"} {
		if !strings.Contains(started, want) {
			t.Errorf("session start line lacks %q: %s", want, started)
		}
	}
	resp, err := pb.NewAdminServiceClient(e.dial(certs.RoleAdmin, "ops")).GetStatus(context.Background(), &pb.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetSessions()) != 1 {
		t.Fatalf("sessions: %v", resp.GetSessions())
	}
	ss := resp.GetSessions()[0]
	if ss.GetIdentity() != "site-a" || ss.GetIdentifier() != "site-a-1" || ss.GetPeer() != "bufconn" {
		t.Fatalf("status identity=%q identifier=%q peer=%q", ss.GetIdentity(), ss.GetIdentifier(), ss.GetPeer())
	}
	cancel()
	eventually(t, 5*time.Second, "disconnect logged", func() bool {
		return regexp.MustCompile(`msg="worker disconnected.*identity=site-a .*identifier=site-a-1 .*peer=bufconn`).MatchString(logs.String())
	})
}

// pingReply puts a ping on queue and waits for the bridge's answer.
func (e *testEnv) pingReply(queue string) string {
	e.t.Helper()
	h := e.fake.add(queue, []byte("check"))
	var reply []byte
	eventually(e.t, 5*time.Second, "ping on "+queue+" answered", func() bool {
		e.fake.mu.Lock()
		defer e.fake.mu.Unlock()
		reply = e.fake.replies[h]
		return reply != nil
	})
	return string(reply)
}

// TestStatusAnswerCountsSessionsOfOneIdentifier: two sessions of one
// identifier are fine; a ping on its status queue sums their workers and
// jobs and says how many sessions are attached. One attached session
// answers in the classic form, exactly, so that check_gearman parses it.
func TestStatusAnswerCountsSessionsOfOneIdentifier(t *testing.T) {
	e := newTestEnv(t, nil)
	st1, w1, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(2, "host"))
	_, w2, cancel2 := e.session(e.dial(certs.RoleWorker, "w1"), hello(3, "service"))
	if w1 == nil || w2 == nil {
		t.Fatal("a session of the same identity was refused")
	}
	e.fake.add("host", serviceJob(t, "h", "s", time.Minute))
	if m := recvMsg(t, st1, 5*time.Second); m.GetJob() == nil {
		t.Fatalf("got %v, want the job", m)
	}
	v := e.b.version
	if got, want := e.pingReply("worker_w1"), "w1 has 5 worker and is working on 1 jobs. Version: "+v+" (2 sessions)|worker=5;;;5;5 jobs=0c"; got != want {
		t.Fatalf("reply with two sessions\n got %q\nwant %q", got, want)
	}
	cancel2()
	eventually(t, 5*time.Second, "second session detached", func() bool { return !e.sessionByID(w2.GetSessionId()).status().GetConnected() })
	if got, want := e.pingReply("worker_w1"), "w1 has 2 worker and is working on 1 jobs. Version: "+v+"|worker=2;;;2;2 jobs=0c"; got != want {
		t.Fatalf("reply with one session attached\n got %q\nwant %q", got, want)
	}
}
