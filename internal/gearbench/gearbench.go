// Package gearbench measures package gearman against a running gearmand:
// pipelined background submits, worker drain with one and four
// connections, foreground round trips, and, for comparison, background
// submits with Debian's `gearman` CLI.
package gearbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
)

// Options configures Run.
type Options struct {
	// Server is the gearmand address, "host:port". Required.
	Server string
	// Jobs is the number of jobs for the submit and drain phases.
	// Default 100,000.
	Jobs int
	// PayloadSize is the size of each job's data. Default 64 bytes, about
	// a Mod-Gearman service check.
	PayloadSize int
	// Compare also times background submits with the `gearman -b` CLI
	// (Debian's gearman-tools) when it is on PATH.
	Compare bool
	// Submitters is the number of goroutines sharing the one client
	// connection in the submit phase. Default 256, twice the client's
	// default window, so the window is always full.
	Submitters int
	// CLIJobs is the number of jobs submitted with the CLI. Default
	// min(Jobs, 20,000): the CLI does one round trip per job (~10k/s).
	CLIJobs int
	// Logger receives client and worker events; nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Jobs <= 0 {
		o.Jobs = 100_000
	}
	if o.PayloadSize <= 0 {
		o.PayloadSize = 64
	}
	if o.Submitters <= 0 {
		o.Submitters = 256
	}
	if o.CLIJobs <= 0 {
		o.CLIJobs = min(o.Jobs, 20_000)
	}
	return o
}

// Validate checks the options without changing them.
func (o Options) Validate() error {
	if o.Server == "" {
		return errors.New("gearbench: Server is required")
	}
	if _, _, err := net.SplitHostPort(o.Server); err != nil {
		return fmt.Errorf("gearbench: Server %q: %w", o.Server, err)
	}
	return nil
}

// phaseTimeout bounds each phase, so a stuck server fails the run instead
// of hanging it. 100k jobs take a few seconds per phase.
const phaseTimeout = 5 * time.Minute

// Run runs every phase against opts.Server, prints one line per result to
// out, and ends with one "summary name=value ..." line. Function names are
// unique to the run, and the queues it fills are drained before it
// returns.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	b := &bench{opts: opts, out: out, run: fmt.Sprintf("gearbench_%d_%04x", time.Now().Unix(), rand.IntN(1<<16))}
	b.payload = bytes.Repeat([]byte("x"), opts.PayloadSize)
	b.admin = gearman.NewAdmin(opts.Server, gearman.AdminOptions{})
	defer b.admin.Close()
	if v, err := b.admin.Version(ctx); err != nil {
		return fmt.Errorf("gearbench: server %s: %w", opts.Server, err)
	} else {
		fmt.Fprintf(out, "gearbench: server %s (gearmand %s), %d jobs of %d bytes, run %s\n", opts.Server, v, opts.Jobs, opts.PayloadSize, b.run)
	}
	summary := []string{}
	add := func(k string, v float64) { summary = append(summary, fmt.Sprintf("%s=%.0f", k, v)) }

	submit, err := b.submitPhase(ctx, "a", opts.Jobs)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "submit_bg: %d jobs in %v = %.0f jobs/s (1 connection, %d goroutines)\n", opts.Jobs, round(submit.d), submit.rate, opts.Submitters)
	add("submit_bg_jobs_per_s", submit.rate)

	drain1, err := b.drainPhase(ctx, b.run+"_a", opts.Jobs, 1)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "drain1: %d jobs in %v = %.0f jobs/s (1 worker connection)\n", opts.Jobs, round(drain1.d), drain1.rate)
	add("drain1_jobs_per_s", drain1.rate)

	if _, err := b.submitPhase(ctx, "b", opts.Jobs); err != nil {
		return err
	}
	drain4, err := b.drainPhase(ctx, b.run+"_b", opts.Jobs, 4)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "drain4: %d jobs in %v = %.0f jobs/s (4 worker connections)\n", opts.Jobs, round(drain4.d), drain4.rate)
	add("drain4_jobs_per_s", drain4.rate)

	fgJobs := max(opts.Jobs/20, 100)
	for _, clients := range []int{1, 4} {
		fg, err := b.foregroundPhase(ctx, fgJobs, clients)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "fg_rtt: %d round trips in %v = %.0f/s (%d concurrent caller%s)\n", fgJobs, round(fg.d), fg.rate, clients, plural(clients))
		if clients == 1 {
			add("fg_rtt_per_s", fg.rate)
		} else {
			add("fg_rtt4_per_s", fg.rate)
		}
	}

	if opts.Compare {
		cli, err := b.cliPhase(ctx, opts.CLIJobs)
		switch {
		case errors.Is(err, exec.ErrNotFound):
			fmt.Fprintf(out, "cli_submit: skipped, gearman CLI not on PATH (apt-get install gearman-tools)\n")
		case err != nil:
			return err
		default:
			fmt.Fprintf(out, "cli_submit: %d jobs in %v = %.0f jobs/s (gearman -b -N, one job per line)\n", opts.CLIJobs, round(cli.d), cli.rate)
			fmt.Fprintf(out, "ratio_vs_cli: %.1fx\n", submit.rate/cli.rate)
			add("cli_submit_jobs_per_s", cli.rate)
			summary = append(summary, fmt.Sprintf("ratio_vs_cli=%.1f", submit.rate/cli.rate))
		}
	}
	fmt.Fprintln(out, "summary "+strings.Join(summary, " "))
	return nil
}

type bench struct {
	opts    Options
	out     io.Writer
	run     string
	payload []byte
	admin   *gearman.Admin
}

