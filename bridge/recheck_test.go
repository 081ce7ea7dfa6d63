package bridge

import (
	"slices"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/certs"
)

// TestSessionClosedAtCertExpiry: a live session ends when its certificate
// does, and gearmand gets its unfinished job back.
func TestSessionClosedAtCertExpiry(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.WatchInterval = 50 * time.Millisecond })
	e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
	st, w, _ := e.session(e.dialFor(certs.RoleWorker, "w1", 4*time.Second), hello(1, "service"))
	if w == nil {
		t.Fatal("no welcome")
	}
	recvMsg(t, st, 5*time.Second)
	s := onlySession(t, e.b)
	if na := s.certNotAfter(); na.IsZero() || time.Until(na) > 5*time.Second {
		t.Fatalf("session's certificate ends %v", na)
	}
	eventually(t, 10*time.Second, "session closed at expiry", func() bool {
		e.b.mu.Lock()
		defer e.b.mu.Unlock()
		return len(e.b.sessions) == 0
	})
	if time.Now().Before(s.certNotAfter()) {
		t.Fatal("session closed before its certificate expired")
	}
	s.mu.Lock()
	reason := s.closeReason
	s.mu.Unlock()
	if reason != expiredSessionReason {
		t.Fatalf("close reason %q", reason)
	}
	if e.fake.queued("service") != 1 {
		t.Fatal("the session's job was not requeued")
	}
}

// TestRenewedSessionOutlivesOldCert: a session whose certificate the bridge
// renewed follows the new certificate's expiry.
func TestRenewedSessionOutlivesOldCert(t *testing.T) {
	e := newTestEnv(t, nil)
	_, w, _ := e.session(e.dialFor(certs.RoleWorker, "w1", time.Minute), hello(1, "service"))
	if w == nil {
		t.Fatal("no welcome")
	}
	s := onlySession(t, e.b)
	crt, _, err := e.ca.IssueClient(certs.RoleWorker, "w1", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.b.sessionsRenewed(Identity{Name: "w1", Serial: s.certSerial()}, crt)
	if na := s.certNotAfter(); time.Until(na) < 47*time.Hour {
		t.Fatalf("after renewal the session ends %v", na)
	}
}

func workerRules(queues ...string) *Authz {
	return &Authz{Rules: []Rule{{Identity: "w1", Role: RoleWorker, Queues: queues}}}
}

// TestAuthzReloadTakesQueuesAway: a queue removed from an identity's rules
// is taken from its live session and from a detached one when it resumes;
// a session with no queue left is closed.
func TestAuthzReloadTakesQueuesAway(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Authz = workerRules("service", "hostgroup_a") })
	cc := e.dial(certs.RoleWorker, "w1")
	st, w, cancel := e.session(cc, hello(2, "service", "hostgroup_a"))
	if w == nil {
		t.Fatal("no welcome")
	}
	s := onlySession(t, e.b)
	if err := e.b.SetAuthz(workerRules("service")); err != nil {
		t.Fatal(err)
	}
	if q := s.currentQueues(); !slices.Equal(q, []string{"service"}) {
		t.Fatalf("live session queues %q", q)
	}
	e.fake.add("hostgroup_a", serviceJob(t, "taken-away", "s", time.Minute))
	e.fake.add("service", serviceJob(t, "allowed", "s", time.Minute))
	if j := recvMsg(t, st, 5*time.Second).GetJob(); string(j.GetHostName()) != "allowed" {
		t.Fatalf("got %v, want the service check", j)
	}
	time.Sleep(200 * time.Millisecond)
	if e.fake.queued("hostgroup_a") != 1 {
		t.Fatal("a job of the removed queue went to the live session")
	}

	// Detached, then resumed with a hello that still asks for the removed
	// queue: the session resumes with what the rules leave it.
	cancel()
	eventually(t, 5*time.Second, "detached", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.stream == nil
	})
	h := hello(2, "service", "hostgroup_a")
	h.SessionId = w.GetSessionId()
	st2, w2, _ := e.session(cc, h)
	if w2 == nil || !w2.GetResumed() || !slices.Equal(w2.GetQueues(), []string{"service"}) {
		t.Fatalf("resume welcome %v", w2)
	}
	for {
		m := recvMsg(t, st2, 5*time.Second)
		if j := m.GetJob(); j != nil && string(j.GetHostName()) != "allowed" {
			t.Fatalf("resumed session got %q", j.GetHostName())
		}
		if m.GetJob() != nil {
			break // the resend of the job in flight
		}
	}
	// No queue left: the session is closed.
	if err := e.b.SetAuthz(&Authz{Rules: []Rule{{Identity: "w1", Role: RoleWorker, Queues: []string{"other"}}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "session closed", func() bool {
		e.b.mu.Lock()
		defer e.b.mu.Unlock()
		return len(e.b.sessions) == 0
	})
	s.mu.Lock()
	reason := s.closeReason
	s.mu.Unlock()
	if reason != noQueuesSessionReason {
		t.Fatalf("close reason %q", reason)
	}
}

// TestAuthzReloadClosesSessionOfIdentifierNoLongerAllowed: a session whose
// identifier an authz reload no longer allows to its identity is closed.
func TestAuthzReloadClosesSessionOfIdentifierNoLongerAllowed(t *testing.T) {
	allow := &Authz{Rules: []Rule{{Identity: "w1", Role: RoleWorker, Queues: []string{"service"}, Identifiers: []string{"w1-*"}}}}
	e := newTestEnv(t, func(c *Config) { c.Authz = allow })
	h := hello(1, "service")
	h.Identifier = "w1-b"
	if _, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), h); w == nil {
		t.Fatal("no welcome")
	}
	s := onlySession(t, e.b)
	if err := e.b.SetAuthz(workerRules("service")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "session closed", func() bool {
		e.b.mu.Lock()
		defer e.b.mu.Unlock()
		return len(e.b.sessions) == 0
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeReason != identifierReason {
		t.Fatalf("close reason %q", s.closeReason)
	}
}
