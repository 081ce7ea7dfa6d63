// Package bridgebench measures checks through the bridge against a direct
// Gearman worker on the same gearmand, for `gearbridge bench bridge`.
//
// Both paths run the same no-op check (check_dummy, answered in process so
// that fork cost does not hide the transport) and submit the same classic
// result. The bridge runs as a child process (the gearbridge binary), so
// its memory can be read on its own; workers, the direct worker and the
// load generator run in this process.
package bridgebench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/bridgeproc"
	"github.com/gearbridge/gearbridge/modgearman"
	"github.com/gearbridge/gearbridge/plugin"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
	"github.com/gearbridge/gearbridge/worker"
)

const benchKey = "bench_key_0123456789"

// dummyCommand is answered in process by both paths.
const dummyCommand = "/usr/lib/monitoring-plugins/check_dummy 0 bench"

// Options configure a run.
type Options struct {
	Server       string // gearmand host:port
	Bin          string // gearbridge binary that runs the bridge
	Checks       int    // checks per throughput phase
	Sessions     int    // bridge sessions (remote workers)
	Slots        int    // slots per session, and in-flight jobs per direct connection
	IdleSessions int    // idle sessions for the memory figure (0 skips it)
	Logger       *slog.Logger
}

func (o *Options) defaults() {
	if o.Checks <= 0 {
		o.Checks = 20000
	}
	if o.Sessions <= 0 {
		o.Sessions = 4
	}
	if o.Slots <= 0 {
		o.Slots = 32
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run performs the benchmark and prints its figures to out; the last line
// is a summary of name=value pairs.
func Run(ctx context.Context, o Options, out io.Writer) error {
	o.defaults()
	if o.Server == "" {
		return errors.New("bench bridge: --server (gearmand) is required")
	}
	dir, err := os.MkdirTemp("", "gearbridge-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	nonce := randHex(4)
	codec, err := modgearman.NewCodec(benchKey, true)
	if err != nil {
		return err
	}
	client := gearman.NewClient([]string{o.Server}, gearman.ClientOptions{})
	defer client.Close()

	br, err := bridgeproc.Start(ctx, dir, bridgeproc.Options{
		Bin: o.Bin, Server: o.Server, Key: benchKey,
		ClientRole: certs.RoleWorker, ClientName: "bench",
		AuthzYAML: "rules:\n  - {identity: \"*\", role: worker, queues: [\"bench_*\"], identifiers: [\"bench-*\", \"idle-*\"]}\n",
		// Every session has the one client certificate.
		ExtraArgs: []string{"--max-sessions-per-identity", strconv.Itoa(o.Sessions + o.IdleSessions + 8),
			"--max-sessions", strconv.Itoa(o.Sessions + o.IdleSessions + 8)},
	})
	if err != nil {
		return err
	}
	defer br.Stop()
	fmt.Fprintf(out, "bridge pid %d on %s, gearmand %s, %d sessions x %d slots\n", br.Cmd.Process.Pid, br.Addr, o.Server, o.Sessions, o.Slots)

	// Path A: remote workers through the bridge.
	bq, bres := "bench_bridge_"+nonce, "bench_results_bridge_"+nonce
	wctx, wcancel := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	defer func() { wcancel(); wwg.Wait() }()
	for i := range o.Sessions {
		cfg := worker.DefaultConfig()
		cfg.Bridges = []string{br.Addr}
		cfg.Identifier = fmt.Sprintf("bench-%d", i)
		cfg.Queues = []string{bq}
		cfg.Slots = o.Slots
		w, err := worker.New(cfg, worker.Deps{Credentials: credentials.NewTLS(br.ClientTLS), Logger: o.Logger})
		if err != nil {
			return err
		}
		wwg.Add(1)
		go func() { defer wwg.Done(); _ = w.Run(wctx) }()
	}

	// Path B: a direct Gearman worker doing the same no-op.
	dq, dres := "bench_direct_"+nonce, "bench_results_direct_"+nonce
	dw := gearman.NewWorker([]string{o.Server}, []string{dq}, directHandler(codec, client),
		gearman.WorkerOptions{Connections: o.Sessions, InFlight: o.Slots, ClientID: "bench-direct"})
	defer dw.Close()

	bridgeRate, err := throughput(ctx, client, codec, o.Server, bq, bres, o.Checks)
	if err != nil {
		return fmt.Errorf("bridge path: %w", err)
	}
	fmt.Fprintf(out, "bridge path:  %d checks in %v: %.0f checks/s\n", o.Checks, bridgeRate.elapsed.Round(time.Millisecond), bridgeRate.rate())
	directRate, err := throughput(ctx, client, codec, o.Server, dq, dres, o.Checks)
	if err != nil {
		return fmt.Errorf("direct path: %w", err)
	}
	fmt.Fprintf(out, "direct path:  %d checks in %v: %.0f checks/s\n", o.Checks, directRate.elapsed.Round(time.Millisecond), directRate.rate())
	ratio := bridgeRate.rate() / directRate.rate()
	fmt.Fprintf(out, "ratio bridge/direct: %.2f\n", ratio)

	// Latency at half of the lower maximum, for the same rate on both paths.
	rate := min(bridgeRate.rate(), directRate.rate()) / 2
	n := int(min(rate*5, float64(o.Checks)))
	bl, err := paced(ctx, client, codec, o.Server, bq, bres+"_paced", n, rate)
	if err != nil {
		return fmt.Errorf("bridge latency: %w", err)
	}
	dl, err := paced(ctx, client, codec, o.Server, dq, dres+"_paced", n, rate)
	if err != nil {
		return fmt.Errorf("direct latency: %w", err)
	}
	added50 := pct(bl, 50) - pct(dl, 50)
	added99 := pct(bl, 99) - pct(dl, 99)
	fmt.Fprintf(out, "latency at %.0f checks/s (half load): bridge p50 %v p99 %v, direct p50 %v p99 %v\n",
		rate, pct(bl, 50), pct(bl, 99), pct(dl, 50), pct(dl, 99))
	fmt.Fprintf(out, "latency the bridge adds: p50 %v p99 %v\n", added50, added99)

	rssMB := 0.0
	if o.IdleSessions > 0 {
		wcancel()
		wwg.Wait()
		rssMB, err = idleRSS(ctx, br, o.IdleSessions, "bench_idle_"+nonce)
		if err != nil {
			return fmt.Errorf("idle sessions: %w", err)
		}
		fmt.Fprintf(out, "bridge RSS with %d idle sessions: %.1f MB\n", o.IdleSessions, rssMB)
	}
	fmt.Fprintf(out, "summary bridge_checks_per_s=%.0f direct_checks_per_s=%.0f ratio=%.2f added_p50_ms=%.3f added_p99_ms=%.3f half_load_checks_per_s=%.0f idle_sessions=%d idle_rss_mb=%.1f\n",
		bridgeRate.rate(), directRate.rate(), ratio, ms(added50), ms(added99), rate, o.IdleSessions, rssMB)
	return nil
}

type measured struct {
	n       int
	elapsed time.Duration
}

func (m measured) rate() float64 { return float64(m.n) / m.elapsed.Seconds() }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// job builds check i for queue, answered on resultQueue.
func job(i int, queue, resultQueue string) modgearman.Job {
	return modgearman.Job{
		Type: modgearman.JobService, ResultQueue: resultQueue, TargetQueue: queue,
		HostName: "h" + strconv.Itoa(i), ServiceDescription: "bench", CoreTime: time.Now(),
		Timeout: 30 * time.Second, CommandLine: dummyCommand,
	}
}

// throughput submits n checks as fast as the client pipelines them and
// times until n results are back.
func throughput(ctx context.Context, c *gearman.Client, codec *modgearman.Codec, server, queue, resultQueue string, n int) (measured, error) {
	got := make(chan int, n)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rerr := make(chan error, 1)
	go func() { rerr <- readResults(rctx, server, resultQueue, codec, got) }()
	start := time.Now()
	if err := submitAll(ctx, c, codec, queue, resultQueue, n); err != nil {
		return measured{}, err
	}
	for i := 0; i < n; i++ {
		select {
		case <-got:
		case err := <-rerr:
			return measured{}, err
		case <-ctx.Done():
			return measured{}, fmt.Errorf("%d of %d results: %w", i, n, ctx.Err())
		}
	}
	return measured{n: n, elapsed: time.Since(start)}, nil
}

func submitAll(ctx context.Context, c *gearman.Client, codec *modgearman.Codec, queue, resultQueue string, n int) error {
	const senders = 8
	var wg sync.WaitGroup
	errc := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < n; i += senders {
				if _, err := c.Submit(ctx, queue, "", codec.Encode(job(i, queue, resultQueue).Marshal()), gearman.PriorityNormal, true); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// paced submits n checks at rate per second and returns each one's time
// from submit to result.
func paced(ctx context.Context, c *gearman.Client, codec *modgearman.Codec, server, queue, resultQueue string, n int, rate float64) ([]time.Duration, error) {
	got := make(chan int, n)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rerr := make(chan error, 1)
	go func() { rerr <- readResults(rctx, server, resultQueue, codec, got) }()
	sent := make([]time.Time, n)
	var mu sync.Mutex
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	serr := make(chan error, 1)
	go func() {
		for i := range n {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			mu.Lock()
			sent[i] = time.Now()
			mu.Unlock()
			if _, err := c.Submit(ctx, queue, "", codec.Encode(job(i, queue, resultQueue).Marshal()), gearman.PriorityNormal, true); err != nil {
				serr <- err
				return
			}
		}
	}()
	lat := make([]time.Duration, 0, n)
	for len(lat) < n {
		select {
		case i := <-got:
			if i < 0 || i >= n {
				return nil, fmt.Errorf("result for unknown check %d", i)
			}
			mu.Lock()
			lat = append(lat, time.Since(sent[i]))
			mu.Unlock()
		case err := <-serr:
			return nil, err
		case err := <-rerr:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	slices.Sort(lat)
	return lat, nil
}

// readResults reads results and reports the check index of each.
func readResults(ctx context.Context, server, queue string, codec *modgearman.Codec, got chan<- int) error {
	var errOnce sync.Once
	var firstErr error
	w := gearman.NewWorker([]string{server}, []string{queue}, func(_ context.Context, j *gearman.Job) ([]byte, error) {
		plain, err := codec.Decode(j.Data)
		if err == nil {
			var r modgearman.Result
			if r, err = modgearman.ParseResult(plain); err == nil {
				var i int
				if i, err = strconv.Atoi(strings.TrimPrefix(r.HostName, "h")); err == nil {
					got <- i
					return nil, nil
				}
			}
		}
		errOnce.Do(func() { firstErr = err })
		return nil, err
	}, gearman.WorkerOptions{Connections: 2, InFlight: 64, ClientID: "bench-results"})
	<-ctx.Done()
	// Shutdown, not Close: a result already reported must also be
	// completed, or gearmand would hand it out again.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = w.Shutdown(sctx)
	return firstErr
}

// directHandler is the classic path: decode, run the no-op, submit the
// result, complete.
func directHandler(codec *modgearman.Codec, c *gearman.Client) gearman.Handler {
	return func(ctx context.Context, j *gearman.Job) ([]byte, error) {
		plain, err := codec.Decode(j.Data)
		if err != nil {
			return nil, err
		}
		job, err := modgearman.ParseJob(plain)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		res, ok := plugin.InternalDummy(job.CommandLine)
		if !ok {
			return nil, errors.New("not a check_dummy command")
		}
		r := modgearman.Result{
			Type: modgearman.ResultActive, HostName: job.HostName, ServiceDescription: job.ServiceDescription,
			CoreStartTime: job.CoreTime, StartTime: start, FinishTime: time.Now(), ReturnCode: res.ReturnCode,
			ExitedOK: true, Source: "bench direct", Output: res.Output,
		}
		_, err = c.Submit(ctx, job.ResultQueue, "", codec.Encode(r.Marshal()), gearman.PriorityNormal, true)
		return nil, err
	}
}

// idleRSS opens n idle sessions on the bridge and reads its resident memory.
func idleRSS(ctx context.Context, br *bridgeproc.Proc, n int, queue string) (float64, error) {
	const perConn = 8 // sessions per HTTP/2 connection, within the bridge's stream limit
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opened := 0
	for opened < n {
		cc, err := grpc.NewClient(br.Addr, grpc.WithTransportCredentials(credentials.NewTLS(br.ClientTLS)))
		if err != nil {
			return 0, err
		}
		conns = append(conns, cc)
		for k := 0; k < perConn && opened < n; k++ {
			st, err := pb.NewWorkerServiceClient(cc).Work(sctx)
			if err != nil {
				return 0, err
			}
			if err := st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Hello{Hello: &pb.Hello{
				Identifier: fmt.Sprintf("idle-%d", opened), Queues: []string{queue}, Slots: 1,
			}}}); err != nil {
				return 0, err
			}
			if _, err := st.Recv(); err != nil {
				return 0, fmt.Errorf("session %d: %w", opened, err)
			}
			opened++
		}
	}
	time.Sleep(2 * time.Second) // let every session's Gearman connection settle
	return br.RSSMB()
}

func pct(s []time.Duration, p int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
