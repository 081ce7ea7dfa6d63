package gearman_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

// These tests run against a real gearmand started by internal/gearmantest.

func TestEcho(t *testing.T) {
	checkGoroutines(t)
	srv := gearmantest.Start(t)
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	got, err := c.Echo(testContext(t), []byte("ping\x00pong"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "ping\x00pong" {
		t.Fatalf("echo = %q", got)
	}
	c.Close()
	if _, err := c.Echo(testContext(t), nil); !errors.Is(err, gearman.ErrClosed) {
		t.Fatalf("echo after Close: %v, want ErrClosed", err)
	}
}

func TestPriorityOrder(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "prio")
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	for _, p := range []gearman.Priority{gearman.PriorityLow, gearman.PriorityNormal, gearman.PriorityHigh} {
		if _, err := c.Submit(ctx, fn, "", []byte(p.String()), p, true); err != nil {
			t.Fatalf("submit %s: %v", p, err)
		}
	}
	wc := dialWorker(t, srv.Addr(), fn)
	var got []string
	for range 3 {
		job, err := wc.Grab(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(job.Data))
		if err := wc.Complete(job.Handle, nil); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"high", "normal", "low"}; !slices.Equal(got, want) {
		t.Fatalf("grab order %v, want %v", got, want)
	}
}

func TestUniqueCoalescing(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "uniq")
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	admin := newAdmin(t, srv.Addr())

	h1, err := c.Submit(ctx, fn, "same-key", []byte("first"), gearman.PriorityNormal, true)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := c.Submit(ctx, fn, "same-key", []byte("second"), gearman.PriorityNormal, true)
	if err != nil {
		t.Fatal(err)
	}
	if h1 != h2 {
		t.Fatalf("same unique got handles %q and %q", h1, h2)
	}
	if st := status(t, admin, fn); st.Total != 1 {
		t.Fatalf("status %+v, want one job", st)
	}
	// An empty unique never coalesces.
	h3, err := c.Submit(ctx, fn, "", []byte("third"), gearman.PriorityNormal, true)
	if err != nil {
		t.Fatal(err)
	}
	h4, err := c.Submit(ctx, fn, "", []byte("fourth"), gearman.PriorityNormal, true)
	if err != nil {
		t.Fatal(err)
	}
	if h3 == h4 || h3 == h1 {
		t.Fatalf("empty uniques coalesced: %q %q %q", h1, h3, h4)
	}

	wc := dialWorker(t, srv.Addr(), fn)
	job, err := wc.Grab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if job.Handle != h1 || job.Unique != "same-key" || string(job.Data) != "first" {
		t.Fatalf("job = %+v, want handle %s, unique same-key, data first (the second payload is dropped)", job, h1)
	}
	if st := status(t, admin, fn); st.Total != 3 || st.Running != 1 {
		t.Fatalf("status %+v, want 3 jobs, 1 running", st)
	}
}

