package bridge

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/gearbridge/gearbridge/certs"
)

// TestOperatorSeries: what an operator alerts on is there before the
// first event (every fixed label value at zero), gearbridge_gearmand_up
// and Ready follow gearmand, and sessions are counted per identity.
func TestOperatorSeries(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.ProbeInterval = 50 * time.Millisecond })
	for _, want := range []string{
		`gearbridge_bridge_sessions{state="attached"} 0`,
		`gearbridge_bridge_sessions{state="detached"} 0`,
		`gearbridge_bridge_jobs_invalid_total{reason="undecodable"} 0`,
		`gearbridge_bridge_jobs_invalid_total{reason="invalid"} 0`,
		`gearbridge_bridge_jobs_refused_total{reason="too_large"} 0`,
		`gearbridge_bridge_jobs_refused_total{reason="unencodable"} 0`,
		`gearbridge_bridge_sessions_refused_total{reason="identity_limit"} 0`,
		`gearbridge_bridge_tls_handshake_failures_total{reason="unknown_ca"} 0`,
		`gearbridge_bridge_result_submit_failures_total 0`,
		`gearbridge_bridge_results_refused_total{reason="not_allowed"} 0`,
		`gearbridge_bridge_results_refused_total{reason="late"} 0`,
		`gearbridge_bridge_dupserver_failures_total 0`,
	} {
		if got := gathered(t, e); !strings.Contains(got, want+"\n") {
			t.Errorf("no %s in\n%s", want, got)
		}
	}
	up := func() float64 { return testutil.ToFloat64(e.b.m.gearmandUp.WithLabelValues("fake:4730")) }
	eventually(t, 5*time.Second, "gearmand up", func() bool { return up() == 1 && e.b.Ready() == nil })

	e.fake.mu.Lock()
	e.fake.pingErr = errors.New("connection refused")
	e.fake.mu.Unlock()
	eventually(t, 5*time.Second, "gearmand down", func() bool { return up() == 0 && e.b.Ready() != nil })
	if err := e.b.Ready(); err == nil || !strings.Contains(err.Error(), "no gearmand") {
		t.Fatalf("Ready with gearmand down: %v", err)
	}
	e.fake.mu.Lock()
	e.fake.pingErr = nil
	e.fake.mu.Unlock()
	eventually(t, 5*time.Second, "gearmand up again", func() bool { return up() == 1 && e.b.Ready() == nil })

	_, w1, cancel1 := e.session(e.dial(certs.RoleWorker, "site-a"), hello(1, "service"))
	_, w2, cancel2 := e.session(e.dial(certs.RoleWorker, "site-a"), hello(1, "service"))
	_, w3, cancel3 := e.session(e.dial(certs.RoleWorker, "site-b"), hello(1, "service"))
	defer cancel1()
	defer cancel2()
	defer cancel3()
	if w1 == nil || w2 == nil || w3 == nil {
		t.Fatal("no welcome")
	}
	eventually(t, 5*time.Second, "sessions per identity", func() bool {
		got := gathered(t, e)
		return strings.Contains(got, `gearbridge_bridge_identity_sessions{identity="site-a"} 2`+"\n") &&
			strings.Contains(got, `gearbridge_bridge_identity_sessions{identity="site-b"} 1`+"\n")
	})

	e.stop()
	if err := e.b.Ready(); err == nil {
		t.Fatal("ready after shutdown")
	}
}

// gathered is the bridge's registry in the text exposition format.
func gathered(t *testing.T, e *testEnv) string {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
