package gearman_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

// shortWriteTimeout is far below the idle pauses of the tests below, so a
// write that inherits the deadline of an earlier flush is bound to fail.
const shortWriteTimeout = 200 * time.Millisecond

// payload returns n bytes that differ from those of another size and hold
// NULs, so that a truncated or mixed-up packet is noticed.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + n)
	}
	return b
}

// TestClientWriteDeadlineAfterIdle: a client with a short write timeout
// that was idle for longer still submits packets smaller than, a little
// larger than, and far larger than its write buffer, one after another
// and pipelined at once, and a worker receives every byte.
func TestClientWriteDeadlineAfterIdle(t *testing.T) {
	checkGoroutines(t)
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "idle")
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{WriteTimeout: shortWriteTimeout})
	sizes := []int{1 << 10, 70 << 10, 1 << 20}
	idle := func() { time.Sleep(3 * shortWriteTimeout / 2) }

	want := map[string][]byte{}
	submit := func(tag string, data []byte) error {
		if _, err := c.Submit(ctx, fn, "", data, gearman.PriorityNormal, true); err != nil {
			return fmt.Errorf("submit %s (%d bytes) after %v idle: %w", tag, len(data), 3*shortWriteTimeout/2, err)
		}
		return nil
	}
	// If the connection breaks it reconnects in the background; the echo
	// makes sure each round starts on a live connection.
	if _, err := c.Echo(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range sizes {
		idle()
		data := append([]byte(fmt.Sprintf("one-by-one-%d:", n)), payload(n)...)
		want[string(data[:20])] = data
		if err := submit("one by one", data); err != nil {
			t.Fatal(err)
		}
	}
	idle()
	var wg sync.WaitGroup
	errs := make(chan error, len(sizes))
	for _, n := range sizes {
		data := append([]byte(fmt.Sprintf("pipelined--%d:", n)), payload(n)...)
		want[string(data[:20])] = data
		wg.Go(func() {
			if err := submit("pipelined", data); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	wc := dialWorker(t, srv.Addr(), fn)
	for range len(want) {
		job, err := wc.Grab(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(job.Data) < 20 {
			t.Fatalf("job of %d bytes", len(job.Data))
		}
		w, ok := want[string(job.Data[:20])]
		if !ok || !bytes.Equal(job.Data, w) {
			t.Fatalf("job %q… (%d bytes) is not one that was submitted", job.Data[:20], len(job.Data))
		}
		delete(want, string(job.Data[:20]))
		if err := wc.Complete(job.Handle, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWorkerWriteDeadlineAfterIdle: a worker connection with a short write
// timeout whose handler ran longer than that still sends large results.
func TestWorkerWriteDeadlineAfterIdle(t *testing.T) {
	checkGoroutines(t)
	srv := gearmantest.Start(t)
	ctx := testContext(t)
	fn := funcName(t, "idle")
	wc, err := gearman.DialWorker(ctx, srv.Addr(), gearman.WorkerOptions{Logger: testLogger(t), WriteTimeout: shortWriteTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo(fn); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, []string{srv.Addr()}, gearman.ClientOptions{})
	for _, n := range []int{1 << 10, 70 << 10, 1 << 20} {
		result := payload(n)
		workerErr := make(chan error, 1)
		go func() {
			job, err := wc.Grab(ctx)
			if err != nil {
				workerErr <- err
				return
			}
			time.Sleep(3 * shortWriteTimeout / 2) // a check that takes a while
			workerErr <- wc.Complete(job.Handle, result)
		}()
		type reply struct {
			data []byte
			err  error
		}
		done := make(chan reply, 1)
		go func() {
			got, err := c.Do(ctx, fn, "", []byte("run"), gearman.PriorityNormal)
			done <- reply{got, err}
		}()
		// A failed WORK_COMPLETE requeues the job and Do would wait for
		// another worker: check the worker's side first.
		if err := <-workerErr; err != nil {
			t.Fatalf("complete with %d bytes after a slow job: %v", n, err)
		}
		r := <-done
		if r.err != nil {
			t.Fatalf("result of %d bytes: %v", n, r.err)
		}
		if got := r.data; !bytes.Equal(got, result) {
			t.Fatalf("result of %d bytes came back as %d different bytes", n, len(got))
		}
	}
}
