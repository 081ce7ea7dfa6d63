package gearman_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

// BenchmarkSubmitBackground measures pipelined background submits of
// 64-byte jobs from 256 goroutines sharing one client connection.
func BenchmarkSubmitBackground(b *testing.B) {
	srv := gearmantest.Start(b)
	ctx := testContext(b)
	c := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer c.Close()
	fn := funcName(b, "submit")
	payload := make([]byte, 64)
	if _, err := c.Echo(ctx, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	submitN(b, ctx, c, fn, payload, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

func submitN(b *testing.B, ctx context.Context, c *gearman.Client, fn string, payload []byte, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := c.Submit(ctx, fn, "", payload, gearman.PriorityNormal, true); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkDrain measures 4 worker connections (8 jobs in flight each)
// completing b.N queued 64-byte jobs; the queue is filled untimed.
func BenchmarkDrain(b *testing.B) {
	srv := gearmantest.Start(b)
	ctx := testContext(b)
	c := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer c.Close()
	fn := funcName(b, "drain")
	submitN(b, ctx, c, fn, make([]byte, 64), b.N)
	var done atomic.Int64
	finished := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	w := gearman.NewWorker([]string{srv.Addr()}, []string{fn}, func(context.Context, *gearman.Job) ([]byte, error) {
		if done.Add(1) == int64(b.N) {
			close(finished)
		}
		return nil, nil
	}, gearman.WorkerOptions{Connections: 4, InFlight: 8})
	defer w.Close()
	select {
	case <-finished:
	case <-ctx.Done():
		b.Fatalf("drained %d of %d jobs: %v", done.Load(), b.N, ctx.Err())
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