func TestWorkerDisconnectRequeues(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "requeue")
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	want := map[string]bool{}
	for i := range 3 {
		h, err := c.Submit(ctx, fn, "", fmt.Appendf(nil, "job-%d", i), gearman.PriorityNormal, true)
		if err != nil {
			t.Fatal(err)
		}
		want[h] = true
	}

	first := dialWorker(t, srv.Addr(), fn)
	var taken []string
	for range 2 {
		job, err := first.Grab(ctx)
		if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, job.Handle)
	}
	first.Close() // two jobs grabbed, none completed

	second := dialWorker(t, srv.Addr(), fn)
	got := map[string]bool{}
	for range 3 {
		job, err := second.Grab(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[job.Handle] = true
		if err := second.Complete(job.Handle, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range taken {
		if !got[h] {
			t.Errorf("job %s grabbed by the closed worker was not requeued", h)
		}
	}
	if len(got) != len(want) {
		t.Errorf("second worker got %v, want %v", got, want)
	}
}

func TestMaxQueueFullIsImmediateServerError(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "full")
	admin := newAdmin(t, srv.Addr())
	// maxqueue only applies to a function that exists; a worker's CAN_DO
	// creates it.
	dialWorker(t, srv.Addr(), fn)
	waitFor(t, 5*time.Second, "function to exist", func() bool { return status(t, admin, fn).Workers == 1 })
	if err := admin.MaxQueue(ctx, fn, 2); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	for i := range 2 {
		if _, err := c.Submit(ctx, fn, "", []byte("x"), gearman.PriorityNormal, true); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	_, err := c.Submit(ctx, fn, "", []byte("x"), gearman.PriorityNormal, true)
	var se *gearman.ServerError
	if !errors.As(err, &se) || se.Code != gearman.CodeQueueFull {
		t.Fatalf("submit to a full queue: %v, want *ServerError %s", err, gearman.CodeQueueFull)
	}
	// The error is a reply like any other: the pipeline stays in step.
	if _, err := c.Echo(ctx, []byte("after")); err != nil {
		t.Fatalf("echo after the error: %v", err)
	}
}

func TestLargePayloads(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "large")
	const size = 1 << 20
	work := bytes.Repeat([]byte("0123456789abcdef\x00"), size/17+1)[:size]
	result := bytes.Repeat([]byte{0xA5, 0x00, 0x5A}, size/3+1)[:size]

	wc := dialWorker(t, srv.Addr(), fn)
	workerErr := make(chan error, 1)
	go func() {
		job, err := wc.Grab(ctx)
		if err != nil {
			workerErr <- err
			return
		}
		if !bytes.Equal(job.Data, work) {
			workerErr <- fmt.Errorf("worker got %d bytes, not the 1 MiB workload", len(job.Data))
			wc.Fail(job.Handle)
			return
		}
		workerErr <- wc.Complete(job.Handle, result)
	}()

	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	got, err := c.Do(ctx, fn, "", work, gearman.PriorityNormal)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-workerErr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, result) {
		t.Fatalf("Do returned %d bytes, not the 1 MiB result", len(got))
	}
}

