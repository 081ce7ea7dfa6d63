package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
	"github.com/gearbridge/gearbridge/plugin"
)

// GearmanOptions connect a worker straight to gearmand, the way a classic
// Mod-Gearman worker works (`gearbridge worker --transport=gearman`): it
// holds the key, decodes jobs and encodes results itself. For a site that
// must not hold the key, use the bridge instead.
type GearmanOptions struct {
	// Servers are the gearmand addresses (host:port). The worker takes jobs
	// from every one of them and submits results to the first that
	// accepts, as classic workers do.
	Servers []string
	// DupServers each get a copy of every check result, as a passive
	// result (the classic dupserver option with dup_results_are_passive=yes,
	// its default). A copy is best effort: a failure is logged and counted.
	DupServers []string
	// DupResultsActive sends the copies as they are, active results
	// staying active (classic dup_results_are_passive=no).
	DupResultsActive bool
	// Codec decodes jobs and encodes results with the classic key.
	Codec *modgearman.Codec
	// ResultQueue is used for jobs that name no result queue; empty means
	// "check_results".
	ResultQueue string
}

// GearmanWorker runs jobs from gearmand directly. Create it with
// [NewGearman] and start it with [GearmanWorker.Run].
type GearmanWorker struct {
	cfg     Config
	g       GearmanOptions
	log     *slog.Logger
	m       *metrics
	load    func() ([3]float64, error)
	base    plugin.Options
	version string
	source  string
	status  string // worker_<identifier>

	// slots holds a token for every plugin running and every GRAB in
	// flight, so that at most Slots jobs are taken from all servers
	// together and none is grabbed ahead of a free slot.
	slots      chan struct{}
	dups       []*gearman.Client // set by Run before any job
	overloaded atomic.Bool
	busy       atomic.Int64
	done       atomic.Uint64
	started    atomic.Bool
}

// NewGearman checks cfg (Bridges are not used) and builds a worker for the
// gearmand servers of g. It connects nothing until Run.
func NewGearman(cfg Config, g GearmanOptions, deps Deps) (*GearmanWorker, error) {
	if err := cfg.validate(false); err != nil {
		return nil, fmt.Errorf("worker config: %w", err)
	}
	if len(g.Servers) == 0 {
		return nil, errors.New("worker: --transport=gearman needs at least one gearmand (--server)")
	}
	if g.Codec == nil {
		return nil, errors.New("worker: --transport=gearman needs the classic key (--key or --keyfile, or --encryption=no)")
	}
	if g.ResultQueue == "" {
		g.ResultQueue = "check_results"
	}
	if err := checkGearmanNames(cfg, g); err != nil {
		return nil, err
	}
	base, m, log, load, err := commonParts(cfg, deps)
	if err != nil {
		return nil, err
	}
	for _, srv := range g.Servers {
		m.setGearmand(srv, false) // 0 until connected
	}
	if deps.Registerer != nil {
		// Without a bridge there is no session to report: a gauge stuck
		// at 0 would only trip the remote worker's alert.
		deps.Registerer.Unregister(m.connected)
	}
	return &GearmanWorker{
		cfg:     cfg,
		g:       g,
		log:     log.With("identifier", cfg.Identifier),
		m:       m,
		load:    load,
		base:    base,
		version: deps.Version,
		// The classic Go worker's source text.
		source: "Mod-Gearman Worker @ " + cfg.Identifier,
		status: modgearman.StatusQueuePrefix + cfg.Identifier,
		slots:  make(chan struct{}, cfg.Slots),
	}, nil
}

