package sender

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// DaemonConfig configures a [Daemon].
type DaemonConfig struct {
	// Sender delivers and spools; required, and it should have a spool.
	Sender *Sender
	// Socket is the path of a Unix socket to listen on; empty for none.
	Socket string
	// Stdin is a stream of lines; nil for none. Reading ends at EOF, the
	// daemon keeps running.
	Stdin io.Reader
	// Delimiter separates fields of input lines (see [ParseLine]).
	Delimiter string
	// Complete fills in what a line does not carry (times, type, latency);
	// nil sets start and finish to now.
	Complete func(Result) Result
	// DrainInterval is the pause between attempts to deliver the spool;
	// 0 means 5s, a compromise between catching a returning bridge quickly
	// and not hammering one that is down.
	DrainInterval time.Duration
	// BatchSize is the number of lines collected into one submit; 0 means
	// DefaultBatchSize.
	BatchSize int
	// FlushInterval bounds how long a line waits for its batch to fill;
	// 0 means 50ms.
	FlushInterval time.Duration
	Logger        *slog.Logger
}

// Daemon delivers the spool continuously and takes results on a Unix socket
// and a stream, for high-rate producers (`gearbridge send --daemon`).
//
// Socket protocol: a client writes lines in send_gearman's third input
// format and closes its writing side; the daemon answers, after every
// result is delivered or durably spooled, with one "error line N: …" line
// per bad line and then "<n> data packet(s) accepted." and closes.
type Daemon struct {
	cfg DaemonConfig
	log *slog.Logger
}

// NewDaemon returns a daemon; Run starts it.
func NewDaemon(cfg DaemonConfig) (*Daemon, error) {
	if cfg.Sender == nil {
		return nil, errors.New("daemon: no sender")
	}
	if cfg.DrainInterval <= 0 {
		cfg.DrainInterval = 5 * time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 50 * time.Millisecond
	}
	if cfg.Complete == nil {
		cfg.Complete = func(r Result) Result {
			now := time.Now()
			r.Start, r.Finish = now, now
			return r
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Daemon{cfg: cfg, log: log}, nil
}

// Run serves until ctx ends, then stops taking input, finishes the batches
// in hand (delivering or spooling them) and returns. Results already
// acknowledged to a socket client are durable.
func (d *Daemon) Run(ctx context.Context) error {
	var lis net.Listener
	if d.cfg.Socket != "" {
		var err error
		if lis, err = listenUnix(d.cfg.Socket); err != nil {
			return err
		}
		d.log.Info("send daemon listening", "socket", d.cfg.Socket)
	}
	var wg sync.WaitGroup
	if lis != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.accept(ctx, lis) }()
		context.AfterFunc(ctx, func() { _ = lis.Close() })
	}
	if d.cfg.Stdin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, bad := d.consume(ctx, d.cfg.Stdin, nil)
			d.log.Info("stdin stream ended", "accepted", n, "bad_lines", bad)
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.drainLoop(ctx) }()
	wg.Wait()
	if lis != nil {
		_ = os.Remove(d.cfg.Socket)
	}
	return nil
}

func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("daemon: socket %s is in use by another process", path)
		}
		_ = os.Remove(path) // stale socket of a daemon that died
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return lis, nil
}

func (d *Daemon) accept(ctx context.Context, lis net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := lis.Accept()
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("accept on send socket", "err", err)
			}
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
			defer stop()
			var errs []string
			n, _ := d.consume(ctx, c, func(msg string) { errs = append(errs, msg) })
			w := bufio.NewWriter(c)
			for _, e := range errs {
				fmt.Fprintln(w, e)
			}
			fmt.Fprintf(w, "%d data packet(s) accepted.\n", n)
			_ = w.Flush()
		}()
	}
}