func TestAdminWithManyFunctions(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	admin := newAdmin(t, srv.Addr())
	const n = 120
	prefix := funcName(t, "many")
	wc, err := gearman.DialWorker(ctx, srv.Addr(), gearman.WorkerOptions{ClientID: "many-worker"})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	fns := make([]string, n)
	for i := range fns {
		fns[i] = fmt.Sprintf("%s_%03d", prefix, i)
		if err := wc.CanDo(fns[i]); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	wantJobs := func(i int) int { return i % 3 } // 0, 1 or 2 jobs per function
	for i, fn := range fns {
		for j := range wantJobs(i) {
			prio := gearman.PriorityHigh
			if j == 1 {
				prio = gearman.PriorityLow
			}
			if _, err := c.Submit(ctx, fn, "", nil, prio, true); err != nil {
				t.Fatal(err)
			}
		}
	}

	var ours []gearman.FunctionStatus
	waitFor(t, 5*time.Second, "120 functions in status", func() bool {
		st, err := admin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ours = ours[:0]
		for _, s := range st {
			if strings.HasPrefix(s.Name, prefix+"_") {
				ours = append(ours, s)
			}
		}
		return len(ours) == n
	})
	for i, s := range ours { // sorted by name, like fns
		want := gearman.FunctionStatus{Name: fns[i], Total: wantJobs(i), Running: 0, Workers: 1}
		if s != want {
			t.Errorf("status[%d] = %+v, want %+v", i, s, want)
		}
		if s.Waiting() != wantJobs(i) {
			t.Errorf("%s waiting = %d", s.Name, s.Waiting())
		}
	}

	ps, err := admin.PriorityStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, p := range ps {
		i := slices.Index(fns, p.Name)
		if i < 0 {
			continue
		}
		seen++
		wantHigh, wantLow := min(wantJobs(i), 1), max(wantJobs(i)-1, 0)
		if p.High != wantHigh || p.Normal != 0 || p.Low != wantLow || p.Workers != 1 {
			t.Errorf("prioritystatus %+v, want high %d low %d workers 1", p, wantHigh, wantLow)
		}
	}
	if seen != n {
		t.Errorf("prioritystatus lists %d of our %d functions", seen, n)
	}

	workers, err := admin.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mine *gearman.WorkerInfo
	for i := range workers {
		if workers[i].ClientID == "many-worker" {
			mine = &workers[i]
		}
	}
	if mine == nil {
		t.Fatalf("workers %+v: ours is missing", workers)
	}
	got := slices.Sorted(slices.Values(mine.Functions))
	if !slices.Equal(got, fns) || mine.IP != "127.0.0.1" || mine.FD <= 0 {
		t.Fatalf("worker line %+v, want fd, 127.0.0.1 and our %d functions", *mine, n)
	}

	if v, err := admin.Version(ctx); err != nil || !strings.HasPrefix(v, "1.") {
		t.Errorf("version %q, %v", v, err)
	}
	if pid, err := admin.GetPID(ctx); err != nil || pid <= 0 {
		t.Errorf("getpid %d, %v", pid, err)
	}
	_, err = admin.PriorityStatus(ctx) // the connection is reused
	if err != nil {
		t.Fatal(err)
	}
}

func TestDoFailAndException(t *testing.T) {
	checkGoroutines(t)
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "fg")
	w := gearman.NewWorker([]string{srv.Addr()}, []string{fn}, func(ctx context.Context, job *gearman.Job) ([]byte, error) {
		switch string(job.Data) {
		case "fail":
			return nil, errors.New("plugin crashed")
		case "exception":
			return nil, &gearman.WorkException{Data: []byte("bad input")}
		}
		return append([]byte("echo:"), job.Data...), nil
	}, gearman.WorkerOptions{Logger: testLogger(t), InFlight: 2})
	defer w.Close()
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})

	got, err := c.Do(ctx, fn, "", []byte("hello"), gearman.PriorityHigh)
	if err != nil || string(got) != "echo:hello" {
		t.Fatalf("Do = %q, %v", got, err)
	}
	_, err = c.Do(ctx, fn, "", []byte("fail"), gearman.PriorityNormal)
	if !errors.Is(err, gearman.ErrWorkFail) {
		t.Fatalf("Do of a failing job: %v, want ErrWorkFail", err)
	}
	_, err = c.Do(ctx, fn, "", []byte("exception"), gearman.PriorityLow)
	var ex *gearman.WorkException
	if !errors.As(err, &ex) || string(ex.Data) != "bad input" || ex.Handle == "" {
		t.Fatalf("Do of a throwing job: %v, want *WorkException with data", err)
	}

	// Concurrent foreground jobs share the connection and get their own
	// results.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			in := fmt.Sprint(i)
			got, err := c.Do(ctx, fn, "", []byte(in), gearman.PriorityNormal)
			if err != nil || string(got) != "echo:"+in {
				t.Errorf("Do(%s) = %q, %v", in, got, err)
			}
		})
	}
	wg.Wait()
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestGrabContextCancel(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "grabcancel")
	wc := dialWorker(t, srv.Addr(), fn)

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := wc.Grab(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Grab with nothing queued: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Grab returned %v after its deadline", d)
	}
	cancelled, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := wc.Grab(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Grab with a cancelled context: %v", err)
	}

	// The connection is still in step: a job submitted now is grabbed.
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	h, err := c.Submit(ctx, fn, "", []byte("late"), gearman.PriorityNormal, true)
	if err != nil {
		t.Fatal(err)
	}
	job, err := wc.Grab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if job.Handle != h || string(job.Data) != "late" {
		t.Fatalf("job %+v, want %s", job, h)
	}
	if err := wc.Complete(job.Handle, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSubmitContextCancel(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "submitcancel")
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Submit(cancelled, fn, "", nil, gearman.PriorityNormal, true); err != context.Canceled {
		t.Fatalf("Submit with a cancelled context: %v, want context.Canceled", err)
	}
	// A Do with no worker times out; its result would be dropped.
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := c.Do(short, fn, "", []byte("abandoned"), gearman.PriorityNormal); err != context.DeadlineExceeded {
		t.Fatalf("Do without a worker: %v, want context.DeadlineExceeded", err)
	}
	// Many submits cancelled mid-flight leave the pipeline in step.
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, time.Duration(i%5)*50*time.Microsecond)
			defer cancel()
			c.Submit(cctx, fn, "", nil, gearman.PriorityLow, true)
		})
	}
	wg.Wait()
	for i := range 20 {
		payload := fmt.Appendf(nil, "probe-%d", i)
		got, err := c.Echo(ctx, payload)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("echo %d after cancellations = %q, %v", i, got, err)
		}
	}
	// The abandoned foreground job runs when a worker comes; the client
	// drops its result and keeps working.
	w := gearman.NewWorker([]string{srv.Addr()}, []string{fn}, func(ctx context.Context, job *gearman.Job) ([]byte, error) {
		return job.Data, nil
	}, gearman.WorkerOptions{Logger: testLogger(t)})
	defer w.Close()
	got, err := c.Do(ctx, fn, "", []byte("fresh"), gearman.PriorityHigh)
	if err != nil || string(got) != "fresh" {
		t.Fatalf("Do after an abandoned Do = %q, %v", got, err)
	}
}