// checkGearmanNames refuses names that gearmand would refuse, cut or garble.
// Such a name can never work, so it is a configuration error, not a
// connection to retry forever.
func checkGearmanNames(cfg Config, g GearmanOptions) error {
	var errs []error
	if err := gearman.ValidFunctionName(modgearman.StatusQueuePrefix + cfg.Identifier); err != nil {
		errs = append(errs, fmt.Errorf("identifier: status queue: %w", err))
	}
	if err := gearman.ValidFunctionName(g.ResultQueue); err != nil {
		errs = append(errs, fmt.Errorf("result queue: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("worker config: %w", err)
	}
	return nil
}

// Run serves the configured queues and the status queue on every server
// until ctx ends, reconnecting as needed. Then it drains: it takes no new
// jobs and lets running plugins finish and their results reach gearmand,
// bounded by Config.DrainTimeout. Jobs cut off by the bound are not
// completed; closing their connection makes gearmand requeue them. Run
// returns when every goroutine it started has finished. It may be called
// only once.
func (w *GearmanWorker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("worker: Run called twice")
	}
	defer closePerl(w.base, w.log)
	jobCtx, cancelJobs := context.WithCancel(context.Background())
	defer cancelJobs()
	results := gearman.NewClient(w.g.Servers, gearman.ClientOptions{Logger: w.log})
	defer results.Close()
	for _, d := range w.g.DupServers {
		c := gearman.NewClient([]string{d}, gearman.ClientOptions{Logger: w.log})
		defer c.Close()
		w.dups = append(w.dups, c)
	}

	var wg sync.WaitGroup
	if w.cfg.loadLimited() {
		wg.Go(func() { w.watchLoad(ctx) })
	}
	for _, srv := range w.g.Servers {
		wg.Go(func() {
			w.keepConn(ctx, srv, w.cfg.Queues, true, w.cfg.Slots, func(wc *gearman.WorkerConn) {
				w.grabLoop(ctx, jobCtx, wc, srv, results)
			})
		})
		wg.Go(func() {
			w.keepConn(ctx, srv, []string{w.status}, false, 1, func(wc *gearman.WorkerConn) {
				w.answerPings(ctx, wc)
			})
		})
	}
	w.log.Info("worker started on gearmand", "servers", w.g.Servers, "queues", w.cfg.Queues, "max_workers", w.cfg.Slots)
	<-ctx.Done()
	w.log.Info("draining: no new jobs; waiting for running checks", "running", w.busy.Load(), "timeout", w.cfg.DrainTimeout)
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(w.cfg.DrainTimeout):
		w.log.Warn("drain timed out; killing running plugins, gearmand requeues their jobs", "running", w.busy.Load())
		cancelJobs()
		<-finished
	}
	w.log.Info("worker stopped", "jobs_done", w.done.Load())
	return nil
}