type result struct {
	d    time.Duration
	rate float64
}

func newResult(n int, d time.Duration) result {
	return result{d: d, rate: float64(n) / d.Seconds()}
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// submitPhase submits n background jobs to run_suffix from Submitters
// goroutines sharing one client connection.
func (b *bench) submitPhase(ctx context.Context, suffix string, n int) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout)
	defer cancel()
	fn := b.run + "_" + suffix
	c := gearman.NewClient([]string{b.opts.Server}, gearman.ClientOptions{Logger: b.opts.Logger})
	defer c.Close()
	if _, err := c.Echo(ctx, nil); err != nil { // connect before timing
		return result{}, fmt.Errorf("gearbench: connect client: %w", err)
	}
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range b.opts.Submitters {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := c.Submit(ctx, fn, "", b.payload, gearman.PriorityNormal, true); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if firstErr != nil {
		return result{}, fmt.Errorf("gearbench: submit to %s: %w", fn, firstErr)
	}
	return newResult(n, d), nil
}

// drainPhase times workers with conns connections completing the n jobs
// queued on fn. Each connection keeps several grabs in flight so that a job
// is already on its way while the previous one is being completed.
func (b *bench) drainPhase(ctx context.Context, fn string, n, conns int) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout)
	defer cancel()
	var done atomic.Int64
	finished := make(chan struct{})
	start := time.Now()
	w := gearman.NewWorker([]string{b.opts.Server}, []string{fn}, func(context.Context, *gearman.Job) ([]byte, error) {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil, nil
	}, gearman.WorkerOptions{Logger: b.opts.Logger, Connections: conns, InFlight: 8, ClientID: b.run})
	defer w.Close()
	select {
	case <-finished:
	case <-ctx.Done():
		return result{}, fmt.Errorf("gearbench: drain %s: %d of %d jobs after %v: %w", fn, done.Load(), n, round(time.Since(start)), ctx.Err())
	}
	d := time.Since(start)
	if err := w.Shutdown(ctx); err != nil {
		return result{}, fmt.Errorf("gearbench: stop workers: %w", err)
	}
	return newResult(n, d), nil
}

// foregroundPhase times n foreground round trips (submit, worker run,
// result back) from the given number of concurrent callers.
func (b *bench) foregroundPhase(ctx context.Context, n, callers int) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout)
	defer cancel()
	fn := fmt.Sprintf("%s_fg%d", b.run, callers)
	w := gearman.NewWorker([]string{b.opts.Server}, []string{fn}, func(_ context.Context, job *gearman.Job) ([]byte, error) {
		return job.Data, nil
	}, gearman.WorkerOptions{Logger: b.opts.Logger, Connections: min(callers, 2), InFlight: callers, ClientID: b.run})
	defer w.Close()
	c := gearman.NewClient([]string{b.opts.Server}, gearman.ClientOptions{Logger: b.opts.Logger})
	defer c.Close()
	// Warm up: connect both sides, and wait until the worker is registered.
	if _, err := c.Do(ctx, fn, "", b.payload, gearman.PriorityNormal); err != nil {
		return result{}, fmt.Errorf("gearbench: warm-up job on %s: %w", fn, err)
	}
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range callers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				res, err := c.Do(ctx, fn, "", b.payload, gearman.PriorityNormal)
				if err == nil && len(res) != len(b.payload) {
					err = fmt.Errorf("result of %d bytes, want %d", len(res), len(b.payload))
				}
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if firstErr != nil {
		return result{}, fmt.Errorf("gearbench: foreground job on %s: %w", fn, firstErr)
	}
	if err := w.Shutdown(ctx); err != nil {
		return result{}, fmt.Errorf("gearbench: stop workers: %w", err)
	}
	return newResult(n, d), nil
}

// cliPhase times `gearman -b -N -f fn` submitting one background job per
// line of its standard input, then drains the jobs it queued.
func (b *bench) cliPhase(ctx context.Context, n int) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout)
	defer cancel()
	bin, err := exec.LookPath("gearman")
	if err != nil {
		return result{}, err
	}
	host, port, _ := net.SplitHostPort(b.opts.Server)
	fn := b.run + "_cli"
	line := append(bytes.ReplaceAll(b.payload, []byte("\n"), []byte(" ")), '\n')
	stdin := bytes.Repeat(line, n)
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-b", "-N", "-f", fn)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("gearbench: %s: %w: %s", cmd, err, strings.TrimSpace(stderr.String()))
	}
	d := time.Since(start)
	queued := 0
	if st, err := b.admin.Status(ctx); err == nil {
		for _, s := range st {
			if s.Name == fn {
				queued = s.Total
			}
		}
	}
	if queued != n {
		fmt.Fprintf(b.out, "cli_submit: warning: %d jobs queued, want %d\n", queued, n)
	}
	if queued > 0 {
		if _, err := b.drainPhase(ctx, fn, queued, 4); err != nil {
			return result{}, err
		}
	}
	return newResult(n, d), nil
}

// ParseSummary parses the last "summary k=v ..." line of Run's output.
func ParseSummary(out string) (map[string]float64, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	rest, ok := strings.CutPrefix(last, "summary ")
	if !ok {
		return nil, fmt.Errorf("gearbench: last line %q is not a summary", last)
	}
	m := map[string]float64{}
	for _, kv := range strings.Fields(rest) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("gearbench: summary field %q", kv)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("gearbench: summary field %q: %w", kv, err)
		}
		m[k] = f
	}
	return m, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