func TestFailoverToSecondServer(t *testing.T) {
	checkGoroutines(t)
	a, b := gearmantest.Start(t), gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "failover")
	c := newClient(t, []string{a.Addr(), b.Addr()}, gearman.ClientOptions{BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	adminA, adminB := newAdmin(t, a.Addr()), newAdmin(t, b.Addr())
	if _, err := c.Submit(ctx, fn, "", nil, gearman.PriorityNormal, true); err != nil {
		t.Fatal(err)
	}
	if st := status(t, adminA, fn); st.Total != 1 {
		t.Fatalf("first job should go to the first server: %+v", st)
	}
	a.Stop()
	// The first submits after the loss may fail (in flight, or no server
	// yet); within a few tries the client is on the second server.
	var err error
	for range 50 {
		if _, err = c.Submit(ctx, fn, "", nil, gearman.PriorityNormal, true); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no failover: %v", err)
	}
	if st := status(t, adminB, fn); st.Total != 1 {
		t.Fatalf("job after failover should be on the second server: %+v", st)
	}
	c.Close()
	adminA.Close()
	adminB.Close()
}

func TestNoServerFailsFast(t *testing.T) {
	checkGoroutines(t)
	srv := gearmantest.Start(t)
	addr := srv.Addr()
	srv.Stop()
	c := newClient(t, []string{addr}, gearman.ClientOptions{BackoffMin: time.Hour})
	_, err := c.Submit(testContext(t), "fn", "", nil, gearman.PriorityNormal, true)
	if !errors.Is(err, gearman.ErrNoServer) {
		t.Fatalf("submit with the only server down: %v, want ErrNoServer", err)
	}
	c.Close()
}

// TestRestartMidStream restarts gearmand while a client submits and a
// worker drains. Every submit must end as either a handle or an error, and
// both sides must reconnect on their own.
func TestRestartMidStream(t *testing.T) {
	checkGoroutines(t)
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "restart")
	const (
		submitters = 8
		total      = 20000
	)
	fast := gearman.ClientOptions{BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Logger: testLogger(t)}
	c := newClient(t, []string{srv.Addr()}, fast)

	var received, receivedAfter atomic.Int64
	var restarted atomic.Bool
	w := gearman.NewWorker([]string{srv.Addr()}, []string{fn}, func(ctx context.Context, job *gearman.Job) ([]byte, error) {
		received.Add(1)
		if restarted.Load() {
			receivedAfter.Add(1)
		}
		return nil, nil
	}, gearman.WorkerOptions{Logger: testLogger(t), Connections: 2, InFlight: 4, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	defer w.Close()

	var attempted, acked, failed atomic.Int64
	var lostErrs atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range submitters {
		wg.Go(func() {
			for next.Add(1) <= total {
				attempted.Add(1)
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				h, err := c.Submit(sctx, fn, "", []byte("x"), gearman.PriorityNormal, true)
				cancel()
				switch {
				case err == nil && h != "":
					acked.Add(1)
				case err != nil:
					failed.Add(1)
					if errors.Is(err, gearman.ErrConnectionLost) {
						lostErrs.Add(1)
					}
					time.Sleep(time.Millisecond) // do not spin while the server is down
				default:
					t.Errorf("submit returned an empty handle and no error")
				}
			}
		})
	}

	waitFor(t, 30*time.Second, "a third of the submits", func() bool { return acked.Load() > total/3 })
	srv.Restart(t)
	restarted.Store(true)
	wg.Wait()

	t.Logf("attempted %d, acked %d, failed %d (connection lost %d), worker received %d (%d after restart)",
		attempted.Load(), acked.Load(), failed.Load(), lostErrs.Load(), received.Load(), receivedAfter.Load())
	if attempted.Load() != total {
		t.Fatalf("attempted %d, want %d", attempted.Load(), total)
	}
	if acked.Load()+failed.Load() != attempted.Load() {
		t.Fatalf("acked %d + failed %d != attempted %d", acked.Load(), failed.Load(), attempted.Load())
	}
	// The client reconnected: it keeps acknowledging after the restart.
	if _, err := c.Submit(ctx, fn, "", []byte("x"), gearman.PriorityNormal, true); err != nil {
		t.Fatalf("submit after restart: %v", err)
	}
	// The worker reconnected: it resumes receiving jobs.
	waitFor(t, 30*time.Second, "the worker to receive jobs after the restart", func() bool { return receivedAfter.Load() > 0 })
	w.Close()
	c.Close()
}

// TestRoundRobinAvoidsStarvation documents why the harness starts gearmand
// with -R: without it, gearmand 1.1.20 hands one connection every job of
// one registered function before any job of the next (in our probe the
// function registered last came first), so a busy queue starves the others.
func TestRoundRobinAvoidsStarvation(t *testing.T) {
	grabOrder := func(t *testing.T, opts ...gearmantest.Option) string {
		srv := gearmantest.Start(t, opts...)
		ctx := testContext(t)
		c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
		a, b := funcName(t, "a"), funcName(t, "b")
		for fn, label := range map[string]string{a: "a", b: "b"} {
			for range 4 {
				if _, err := c.Submit(ctx, fn, "", []byte(label), gearman.PriorityNormal, true); err != nil {
					t.Fatal(err)
				}
			}
		}
		wc := dialWorker(t, srv.Addr(), a, b)
		var order []byte
		for range 8 {
			job, err := wc.Grab(ctx)
			if err != nil {
				t.Fatal(err)
			}
			order = append(order, job.Data...)
			if err := wc.Complete(job.Handle, nil); err != nil {
				t.Fatal(err)
			}
		}
		return string(order)
	}
	t.Run("without -R one function waits for the other", func(t *testing.T) {
		order := grabOrder(t, gearmantest.WithoutRoundRobin())
		if order != "aaaabbbb" && order != "bbbbaaaa" {
			t.Fatalf("grab order %s, want one function drained before the other", order)
		}
	})
	t.Run("with -R functions alternate", func(t *testing.T) {
		order := grabOrder(t)
		for i := 1; i < len(order); i++ {
			if order[i] == order[i-1] {
				t.Fatalf("grab order %s, want alternation", order)
			}
		}
	})
}

func TestWorkerConnectionPerFunction(t *testing.T) {
	checkGoroutines(t)
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fns := []string{funcName(t, "x"), funcName(t, "y"), funcName(t, "z")}
	var n atomic.Int64
	w := gearman.NewWorker([]string{srv.Addr()}, fns, func(context.Context, *gearman.Job) ([]byte, error) {
		n.Add(1)
		return nil, nil
	}, gearman.WorkerOptions{ClientID: "per-fn", ConnectionPerFunction: true, Connections: 2, Logger: testLogger(t)})
	defer w.Close()
	admin := newAdmin(t, srv.Addr())
	waitFor(t, 5*time.Second, "six worker connections", func() bool {
		ws, err := admin.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		perFn := map[string]int{}
		for _, wi := range ws {
			if wi.ClientID != "per-fn" {
				continue
			}
			switch len(wi.Functions) {
			case 0: // SET_CLIENT_ID arrived, CAN_DO not yet
			case 1:
				perFn[wi.Functions[0]]++
			default:
				t.Fatalf("connection %+v registered %d functions, want 1", wi, len(wi.Functions))
			}
		}
		return perFn[fns[0]] == 2 && perFn[fns[1]] == 2 && perFn[fns[2]] == 2
	})
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	for _, fn := range fns {
		if _, err := c.Do(ctx, fn, "", nil, gearman.PriorityNormal); err != nil {
			t.Fatal(err)
		}
	}
	if n.Load() != 3 {
		t.Fatalf("handled %d jobs, want 3", n.Load())
	}
	w.Close()
	c.Close()
	admin.Close()
}

// TestConnectionLostHook: a server restart between two requests of an idle
// client is reported through OnConnectionLost, although no request failed.
func TestConnectionLostHook(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	lost := make(chan string, 16)
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{Logger: testLogger(t),
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		OnConnectionLost: func(addr string, err error) {
			if err == nil {
				t.Errorf("OnConnectionLost(%q) without an error", addr)
			}
			lost <- addr
		}})
	if _, err := c.Echo(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-lost:
		t.Fatalf("connection reported lost (%q) before the restart", a)
	default:
	}
	srv.Restart(t)
	select {
	case a := <-lost:
		if a != srv.Addr() && a != "" {
			t.Errorf("lost address %q, want %q", a, srv.Addr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no OnConnectionLost call within 10s of the restart")
	}
	waitFor(t, 10*time.Second, "the client to reconnect", func() bool {
		ectx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := c.Echo(ectx, []byte("y"))
		return err == nil
	})
	c.Close()
}

// TestPersistentQueueKeepsJobsWithoutUnique: background jobs submitted
// without a unique key get distinct keys, so that gearmand's libsqlite3
// queue keeps every one of them (it stores a job under function and unique
// key) and gives them all back after a SIGKILL and a restart.
func TestPersistentQueueKeepsJobsWithoutUnique(t *testing.T) {
	db := filepath.Join(t.TempDir(), "queue.sqlite")
	srv := gearmantest.Start(t, gearmantest.WithArgs("--queue-type=libsqlite3", "--libsqlite3-db="+db))
	ctx := testContext(t)
	fn := funcName(t, "durable")
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	const n = 20
	for i := range n {
		if _, err := c.Submit(ctx, fn, "", []byte(strconv.Itoa(i)), gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
	}
	srv.Kill()
	srv.Restart(t)
	if st := status(t, newAdmin(t, srv.Addr()), fn); st.Total != n {
		t.Fatalf("after SIGKILL and restart: %+v, want %d jobs", st, n)
	}
	wc := dialWorker(t, srv.Addr(), fn)
	seen, uniques := map[string]bool{}, map[string]bool{}
	for range n {
		job, err := wc.Grab(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := wc.Complete(job.Handle, nil); err != nil {
			t.Fatal(err)
		}
		seen[string(job.Data)], uniques[string(job.Unique)] = true, true
	}
	if len(seen) != n || len(uniques) != n || uniques[""] {
		t.Fatalf("payloads %v, uniques %v: want %d distinct of each, no empty unique", seen, uniques, n)
	}
}

// TestFlushDelayBatchesSubmits: with FlushDelay, a lone submit still goes
// out (after the delay), and submits made one after another within the
// delay (not overlapping, so not merged by the wire's group flush) are
// written in far fewer writes than submits, each one created on gearmand.
func TestFlushDelayBatchesSubmits(t *testing.T) {
	checkGoroutines(t)
	srv := gearmantest.Start(t)
	var writes atomic.Int64
	dial := countingDialer(&writes)
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{FlushDelay: 20 * time.Millisecond, Dialer: dial})
	ctx := testContext(t)
	if _, err := c.Submit(ctx, "flushdelay", "", []byte("one"), gearman.PriorityNormal, true); err != nil {
		t.Fatalf("lone submit: %v", err)
	}
	before := writes.Load()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 500 * time.Microsecond)
			if _, err := c.Submit(ctx, "flushdelay", "", []byte(strconv.Itoa(i)), gearman.PriorityNormal, true); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("submit: %v", err)
	}
	if w := writes.Load() - before; w > n/4 {
		t.Errorf("%d submits within the delay took %d writes, want at most %d", n, w, n/4)
	}
	a := gearman.NewAdmin(srv.Addr(), gearman.AdminOptions{})
	defer a.Close()
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, s := range st {
		if s.Name == "flushdelay" {
			held = s.Total
		}
	}
	if held != n+1 {
		t.Errorf("gearmand holds %d jobs, want %d", held, n+1)
	}
}

// countingDialer dials TCP connections that count their writes in n.
func countingDialer(n *atomic.Int64) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &writeCounter{Conn: nc, n: n}, nil
	}
}