// watchLoad keeps overloaded up to date while a load limit is set.
func (w *GearmanWorker) watchLoad(ctx context.Context) {
	t := time.NewTicker(w.cfg.LoadInterval)
	defer t.Stop()
	logged := false
	for {
		v, err := w.load()
		switch {
		case err != nil:
			if !logged {
				w.log.Warn("cannot read the load; load limits are not applied", "err", err)
				logged = true
			}
			w.overloaded.Store(false)
		default:
			logged = false
			over := w.cfg.overLimit(v)
			if over != w.overloaded.Swap(over) {
				if over {
					w.log.Info("load above the limits; taking no new jobs", "load1", v[0], "load5", v[1], "load15", v[2])
				} else {
					w.log.Info("load below the limits again; taking jobs", "load1", v[0], "load5", v[1], "load15", v[2])
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// keepConn keeps one worker connection to server with queues registered
// and loops goroutines running loop on it, until ctx ends; it reconnects
// when the connection fails. The primary (job) connection feeds the
// reconnect and connect-failure metrics and logs at info and warning
// level; the status connection, which fails along with it, logs at debug
// level only.
//
// Checks and status pings have connections of their own, as the classic
// workers have: a ping must be answered while every slot runs a plugin,
// and a connection whose grabs wait for a free slot cannot take it.
func (w *GearmanWorker) keepConn(ctx context.Context, server string, queues []string, primary bool, loops int, loop func(*gearman.WorkerConn)) {
	bo := newRetryBackoff(w.cfg.BackoffMin, w.cfg.BackoffMax)
	first := true
	info, warn := slog.LevelInfo, slog.LevelWarn
	if !primary {
		info, warn = slog.LevelDebug, slog.LevelDebug
	}
	for ctx.Err() == nil {
		wc, err := w.connect(ctx, server, queues)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := bo.next()
			if primary {
				w.m.connectFailures.Inc()
				w.m.setGearmand(server, false)
			}
			w.log.Log(ctx, warn, "cannot connect to gearmand; retrying", "server", server, "queues", len(queues), "in", d, "err", err)
			sleepFor(ctx, d)
			continue
		}
		bo.reset()
		if primary && !first {
			w.m.reconnects.Inc()
		}
		if primary {
			w.m.setGearmand(server, true)
		}
		first = false
		w.log.Log(ctx, info, "connected to gearmand", "server", server, "queues", len(queues))
		var running sync.WaitGroup
		for range loops {
			running.Go(func() { loop(wc) })
		}
		running.Wait()
		cause := wc.Err()
		if primary {
			w.m.setGearmand(server, false)
		}
		// Unfinished jobs (cut off by the drain timeout) go back to the
		// queue.
		wc.Close()
		if ctx.Err() != nil {
			return
		}
		d := bo.next()
		w.log.Log(ctx, warn, "gearmand connection lost; reconnecting", "server", server, "queues", len(queues), "in", d, "err", cause)
		sleepFor(ctx, d)
	}
}

func (w *GearmanWorker) connect(ctx context.Context, server string, queues []string) (*gearman.WorkerConn, error) {
	wc, err := gearman.DialWorker(ctx, server, gearman.WorkerOptions{Logger: w.log, ClientID: w.cfg.Identifier})
	if err != nil {
		return nil, err
	}
	for _, q := range queues {
		if err := wc.CanDo(q); err != nil {
			wc.Close()
			return nil, fmt.Errorf("register queue %q on %s: %w", q, server, err)
		}
	}
	return wc, nil
}

// answerPings answers every ping on the status queue worker_<identifier>
// with the status line, needing no slot, until ctx ends or the connection
// fails.
func (w *GearmanWorker) answerPings(ctx context.Context, wc *gearman.WorkerConn) {
	for {
		gj, err := wc.Grab(ctx)
		if err != nil {
			return
		}
		text := modgearman.WorkerStatus(w.cfg.Identifier, w.cfg.Slots, int(w.busy.Load()), w.version, w.done.Load())
		if err := wc.Complete(gj.Handle, []byte(text)); err != nil {
			w.log.Debug("answer status ping", "err", err)
			return
		}
	}
}

// grabLoop takes one job at a time while a slot is free and the load
// allows it, and sleeps on the connection when gearmand has none.
func (w *GearmanWorker) grabLoop(ctx, jobCtx context.Context, wc *gearman.WorkerConn, server string, results resultSubmitter) {
	for {
		for w.overloaded.Load() {
			if !sleepFor(ctx, w.cfg.LoadInterval) {
				return
			}
		}
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		job, err := wc.TryGrab(ctx)
		if err != nil || job == nil {
			<-w.slots
			if err != nil {
				return // ctx ended or the connection is gone
			}
			if err := wc.Sleep(ctx); err != nil {
				return
			}
			continue
		}
		w.handle(jobCtx, wc, server, job, results)
		<-w.slots
	}
}

// handle runs one job and answers it: a check with its result on the
// result queue before the job is completed, an event handler or
// notification by completing it. A job that can never succeed anywhere is
// failed (WORK_FAIL), so that gearmand drops it instead of requeueing it
// to the next worker.
func (w *GearmanWorker) handle(ctx context.Context, wc *gearman.WorkerConn, server string, gj *gearman.Job, results resultSubmitter) {
	plain, err := w.g.Codec.Decode(gj.Data)
	if err != nil {
		// No worker with this key can run it: fail it, as classic workers
		// do, and count it.
		w.refuse(wc, server, gj, "discarded job that does not decode; check the encryption key", err)
		return
	}
	job, err := modgearman.ParseJob(plain)
	if err != nil {
		// Malformed, or a result queue gearmand cannot take: no worker
		// could answer it.
		w.refuse(wc, server, gj, "discarded invalid job", err)
		return
	}
	w.m.received.Inc()
	res, ran := w.run(ctx, job)
	if !ran {
		// Cut off by the drain timeout: not completed, so gearmand
		// requeues it when the connection closes.
		w.m.discarded.WithLabelValues(discardDrainTimeout).Inc()
		return
	}
	if job.Type.HasResult() {
		if err := w.submit(ctx, job, res, results); err != nil {
			if !gearman.Permanent(err) {
				// Cut off by the drain timeout and not completed:
				// gearmand requeues it.
				w.m.discarded.WithLabelValues(discardDrainTimeout).Inc()
				return
			}
			// Refused for good: running it again would not help.
			w.m.discarded.WithLabelValues(discardResultRefused).Inc()
			w.log.Error("result can never be submitted; failing the job", "server", server, "handle", gj.Handle,
				"host", job.HostName, "service", job.ServiceDescription, "err", err)
			if ferr := wc.Fail(gj.Handle); ferr != nil {
				w.log.Debug("fail job", "handle", gj.Handle, "err", ferr)
			}
			return
		}
	}
	if err := wc.Complete(gj.Handle, nil); err != nil {
		// After a gearmand restart the handle is unknown; the result is on
		// the result queue, which is what counts.
		w.log.Debug("complete job", "handle", gj.Handle, "err", err)
	}
	w.done.Add(1)
	// One line per job at debug level, as the classic worker's debug=1.
	w.log.Debug("job done", "queue", gj.Function, "host", job.HostName, "service", job.ServiceDescription,
		"rc", res.ReturnCode, "duration", res.FinishTime.Sub(res.StartTime))
}

// refuse fails a job that no worker can run, logs why once and counts it.
func (w *GearmanWorker) refuse(wc *gearman.WorkerConn, server string, gj *gearman.Job, msg string, err error) {
	w.m.invalid.Inc()
	w.log.Error(msg, "server", server, "queue", gj.Function, "handle", gj.Handle, "err", err)
	if ferr := wc.Fail(gj.Handle); ferr != nil {
		w.log.Debug("fail invalid job", "handle", gj.Handle, "err", ferr)
	}
}

// run runs the job's plugin, or answers it as too old. It reports false
// when ctx ended while the plugin ran.
func (w *GearmanWorker) run(ctx context.Context, job modgearman.Job) (modgearman.Result, bool) {
	now := time.Now()
	if w.cfg.MaxAge > 0 && !job.CoreTime.IsZero() && now.Sub(job.CoreTime) > w.cfg.MaxAge {
		w.m.tooOld.Inc()
		w.log.Info("job older than max-age; not started", "host", job.HostName, "service", job.ServiceDescription)
		return job.Answer(3, "Could not start check in time (worker: "+w.cfg.Identifier+")", now, now, w.source), true
	}
	opt := w.base
	opt.Timeout = w.cfg.JobTimeout
	if job.Timeout > 0 {
		opt.Timeout = job.Timeout
	}
	opt.Kind = plugin.KindOf(string(job.Type))
	w.m.running.Set(float64(w.busy.Add(1)))
	r := plugin.Run(ctx, job.CommandLine, opt)
	w.m.running.Set(float64(w.busy.Add(-1)))
	if ctx.Err() != nil {
		return modgearman.Result{}, false
	}
	w.m.pluginDone(r)
	if r.EarlyTimeout {
		w.m.timeouts.Inc()
	}
	if r.Err != nil {
		w.log.Warn("plugin could not be run", "host", job.HostName, "service", job.ServiceDescription, "err", r.Err)
	}
	return job.Answer(r.ReturnCode, r.Output, r.StartTime, r.FinishTime, w.source), true
}

// submit puts the result on the job's result queue, retrying until gearmand
// takes it. It returns the error when ctx ends first, or at once when the
// error is permanent (gearman.Permanent): such a submit fails the same way
// every time, and retrying it would hold the job's slot for good.
func (w *GearmanWorker) submit(ctx context.Context, job modgearman.Job, res modgearman.Result, results resultSubmitter) error {
	queue := job.ResultQueue
	if queue == "" {
		queue = w.g.ResultQueue
	}
	payload := w.g.Codec.Encode(res.Marshal())
	bo := newRetryBackoff(50*time.Millisecond, 2*time.Second)
	for {
		_, err := results.Submit(ctx, queue, "", payload, gearman.PriorityNormal, true)
		if err == nil {
			w.m.resultsSent.Inc()
			w.copyToDups(ctx, queue, res)
			return nil
		}
		if gearman.Permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			w.log.Error("result not submitted before the drain timeout; gearmand requeues the job", "host", job.HostName, "service", job.ServiceDescription, "err", err)
			return err
		}
		d := bo.next()
		w.log.Warn("submit result failed; retrying", "queue", queue, "in", d, "err", err)
		if !sleepFor(ctx, d) {
			return ctx.Err()
		}
	}
}

// copyToDups sends res to every dupserver, as a passive result unless
// DupResultsActive.
func (w *GearmanWorker) copyToDups(ctx context.Context, queue string, res modgearman.Result) {
	if len(w.dups) == 0 {
		return
	}
	if !w.g.DupResultsActive {
		res.Type = modgearman.ResultPassive
	}
	payload := w.g.Codec.Encode(res.Marshal())
	for i, d := range w.dups {
		if _, err := d.Submit(ctx, queue, "", payload, gearman.PriorityNormal, true); err != nil {
			w.m.dupErrors.Inc()
			w.log.Warn("dupserver did not take a result copy", "dupserver", w.g.DupServers[i], "queue", queue, "err", err)
		}
	}
}

// resultSubmitter is the part of *gearman.Client that puts results on
// their queue; tests replace it.
type resultSubmitter interface {
	Submit(ctx context.Context, fn, unique string, data []byte, prio gearman.Priority, background bool) (string, error)
}

// sleepFor waits d or until ctx ends; it reports whether d passed.
func sleepFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
