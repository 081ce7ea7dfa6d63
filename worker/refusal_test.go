package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestClassifyConnectError(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		refused bool
	}{
		{"not authorized", status.Error(codes.PermissionDenied, `identity "w1" is not allowed to work on queue "x"`), true},
		{"no certificate", status.Error(codes.Unauthenticated, "no client certificate"), true},
		{"bad hello", status.Error(codes.InvalidArgument, "hello: no queues asked for"), true},
		{"wrapped", fmt.Errorf("bridge b:4731: send hello: %w", status.Error(codes.PermissionDenied, "no")), true},
		{"our certificate refused", status.Error(codes.Unavailable, `connection error: desc = "error reading server preface: remote error: tls: bad certificate"`), true},
		{"our certificate expired", status.Error(codes.Unavailable, `connection error: desc = "error reading server preface: remote error: tls: expired certificate"`), true},
		{"unknown authority", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`), true},
		{"bridge certificate expired", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate has expired or is not yet valid"`), true},
		{"not the bridge", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: verify bridge: server is worker \"w2\", not the bridge"`), true},
		{"connection refused", status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), false},
		{"broken pipe", status.Error(codes.Unavailable, "write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe"), false},
		{"handshake timeout", fmt.Errorf("bridge b: %w", errHandshakeTimeout), false},
		{"stream ended", errors.New("bridge b ended the session stream"), false},
		{"bridge draining", status.Error(codes.Unavailable, "bridge is shutting down"), false},
		{"too many sessions", status.Error(codes.ResourceExhausted, "too many sessions"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classifyFailure(tt.err) == failureRefused; got != tt.refused {
				t.Errorf("refused = %v, want %v", got, tt.refused)
			}
		})
	}
}

// TestRefusalsBackOff: a bridge that refuses the worker for good
// (PermissionDenied) is tried with a backoff that grows to
// RefusedBackoffMax, and the refusals are logged once and then as a
// summary now and then, not once per attempt. When the bridge accepts the
// worker again, that is logged, and the session starts.
func TestRefusalsBackOff(t *testing.T) {
	b := newBridges(t, "a")
	b.refuse("a", status.Error(codes.PermissionDenied, `identity "w1" is not allowed to work on queue "service"`))
	cfg := testConfig("a")
	cfg.BackoffMin, cfg.BackoffMax = 5*time.Millisecond, 20*time.Millisecond
	cfg.RefusedBackoffMax = 200 * time.Millisecond
	cfg.RefusedLogInterval = 500 * time.Millisecond
	logs := &logRecorder{}
	deps := b.deps()
	deps.Logger = slog.New(logs)
	startWorker(t, cfg, deps)

	time.Sleep(1500 * time.Millisecond)
	ts := b.refusedAttempts("a")
	// With the temporary backoff (at most 20 ms) there would be 75 and
	// more attempts; with the refusal backoff (20 ms doubling to 200 ms,
	// equal jitter) at most about 20.
	if len(ts) < 3 || len(ts) > 25 {
		t.Errorf("%d attempts in 1.5 s, want 3..25", len(ts))
	}
	// Once the backoff has grown to its cap, attempts are at least half
	// of it apart.
	for i := 5; i < len(ts); i++ {
		if gap := ts[i].Sub(ts[i-1]); gap < 90*time.Millisecond {
			t.Errorf("attempts %d and %d only %v apart", i-1, i, gap)
		}
	}
	first := logs.matching(slog.LevelError, "the bridge refuses this worker", "PermissionDenied")
	summaries := logs.matching(slog.LevelError, "still refused by the bridge", "attempts=")
	if len(first) != 1 {
		t.Errorf("first refusal logged %d times, want once", len(first))
	}
	if len(summaries) < 1 || len(summaries) > 3 {
		t.Errorf("%d summaries in 1.5 s with a 500 ms interval, want 1..3: %q", len(summaries), summaries)
	}
	if warns := logs.matching(slog.LevelWarn, "cannot open a session"); len(warns) != 0 {
		t.Errorf("refusals logged one by one: %q", warns)
	}

	b.refuse("a", nil)
	fs := b.accept("a")
	if fs.hello.GetSlots() != 2 {
		t.Errorf("hello after the refusals offers %d slots, want 2", fs.hello.GetSlots())
	}
	fs.welcome("s1", false)
	deadline := time.Now().Add(waitTimeout)
	for len(logs.matching(slog.LevelInfo, "the bridge accepts this worker again", "attempts=")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no log line about the end of the refusals")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTemporaryFailuresKeepTheShortBackoff: a bridge that is down is
// retried with the ordinary backoff, so a restarted bridge sees its
// workers back at once.
func TestTemporaryFailuresKeepTheShortBackoff(t *testing.T) {
	b := newBridges(t, "a")
	b.refuse("a", status.Error(codes.Unavailable, "bridge is shutting down"))
	cfg := testConfig("a")
	cfg.BackoffMin, cfg.BackoffMax = 5*time.Millisecond, 20*time.Millisecond
	// Under the refusal backoff (doubling up to a minute) 15 attempts would
	// take far longer than the 10 s allowed here; with the ordinary 20 ms
	// they take well under a second even on a loaded machine.
	cfg.RefusedBackoffMax = time.Minute
	startWorker(t, cfg, b.deps())
	deadline := time.Now().Add(10 * time.Second)
	n := 0 // refusedAttempts takes what arrived since the last call
	for n < 15 {
		if time.Now().After(deadline) {
			t.Fatalf("%d attempts in 10 s, want 15 with a 20 ms backoff", n)
		}
		time.Sleep(10 * time.Millisecond)
		n += len(b.refusedAttempts("a"))
	}
}

func TestRefusalConfig(t *testing.T) {
	cfg := testConfig("a")
	cfg.RefusedBackoffMax = cfg.BackoffMax / 2
	cfg.RefusedLogInterval = 0
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "refused-backoff") || !strings.Contains(err.Error(), "refused-log-interval") {
		t.Errorf("err = %v", err)
	}
	d := DefaultConfig()
	if d.RefusedBackoffMax != time.Minute || d.RefusedLogInterval != 5*time.Minute {
		t.Errorf("defaults %v %v", d.RefusedBackoffMax, d.RefusedLogInterval)
	}
}