type writeCounter struct {
	net.Conn
	n *atomic.Int64
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.n.Add(1)
	return w.Conn.Write(p)
}

// TestSubmitAllAndCompleteAll: a batch larger than the client's window is
// submitted in a few writes, each job created on gearmand; an invalid job
// gets its own error without failing the others; CompleteAll finishes the
// grabbed jobs in one write and gearmand holds none of them afterwards.
func TestSubmitAllAndCompleteAll(t *testing.T) {
	checkGoroutines(t)
	srv := gearmantest.Start(t)
	var writes atomic.Int64
	dial := countingDialer(&writes)
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{Window: 8, Dialer: dial})
	ctx := testContext(t)
	fn := funcName(t, "all")
	const n = 40
	jobs := make([]gearman.BackgroundJob, n)
	for i := range jobs {
		jobs[i] = gearman.BackgroundJob{Function: fn, Data: []byte("job " + strconv.Itoa(i))}
	}
	jobs[7].Function = "bad\x00name"
	if _, err := c.Echo(ctx, []byte("connect")); err != nil {
		t.Fatal(err)
	}
	before := writes.Load()
	errs := c.SubmitAll(ctx, jobs)
	if len(errs) != n {
		t.Fatalf("%d errors for %d jobs", len(errs), n)
	}
	for i, err := range errs {
		if i == 7 {
			if !errors.Is(err, gearman.ErrInvalidArgument) {
				t.Errorf("job with a NUL in its function: err %v, want ErrInvalidArgument", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("job %d: %v", i, err)
		}
	}
	// A window of 8 lets at most 8 requests wait for replies: about n/8
	// writes, never one per job.
	if w := writes.Load() - before; w > n/4 {
		t.Errorf("%d submits took %d writes, want at most %d", n, w, n/4)
	}
	a := newAdmin(t, srv.Addr())
	if st := status(t, a, fn); st.Total != n-1 {
		t.Fatalf("gearmand holds %d jobs of %s, want %d", st.Total, fn, n-1)
	}

	wc := dialWorker(t, srv.Addr(), fn)
	got, err := wc.TryGrabN(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n-1 {
		t.Fatalf("grabbed %d jobs, want %d", len(got), n-1)
	}
	seen := map[string]bool{}
	handles := make([]string, len(got))
	for i, j := range got {
		seen[string(j.Data)] = true
		handles[i] = j.Handle
	}
	for i := range n {
		if want := "job " + strconv.Itoa(i); seen[want] == (i == 7) {
			t.Errorf("job %q grabbed: %v", want, seen[want])
		}
	}
	if err := wc.CompleteAll(handles); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "gearmand to drop the completed jobs", func() bool {
		return status(t, a, fn).Total == 0
	})
}