// consume reads lines from r in batches and submits them. It returns the
// number of results delivered or spooled and the number of bad lines.
func (d *Daemon) consume(ctx context.Context, r io.Reader, report func(string)) (accepted, bad int) {
	lines := make(chan string, d.cfg.BatchSize)
	done := make(chan struct{})
	defer close(done)
	// The reader ends at EOF or a read error; a stdin that never ends keeps
	// it blocked in Read until the process exits, which is why consume
	// itself also watches ctx.
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
		if err := sc.Err(); err != nil && ctx.Err() == nil {
			d.log.Warn("read results", "err", err)
		}
	}()
	lineNo := 0
	var batch []Result
	flush := func() {
		if len(batch) == 0 {
			return
		}
		rep, err := d.cfg.Sender.Submit(context.WithoutCancel(ctx), batch)
		accepted += rep.Accepted + rep.Spooled
		for _, f := range append(rep.Refused, rep.Failed...) {
			bad++
			msg := fmt.Sprintf("error: %s/%s not accepted: %s", f.Result.Host, f.Result.Service, f.Reason)
			d.log.Error("result not accepted", "host", f.Result.Host, "service", f.Result.Service, "reason", f.Reason)
			if report != nil {
				report(msg)
			}
		}
		if err != nil {
			d.log.Error("results lost: neither delivered nor spooled", "results", len(rep.Failed), "err", err)
		}
		batch = batch[:0]
	}
	add := func(line string) {
		lineNo++
		if line == "" || line == "\r" {
			return
		}
		res, err := ParseLine(line, d.cfg.Delimiter)
		if err != nil {
			bad++
			if report != nil {
				report(fmt.Sprintf("error line %d: %v", lineNo, err))
			}
			d.log.Warn("bad result line", "line", lineNo, "err", err)
			return
		}
		batch = append(batch, d.cfg.Complete(res))
	}
	timer := time.NewTimer(d.cfg.FlushInterval)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				flush()
				return accepted, bad
			}
			add(line)
			if len(batch) >= d.cfg.BatchSize {
				flush()
			}
		case <-timer.C:
			flush()
			timer.Reset(d.cfg.FlushInterval)
		case <-ctx.Done():
			// Lines already read are taken too: a stream reader has no
			// other way to learn that they were not.
			for {
				select {
				case line, ok := <-lines:
					if ok {
						add(line)
						continue
					}
				default:
				}
				break
			}
			flush()
			return accepted, bad
		}
	}
}

// maxRefusedWait bounds the pause between attempts while the bridge
// refuses the sender itself (certificate, permission): such a refusal
// needs an operator, and a minute is soon enough to notice the fix.
const maxRefusedWait = time.Minute

// stormSummaryEvery is how often a failure that goes on is logged again.
const stormSummaryEvery = 5 * time.Minute

func (d *Daemon) drainLoop(ctx context.Context) {
	wait := d.cfg.DrainInterval
	storm := retryStorm{every: stormSummaryEvery}
	for {
		rep, err := d.cfg.Sender.Drain(ctx)
		if rep.Delivered > 0 || rep.Dead > 0 {
			d.log.Info("delivered spooled results", "delivered", rep.Delivered, "dead", rep.Dead, "remaining", rep.Remaining)
		}
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			storm.recovered(d.log, now)
			wait = d.cfg.DrainInterval
		case rep.Refused:
			// Permanent until an operator acts: back off, up to a minute.
			wait = min(wait*2, max(maxRefusedWait, d.cfg.DrainInterval))
			storm.failed(d.log, now, "the bridge refuses this sender; check its certificate and the bridge's rules", err, rep.Remaining, wait)
		default:
			wait = d.cfg.DrainInterval
			storm.failed(d.log, now, "spool not delivered; retrying", err, rep.Remaining, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// retryStorm logs a failure that repeats as one line when it starts, a
// summary every so often while it lasts, and one line when it ends.
type retryStorm struct {
	every       time.Duration
	since, last time.Time
	attempts    int
}

func (r *retryStorm) failed(log *slog.Logger, now time.Time, msg string, err error, remaining int, wait time.Duration) {
	r.attempts++
	switch {
	case r.attempts == 1:
		r.since, r.last = now, now
		log.Warn(msg, "remaining", remaining, "next_in", wait, "err", err)
	case now.Sub(r.last) >= r.every:
		r.last = now
		log.Warn("still failing: "+msg, "attempts", r.attempts, "since", r.since, "remaining", remaining, "next_in", wait, "err", err)
	}
}

func (r *retryStorm) recovered(log *slog.Logger, now time.Time) {
	if r.attempts > 0 {
		log.Info("spool delivery works again", "failed_attempts", r.attempts, "after", now.Sub(r.since).Round(time.Second))
	}
	*r = retryStorm{every: r.every}
}
