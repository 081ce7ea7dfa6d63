package gearman_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

func TestTryGrabN(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "grabn")
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	for i := range 5 {
		if _, err := c.Submit(ctx, fn, "", fmt.Appendf(nil, "job-%d", i), gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
	}
	wc := dialWorker(t, srv.Addr(), fn)
	tests := []struct {
		name string
		ask  int
		want []string
	}{
		{"fewer than queued", 3, []string{"job-0", "job-1", "job-2"}},
		{"more than queued: NO_JOB answers are left out", 4, []string{"job-3", "job-4"}},
		{"queue empty", 2, nil},
		{"one", 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs, err := wc.TryGrabN(ctx, tt.ask)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, j := range jobs {
				got = append(got, string(j.Data))
				if j.Function != fn {
					t.Errorf("job of %q, want %q", j.Function, fn)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("TryGrabN(%d) = %v, want %v", tt.ask, got, tt.want)
			}
		})
	}
}

// CompleteSoon's WORK_COMPLETE must reach gearmand without a later request
// (the timer), and with one (riding along); Close sends a pending one.
func TestCompleteSoon(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	a := newAdmin(t, srv.Addr())
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	tests := []struct {
		name  string
		after func(wc *gearman.WorkerConn) error
	}{
		{"alone, flushed by the timer", func(*gearman.WorkerConn) error { return nil }},
		{"with the next grab", func(wc *gearman.WorkerConn) error { _, err := wc.TryGrab(ctx); return err }},
		{"before close", func(wc *gearman.WorkerConn) error { return wc.Close() }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := funcName(t, fmt.Sprintf("soon%d", i))
			if _, err := c.Submit(ctx, fn, "", []byte("x"), gearman.PriorityNormal, true); err != nil {
				t.Fatal(err)
			}
			wc := dialWorker(t, srv.Addr(), fn)
			j, err := wc.TryGrab(ctx)
			if err != nil || j == nil {
				t.Fatalf("grab: %v, %v", j, err)
			}
			// A delay far beyond the wait below, except for the timer case.
			d := time.Hour
			if i == 0 {
				d = 20 * time.Millisecond
			}
			if err := wc.CompleteSoon(j.Handle, d); err != nil {
				t.Fatal(err)
			}
			if err := tt.after(wc); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the job to be finished", func() bool {
				return status(t, a, fn).Total == 0
			})
			if i != 2 {
				// Still open: the job was completed, not requeued by a close.
				if err := wc.Err(); err != nil {
					t.Fatalf("connection failed: %v", err)
				}
			}
		})
	}
}
