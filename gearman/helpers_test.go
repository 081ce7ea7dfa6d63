package gearman_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
)

// testTimeout bounds every integration test; each finishes in well under a
// second to a few seconds on a 2-core machine with -race.
const testTimeout = 60 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testLogger logs through t so that output shows only for failing tests.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var fnSeq atomic.Int64

// funcName returns a function name unique to this test run, so tests that
// share a gearmand do not see each other's queues.
func funcName(t testing.TB, suffix string) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s_%s_%d", name, suffix, fnSeq.Add(1))
}

func newClient(t testing.TB, servers []string, opts gearman.ClientOptions) *gearman.Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	c := gearman.NewClient(servers, opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func dialWorker(t testing.TB, addr string, fns ...string) *gearman.WorkerConn {
	t.Helper()
	wc, err := gearman.DialWorker(testContext(t), addr, gearman.WorkerOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Close() })
	for _, fn := range fns {
		if err := wc.CanDo(fn); err != nil {
			t.Fatal(err)
		}
	}
	return wc
}

func newAdmin(t testing.TB, addr string) *gearman.Admin {
	a := gearman.NewAdmin(addr, gearman.AdminOptions{})
	t.Cleanup(func() { a.Close() })
	return a
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// status returns the admin status line of fn.
func status(t testing.TB, a *gearman.Admin, fn string) gearman.FunctionStatus {
	t.Helper()
	st, err := a.Status(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Name == fn {
			return s
		}
	}
	return gearman.FunctionStatus{Name: fn}
}

// checkGoroutines fails the test if, after cleanup, more goroutines run
// than before it started (with a short grace period for exiting ones).
// Register it first so that its cleanup runs last.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
