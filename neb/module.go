package neb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
	"github.com/gearbridge/gearbridge/plugin"
)

// Check options of the core (identical in Naemon and Nagios 4).
const (
	CheckOptionForceExecution = 1
	CheckOptionFreshnessCheck = 2
	CheckOptionOrphanCheck    = 4
)

// Check is what the cgo side copies out of a check or event handler
// nebstruct before calling Module.Check.
type Check struct {
	Kind               Kind
	HostName           string
	ServiceDescription string
	// CommandLine is the fully macro-expanded command line.
	CommandLine string
	// Timeout is the check timeout the core passed.
	Timeout time.Duration
	// Latency is the core's latency at the callback (negative is clamped).
	Latency time.Duration
	// CheckOptions is the check_result's options ORed with the object's.
	CheckOptions int
}

// Action tells the core what to do with an intercepted check.
type Action int

// Actions returned in a Decision.
const (
	// ActionLocal: the core runs it (return NEB_OK).
	ActionLocal Action = iota
	// ActionOverride: the module took it (return OVERRIDE, set is_executing).
	ActionOverride
	// ActionCancel: not submitted; the core reschedules it (return CANCEL).
	ActionCancel
)

// Decision is the answer of Module.Check.
type Decision struct {
	Action Action
	Queue  string
	// Reason says why a check was not submitted (ActionCancel, or
	// ActionOverride with an explicit result).
	Reason string
}

// Errors of the submit path, wrapped in Decision reasons and results.
var (
	ErrQueueFull     = errors.New("submit queue full")
	ErrNotRunning    = errors.New("module not running")
	ErrInvalidTarget = errors.New("invalid job")
)

// Options are the dependencies and tunables of a Module.
type Options struct {
	// Logger receives module events; nil discards them.
	Logger *slog.Logger
	// Sink receives results for the core (an Outbox's Push). Required.
	Sink func(CheckResult) bool
	// CancelHonoured is true on cores that reschedule a check whose
	// INITIATE callback returned CANCEL (Naemon). When false (Nagios 4)
	// a check that cannot be submitted is overridden and answered with an
	// explicit UNKNOWN result.
	CancelHonoured bool
	// QueueSize bounds the submit queue. Default 10000.
	QueueSize int
	// Submitters is the number of goroutines submitting. Default 16.
	Submitters int
	// ResultsInFlight is how many results each result worker connection
	// holds at once. Default 8: the handler only decodes and queues for the
	// core, so reading is bound by round trips to gearmand, which a loaded
	// machine makes long. Results of different checks may then be taken
	// in another order, as with several result workers.
	ResultsInFlight int
	// SubmitTimeout bounds one submission. Default: the configured
	// gearman_connection_timeout, else 5s.
	SubmitTimeout time.Duration
	// Version is reported in the "check" ping reply.
	Version string
	// Hostname is reported in the "check" ping reply.
	Hostname string
	// Now replaces time.Now in tests.
	Now func() time.Time
	// Watchdog keeps the submitted checks until their result arrives; the
	// broker module passes one that outlives a reload. Nil: a new one.
	Watchdog *Watchdog
	// WatchdogPeriod is how often expired checks are looked for. Default
	// 500ms.
	WatchdogPeriod time.Duration
	// Health is what the module knows about gearmand; the broker module
	// passes one that outlives a reload. Nil: a new one.
	Health *Health
}

// Stats are the module's counters.
type Stats struct {
	Intercepted     uint64 // checks and handlers taken from the core
	Local           uint64 // left to the core
	Submitted       uint64 // accepted by gearmand
	NotSubmitted    uint64 // refused at the callback (queue full, down)
	QueueFull       uint64
	GearmandDown    uint64
	SubmitFailed    uint64 // enqueued, then failed to reach gearmand
	ExplicitResults uint64 // results made for checks that were not submitted
	DummyAnswered   uint64 // internal check_dummy
	Orphans         uint64 // orphan results for the core's orphan re-checks
	// WatchdogOrphans are submitted checks that had no result by their
	// timeout plus orphan_grace; each got the orphan result unless
	// orphan_host_checks/orphan_service_checks is off.
	WatchdogOrphans uint64
	// OrphansDeferred are submitted checks past their deadline that were
	// not declared orphaned at once because the module was behind reading
	// its result queue (results queued in gearmand or being handled): a
	// real result may be waiting there. Each counts once; it is orphaned
	// when the module has caught up and its result still did not come.
	OrphansDeferred  uint64
	Results          uint64 // results received from the result queue
	BadResults       uint64 // undecodable or unparsable result workloads
	LatencyDiscarded uint64 // absurd latencies replaced by 0
	Pings            uint64 // "check" pings answered
	SinkFull         uint64 // results the sink refused
	Perfdata         uint64 // perfdata jobs enqueued
	// Held counts checks, handlers and notifications that waited in the
	// queue because gearmand was unreachable (each once).
	Held uint64
	// GivenBack counts checks handed back to the core's scheduler without
	// a result: held past gearmand_down_hold, refused because the queue
	// was full, or still queued when the module stopped.
	GivenBack uint64
	// OutageOrphans are submitted checks without a result by their
	// deadline whose job may have been lost with gearmand (a connection
	// to it died after the submission): given back, not answered with the
	// orphan result.
	OutageOrphans uint64
	// HandlersLost are event handlers that could not be submitted; the
	// core cannot be asked to run them any more.
	HandlersLost uint64
	// Notifications submitted, left to the core (not routed, gearmand
	// down, queue full) and lost (enqueued, then never submitted).
	Notifications      uint64
	NotificationsLocal uint64
	NotificationsLost  uint64
	// UniqMerged are checks gearmand merged into their previous job, whose
	// result had already come (same unique key, its WORK_COMPLETE not yet
	// seen by gearmand): submitted again under a key of their own.
	UniqMerged uint64
}

type counters struct {
	intercepted, local, submitted, notSubmitted, queueFull, down, submitFailed,
	explicit, dummy, orphans, watchdogOrphans, results, bad, latencyDiscarded, pings, sinkFull, perfdata atomic.Uint64
	held, givenBack, outageOrphans, handlersLost, notifications, notificationsLocal, notificationsLost atomic.Uint64
	uniqMerged                                                                                         atomic.Uint64
	orphansDeferred                                                                                    atomic.Uint64
	submitNanos                                                                                        atomic.Uint64
}

type submission struct {
	check    Check
	queue    string
	uniq     string
	job      modgearman.Job
	raw      string // payload text instead of job (perfdata)
	prio     gearman.Priority
	expected bool // a result is expected (checks, not event handlers)
	notify   bool // a notification
	// since is when the submission started waiting for gearmand (zero:
	// it never did); after gearmand_down_hold it is given back.
	since time.Time
}

// Module is one configured broker module instance. Check and the result
// handling are safe for concurrent use; Start and Close are idempotent.
type Module struct {
	uniqSeq atomic.Uint64 // suffixes of keys for checks gearmand merged (submitOne)

	cfg   Config
	opts  Options
	log   *slog.Logger
	codec *modgearman.Codec
	now   func() time.Time
	watch *Watchdog

	// pending is where Check puts submissions: appending under a mutex
	// wakes no goroutine, so the core's main thread never pays for a
	// scheduler wake-up. The dispatcher collects it every millisecond.
	pendMu  sync.Mutex
	pending []submission
	spare   []submission

	queue   chan submission // dispatcher → submitters, unbuffered
	health  *Health
	running atomic.Bool
	// inFlight counts the submissions the dispatcher took and no submitter
	// has finished yet (handed over or being submitted), so that Close can
	// wait for a check submitted just before a reload.
	inFlight atomic.Int64

	lastWarn   atomic.Int64 // unix nanoseconds of the last limited warning
	suppressed atomic.Uint64
	c          counters
	started    time.Time

	mu     sync.Mutex
	state  int // 0 new, 1 running, 2 closed
	client *gearman.Client
	worker *gearman.Worker
	// admins ask every gearmand how many results wait for the result
	// workers before a check is declared orphaned (see caughtUp).
	admins []*gearman.Admin
	// lastDeferLog rate-limits the line about deferred orphans.
	lastDeferLog atomic.Int64
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	closeErr     error
}

// New returns a module for cfg. It starts nothing; call Start when the
// core's event loop starts.
func New(cfg Config, opts Options) (*Module, error) {
	if opts.Sink == nil {
		return nil, errors.New("neb: Options.Sink is required")
	}
	codec, err := modgearman.NewCodec(cfg.Secret, cfg.Encryption)
	if err != nil {
		return nil, fmt.Errorf("neb: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 10000
	}
	if opts.ResultsInFlight <= 0 {
		opts.ResultsInFlight = 8
	}
	if opts.Submitters <= 0 {
		opts.Submitters = 16
	}
	if opts.SubmitTimeout <= 0 {
		opts.SubmitTimeout = 5 * time.Second
		if cfg.GearmanConnectionTimeout > 0 {
			opts.SubmitTimeout = time.Duration(cfg.GearmanConnectionTimeout) * time.Millisecond
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.Watchdog == nil {
		opts.Watchdog = NewWatchdog()
	}
	if opts.WatchdogPeriod <= 0 {
		opts.WatchdogPeriod = defaultWatchdogPeriod
	}
	if opts.Health == nil {
		opts.Health = NewHealth()
	}
	m := &Module{cfg: cfg, opts: opts, log: opts.Logger, codec: codec, now: opts.Now,
		watch: opts.Watchdog, health: opts.Health, queue: make(chan submission)}
	return m, nil
}

// Config returns the module's configuration.
func (m *Module) Config() *Config { return &m.cfg }

// Start connects to gearmand and starts the submitters and the result
// workers. Calls after the first are no-ops.
func (m *Module) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != 0 {
		return
	}
	m.state = 1
	m.started = m.now()
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.client = gearman.NewClient(m.cfg.Servers, gearman.ClientOptions{Logger: m.log, DialTimeout: m.opts.SubmitTimeout,
		// A connection that dies between two submissions may have taken
		// queued jobs with it (a gearmand restart with a memory queue).
		OnConnectionLost: func(string, error) { m.markDown() }})
	for range m.opts.Submitters {
		m.wg.Add(1)
		go m.submitLoop(ctx)
	}
	m.wg.Add(3)
	go m.probeLoop(ctx)
	go m.dispatchLoop(ctx)
	go m.watchLoop(ctx)
	if m.cfg.LogStatsInterval > 0 {
		m.wg.Add(1)
		go m.statsLoop(ctx, time.Duration(m.cfg.LogStatsInterval)*time.Second)
	}
	if m.cfg.ResultWorkers > 0 {
		m.worker = gearman.NewWorker(m.cfg.Servers, []string{m.cfg.ResultQueue}, m.handleResult,
			gearman.WorkerOptions{Logger: m.log, Connections: m.cfg.ResultWorkers, InFlight: m.opts.ResultsInFlight, ClientID: "gearbridge-neb"})
		for _, addr := range m.cfg.Servers {
			m.admins = append(m.admins, gearman.NewAdmin(addr, gearman.AdminOptions{DialTimeout: m.opts.SubmitTimeout}))
		}
	}
	m.running.Store(true)
	m.log.Info("gearbridge neb started", "servers", m.cfg.Servers, "result_queue", m.cfg.ResultQueue,
		"result_workers", m.cfg.ResultWorkers)
}

// Close stops the module: new checks are refused, queued submissions are
// given until ctx ends to reach gearmand, then everything is closed. It may
// be called more than once.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != 1 {
		m.state = 2
		return m.closeErr
	}
	m.state = 2
	m.running.Store(false)
	if m.worker != nil {
		if err := m.worker.Shutdown(ctx); err != nil {
			m.closeErr = err
		}
	}
	// Let the dispatcher and the submitters empty the queue, bounded by ctx
	// and only while gearmand answers.
	for m.queued() > 0 && ctx.Err() == nil && m.health.Healthy() {
		time.Sleep(5 * time.Millisecond)
	}
	m.cancel()
	m.wg.Wait()
	// What is left never becomes a result: checks go back to the core's
	// scheduler.
	m.pendMu.Lock()
	left := m.pending
	m.pending = nil
	m.pendMu.Unlock()
	for i := range left {
		m.giveBack(&left[i], "the module stopped before gearmand took it")
	}
	_ = m.client.Close()
	for _, a := range m.admins {
		_ = a.Close()
	}
	return m.closeErr
}

// Stats returns a snapshot of the counters.
func (m *Module) Stats() Stats {
	c := &m.c
	return Stats{
		Intercepted: c.intercepted.Load(), Local: c.local.Load(), Submitted: c.submitted.Load(),
		NotSubmitted: c.notSubmitted.Load(), QueueFull: c.queueFull.Load(), GearmandDown: c.down.Load(),
		SubmitFailed: c.submitFailed.Load(), ExplicitResults: c.explicit.Load(), DummyAnswered: c.dummy.Load(),
		Orphans: c.orphans.Load(), WatchdogOrphans: c.watchdogOrphans.Load(), OrphansDeferred: c.orphansDeferred.Load(), Results: c.results.Load(), BadResults: c.bad.Load(),
		LatencyDiscarded: c.latencyDiscarded.Load(), Pings: c.pings.Load(), SinkFull: c.sinkFull.Load(),
		Perfdata: c.perfdata.Load(), Held: c.held.Load(), GivenBack: c.givenBack.Load(),
		OutageOrphans: c.outageOrphans.Load(), HandlersLost: c.handlersLost.Load(),
		Notifications: c.notifications.Load(), NotificationsLocal: c.notificationsLocal.Load(),
		NotificationsLost: c.notificationsLost.Load(), UniqMerged: c.uniqMerged.Load(),
	}
}

// Check routes one intercepted check or event handler and, when it is
// distributed, enqueues its job. It never blocks. o is only used during
// the call.
func (m *Module) Check(c *Check, o Objects) Decision {
	q, ok := Route(&m.cfg, c.Kind, o)
	if !ok {
		m.c.local.Add(1)
		return Decision{Action: ActionLocal}
	}
	if !m.running.Load() {
		m.c.local.Add(1)
		return Decision{Action: ActionLocal, Reason: ErrNotRunning.Error()}
	}
	m.c.intercepted.Add(1)
	now := m.now()
	isCheck := c.Kind == KindHost || c.Kind == KindService

	if isCheck && m.cfg.InternalCheckDummy {
		if r, ok := plugin.InternalDummy(c.CommandLine); ok {
			m.c.dummy.Add(1)
			m.deliver(CheckResult{HostName: c.HostName, ServiceDescription: c.ServiceDescription,
				ReturnCode: r.ReturnCode, ExitedOK: true, StartTime: now, FinishTime: now,
				Output: r.Output, Source: "gearbridge internal check_dummy", Received: now})
			return Decision{Action: ActionOverride, Queue: q}
		}
	}

	if isCheck && c.CheckOptions&CheckOptionOrphanCheck != 0 && m.orphanResultsOn(c.Kind) {
		// The core's own orphan re-check: answered at once, as classic.
		m.c.orphans.Add(1)
		m.orphanResult(c.Kind, c.HostName, c.ServiceDescription, q, now)
		return Decision{Action: ActionOverride, Queue: q}
	}

	s := m.buildSubmission(c, q, now)
	if !m.health.Healthy() {
		// gearmand is unreachable: the job waits in the queue for up to
		// gearmand_down_hold (a restart takes seconds).
		s.since = now
		m.c.down.Add(1)
	}
	if m.enqueue(s) {
		if !s.since.IsZero() {
			m.c.held.Add(1)
		}
		return Decision{Action: ActionOverride, Queue: q}
	}
	err := ErrQueueFull
	m.c.notSubmitted.Add(1)
	m.warnLimited("check not submitted", "queue", q, "host", c.HostName, "service", c.ServiceDescription, "err", err)
	reason := fmt.Sprintf("not submitted to queue '%s': %v", q, err)
	switch {
	case !isCheck:
		// Nothing can be reported for an event handler; the core must
		// not run it locally either (classic behaviour).
		m.c.handlersLost.Add(1)
		m.warnLimited("event handler lost", "host", c.HostName, "service", c.ServiceDescription, "err", err)
		return Decision{Action: ActionOverride, Queue: q, Reason: reason}
	case m.opts.CancelHonoured:
		// The core keeps its schedule: the next check is already planned.
		m.c.givenBack.Add(1)
		return Decision{Action: ActionCancel, Queue: q, Reason: reason}
	default:
		// Nagios 4 ignores CANCEL here: take the check and hand it back to
		// the scheduler from the main loop, without a result.
		m.giveBack(&s, reason)
		return Decision{Action: ActionOverride, Queue: q, Reason: reason}
	}
}

// markDown records that gearmand is unreachable (or a connection to it
// died), logging the change once.
func (m *Module) markDown() {
	if m.health.Down(m.now()) {
		m.log.Warn("gearmand unreachable: checks wait in the module for up to gearmand_down_hold, then go back to the core's scheduler",
			"gearmand_down_hold", m.cfg.GearmandDownHold)
	}
}

// giveBack settles a submission that will never reach gearmand without
// inventing a result: a check goes back to the core's scheduler (no state
// change, the next check runs as planned); an event handler or a
// notification is lost and counted, since the core cannot be asked to run
// it any more.
func (m *Module) giveBack(s *submission, reason string) {
	switch {
	case s.expected:
		m.c.givenBack.Add(1)
		m.warnLimited("check given back to the core's scheduler", "queue", s.queue, "host", s.check.HostName,
			"service", s.check.ServiceDescription, "reason", reason)
		now := m.now()
		m.deliver(CheckResult{HostName: s.check.HostName, ServiceDescription: s.check.ServiceDescription,
			GiveBack: true, Received: now})
	case s.notify:
		m.c.notificationsLost.Add(1)
		m.log.Error("notification lost", "host", s.check.HostName, "service", s.check.ServiceDescription,
			"reason", reason)
	case s.check.Kind.isEventHandler():
		m.c.handlersLost.Add(1)
		m.warnLimited("event handler lost", "host", s.check.HostName, "service", s.check.ServiceDescription,
			"reason", reason)
	default:
		m.warnLimited("perfdata lost", "queue", s.queue, "host", s.check.HostName,
			"service", s.check.ServiceDescription, "reason", reason)
	}
}

// orphanResultsOn reports whether orphan results are made for checks of
// kind k (orphan_host_checks, orphan_service_checks).
func (m *Module) orphanResultsOn(k Kind) bool {
	return (k == KindHost && m.cfg.OrphanHostChecks) || (k == KindService && m.cfg.OrphanServiceChecks)
}

// orphanResult delivers the classic orphan result for a check routed to q.
func (m *Module) orphanResult(k Kind, host, service, q string, now time.Time) {
	m.deliver(CheckResult{HostName: host, ServiceDescription: service,
		ReturnCode: m.cfg.OrphanReturn, ExitedOK: true, StartTime: now, FinishTime: now,
		Output: orphanOutput(k, q), Source: "gearbridge", Received: now})
}

// defaultCheckTimeout stands in for a check timeout the core did not pass:
// it is the classic job_timeout default.
const defaultCheckTimeout = 60 * time.Second

// defaultWatchdogPeriod bounds how late after its deadline an orphaned
// check is answered; a sweep of the in-flight map is cheap.
const defaultWatchdogPeriod = 500 * time.Millisecond

// watchLoop settles the submitted checks that had no result by their
// timeout plus orphan_grace. The results go through the sink, so they
// reach the core on its main thread.
func (m *Module) watchLoop(ctx context.Context) {
	defer m.wg.Done()
	defer m.recoverGoroutine("watchdog")
	t := time.NewTicker(m.opts.WatchdogPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.sweepOrphans(ctx, m.now())
	}
}

// sweepOrphans answers every expired check with the orphan result, or, when
// orphan results are off for its kind, only forgets it (as the classic
// module, which leaves it to the core's orphan check).
//
// A check is declared orphaned only once the module has caught up with its
// results since the check's deadline: every result that was waiting for the
// module then has been read and taken (see caughtUp). Until then it stays
// in flight, so that a result sitting unread in a backlog is never
// overtaken by an orphan result: our own delay must not become an alert.
func (m *Module) sweepOrphans(ctx context.Context, now time.Time) {
	var pending []Expired
	for _, e := range m.watch.Expired(now) {
		if !m.health.LostSince(e.Submitted) {
			pending = append(pending, e)
			continue
		}
		if !m.watch.Take(e) {
			continue // its result came meanwhile
		}
		// The job may have died with gearmand: our outage, not the
		// check's. The core schedules it again; no alert.
		m.c.outageOrphans.Add(1)
		m.c.givenBack.Add(1)
		m.warnLimited("check without result after a gearmand outage given back to the core's scheduler",
			"queue", e.Queue, "host", e.HostName, "service", e.ServiceDescription)
		m.deliver(CheckResult{HostName: e.HostName, ServiceDescription: e.ServiceDescription, GiveBack: true, Received: now})
	}
	if len(pending) == 0 {
		return
	}
	// Every pending deadline is at or before now, and now is taken before
	// gearmand is asked: "caught up" covers each of them.
	if ok, backlog := m.caughtUp(ctx); !ok {
		for _, e := range pending {
			if m.watch.Defer(e) {
				m.c.orphansDeferred.Add(1)
			}
		}
		m.logDeferred(len(pending), backlog)
		return
	}
	for _, e := range pending {
		if !m.watch.Take(e) {
			continue // its result came while gearmand was asked
		}
		m.c.watchdogOrphans.Add(1)
		m.warnLimited("check orphaned: no result by its timeout plus orphan_grace", "queue", e.Queue,
			"host", e.HostName, "service", e.ServiceDescription, "orphan_result", m.orphanResultsOn(e.Kind))
		if m.orphanResultsOn(e.Kind) {
			m.orphanResult(e.Kind, e.HostName, e.ServiceDescription, e.Queue, now)
		}
	}
}

// backlogTimeout bounds asking one gearmand for its result backlog.
const backlogTimeout = 2 * time.Second

// caughtUp reports whether every result that was waiting for the module
// when it was called has been read and taken, so that a check without a
// result by then really has none. It asks every configured gearmand for the
// result queue's jobs, queued plus being handled: a result handler marks
// its check answered (Watchdog.Done) before it completes the job, so a
// count of zero, read after the call began, means that every result
// submitted before the call reached the watchdog. What the handlers passed
// on and still waits in the sink for the core's main thread has already
// answered its check. A gearmand that cannot be asked may hold results: the
// module is not caught up (an outage's checks are given back, see
// sweepOrphans, and the core's own orphan check still exists). backlog
// names what is waiting, for the log.
//
// With no result workers the module reads no results, so none can be
// waiting for it.
func (m *Module) caughtUp(ctx context.Context) (ok bool, backlog string) {
	if len(m.admins) == 0 {
		return true, ""
	}
	type answer struct {
		addr  string
		total int
		err   error
	}
	answers := make([]answer, len(m.admins))
	var wg sync.WaitGroup
	for i, a := range m.admins {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, backlogTimeout)
			defer cancel()
			answers[i].addr = m.cfg.Servers[i]
			st, err := a.Status(ctx)
			if err != nil {
				answers[i].err = err
				return
			}
			for _, f := range st {
				if f.Name == m.cfg.ResultQueue {
					answers[i].total = f.Total
				}
			}
		})
	}
	wg.Wait()
	ok = true
	var b []byte
	for _, a := range answers {
		switch {
		case a.err != nil:
			b = fmt.Appendf(b, "%s: not answering (%v); ", a.addr, a.err)
		case a.total > 0:
			b = fmt.Appendf(b, "%s: %d results in queue '%s'; ", a.addr, a.total, m.cfg.ResultQueue)
		default:
			continue
		}
		ok = false
	}
	if len(b) > 2 {
		b = b[:len(b)-2]
	}
	return ok, string(b)
}

// logDeferred says, at most once per warnInterval, that n checks past their
// deadline wait because results are still waiting for the module.
func (m *Module) logDeferred(n int, backlog string) {
	now := time.Now().UnixNano()
	last := m.lastDeferLog.Load()
	if now-last < int64(warnInterval) || !m.lastDeferLog.CompareAndSwap(last, now) {
		return
	}
	m.log.Warn("checks past their deadline not declared orphaned yet: the module is behind reading its results",
		"checks", n, "backlog", backlog, "orphans_deferred", m.c.orphansDeferred.Load())
}

func (m *Module) explicitResult(c *Check, reason string, now time.Time) {
	m.c.explicit.Add(1)
	m.deliver(CheckResult{HostName: c.HostName, ServiceDescription: c.ServiceDescription,
		ReturnCode: 3, ExitedOK: true, StartTime: now, FinishTime: now,
		Output: "(gearbridge: check " + reason + ")", Source: "gearbridge", Received: now})
}

func (m *Module) deliver(r CheckResult) {
	if !m.opts.Sink(r) {
		m.c.sinkFull.Add(1)
	}
}

// BuildJob returns the job for c routed to queue q (spec §2.2–§2.4).
func BuildJob(cfg *Config, c *Check, q string, now time.Time) modgearman.Job {
	switch c.Kind {
	case KindHost, KindService:
		lat := max(c.Latency, 0)
		j := modgearman.Job{Type: modgearman.JobHost, ResultQueue: cfg.ResultQueue, TargetQueue: q,
			HostName: c.HostName, CoreTime: now.Add(-lat), Timeout: c.Timeout, CommandLine: c.CommandLine}
		if c.Kind == KindService {
			j.Type = modgearman.JobService
			j.ServiceDescription = c.ServiceDescription
		}
		return j
	default:
		return modgearman.Job{Type: modgearman.JobEventHandler, StartTime: now, CoreTime: now, CommandLine: c.CommandLine}
	}
}

// JobPriority returns the Gearman priority of c (spec §1.3).
func JobPriority(c *Check) gearman.Priority {
	if c.Kind == KindService {
		if c.CheckOptions&CheckOptionForceExecution != 0 {
			return gearman.PriorityHigh
		}
		return gearman.PriorityLow
	}
	return gearman.PriorityNormal
}

// JobUniq returns the unique id of c's job (spec §1.4), or "" for none.
func JobUniq(cfg *Config, c *Check) string {
	if !cfg.UseUniqJobs {
		return ""
	}
	switch c.Kind {
	case KindHost:
		return modgearman.Uniq(c.HostName)
	case KindService:
		return modgearman.Uniq(c.HostName, c.ServiceDescription)
	}
	return ""
}

func (m *Module) buildSubmission(c *Check, q string, now time.Time) submission {
	// Marshalling and encryption happen in the submitter, off the core's
	// main thread.
	return submission{check: *c, queue: q, uniq: JobUniq(&m.cfg, c), job: BuildJob(&m.cfg, c, q, now),
		prio: JobPriority(c), expected: c.Kind == KindHost || c.Kind == KindService}
}

func (m *Module) submitLoop(ctx context.Context) {
	defer m.wg.Done()
	defer m.recoverGoroutine("submitter")
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-m.queue:
			m.submitOne(ctx, s)
			m.inFlight.Add(-1)
		}
	}
}

// enqueue appends s to the bounded queue; false means it was full.
func (m *Module) enqueue(s submission) bool {
	m.pendMu.Lock()
	ok := len(m.pending) < m.opts.QueueSize
	if ok {
		m.pending = append(m.pending, s)
	}
	m.pendMu.Unlock()
	if !ok {
		m.c.queueFull.Add(1)
	}
	return ok
}

// dispatchPeriod is how often the dispatcher looks for new submissions
// when it found none: it bounds the delay a job waits before it is handed to
// a submitter, and costs about a thousand cheap wake-ups per second.
const dispatchPeriod = time.Millisecond

// dispatchLoop hands pending submissions to the submitters.
func (m *Module) dispatchLoop(ctx context.Context) {
	defer m.wg.Done()
	defer m.recoverGoroutine("dispatcher")
	for {
		if !m.health.Healthy() {
			// Nothing is handed out while gearmand is unreachable; what
			// waited longer than gearmand_down_hold goes back.
			m.expireHeld(m.now())
			select {
			case <-ctx.Done():
				return
			case <-time.After(holdPeriod):
			}
			continue
		}
		m.pendMu.Lock()
		if len(m.pending) == 0 {
			m.pendMu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(dispatchPeriod):
			}
			continue
		}
		// Swap buffers: batch and pending never share storage.
		batch := m.pending
		m.pending = m.spare[:0]
		m.spare = nil
		m.inFlight.Add(int64(len(batch)))
		m.pendMu.Unlock()
		for i := range batch {
			select {
			case m.queue <- batch[i]:
			case <-ctx.Done():
				// Stopping: the rest stays queued for Close to give back.
				m.pendMu.Lock()
				m.pending = append(m.pending, batch[i:]...)
				m.pendMu.Unlock()
				m.inFlight.Add(-int64(len(batch) - i))
				return
			}
			batch[i] = submission{}
		}
		m.spare = batch[:0]
	}
}

// holdPeriod is how often the dispatcher looks for expired holds while
// gearmand is unreachable.
const holdPeriod = 50 * time.Millisecond

// expireHeld gives back every queued submission that has waited for
// gearmand longer than gearmand_down_hold.
func (m *Module) expireHeld(now time.Time) {
	var expired []submission
	m.pendMu.Lock()
	keep := m.pending[:0]
	for _, s := range m.pending {
		if s.since.IsZero() {
			// Queued before the outage was known: it waits from now.
			s.since = now
			m.c.held.Add(1)
		}
		if m.holdExpired(&s, now) {
			expired = append(expired, s)
			continue
		}
		keep = append(keep, s)
	}
	clear(m.pending[len(keep):])
	m.pending = keep
	m.pendMu.Unlock()
	for i := range expired {
		m.giveBack(&expired[i], m.holdReason())
	}
}

// holdExpired reports whether s has waited for gearmand longer than
// gearmand_down_hold. Notifications wait as long as the module runs: a
// late notification is better than none.
func (m *Module) holdExpired(s *submission, now time.Time) bool {
	return !s.notify && now.Sub(s.since) >= m.cfg.GearmandDownHold
}

func (m *Module) holdReason() string {
	return fmt.Sprintf("gearmand unreachable for gearmand_down_hold (%v)", m.cfg.GearmandDownHold)
}

// requeue puts a submission that failed for a temporary reason back into
// the queue to wait for gearmand (the queue's bound was charged when it
// was first enqueued).
func (m *Module) requeue(s submission) {
	m.pendMu.Lock()
	m.pending = append(m.pending, s)
	m.pendMu.Unlock()
}

// queued returns the submissions not yet submitted.
func (m *Module) queued() int {
	m.pendMu.Lock()
	defer m.pendMu.Unlock()
	return len(m.pending) + int(m.inFlight.Load())
}

func (m *Module) submitOne(ctx context.Context, s submission) {
	defer m.recoverGoroutine("submit")
	sctx, cancel := context.WithTimeout(ctx, m.opts.SubmitTimeout)
	t0 := time.Now()
	payload := []byte(s.raw)
	if s.raw == "" {
		payload = s.job.Marshal()
	}
	if s.expected {
		// Tracked before the submission: a fast worker's result may come
		// back before Submit returns.
		timeout := s.check.Timeout
		if timeout <= 0 {
			timeout = defaultCheckTimeout
		}
		now := m.now()
		m.watch.Track(s.check.Kind, s.check.HostName, s.check.ServiceDescription, s.queue, now,
			now.Add(timeout+m.cfg.OrphanGrace))
	}
	encoded := m.codec.Encode(payload)
	handle, err := m.client.Submit(sctx, s.queue, s.uniq, encoded, s.prio, true)
	cancel()
	if err == nil && s.expected && s.uniq != "" && m.watch.Submitted(s.check.HostName, s.check.ServiceDescription, handle) {
		// Merged into the check's previous job, which is done: it would
		// never run. Submit it again under a key of its own.
		m.c.uniqMerged.Add(1)
		m.warnLimited("gearmand merged a check into its previous, finished job (same unique key); submitted again under a key of its own",
			"queue", s.queue, "host", s.check.HostName, "service", s.check.ServiceDescription, "handle", handle)
		sctx, cancel := context.WithTimeout(ctx, m.opts.SubmitTimeout)
		handle, err = m.client.Submit(sctx, s.queue, s.uniq+"-"+strconv.FormatUint(m.uniqSeq.Add(1), 36), encoded, s.prio, true)
		cancel()
		if err == nil {
			m.watch.Submitted(s.check.HostName, s.check.ServiceDescription, handle)
		}
	}
	if err == nil {
		m.c.submitted.Add(1)
		if s.notify {
			m.c.notifications.Add(1)
		}
		m.c.submitNanos.Add(uint64(time.Since(t0)))
		if m.health.Up() {
			m.log.Info("gearmand reachable again")
		}
		return
	}
	m.c.submitFailed.Add(1)
	if s.expected {
		m.watch.Done(s.check.HostName, s.check.ServiceDescription)
	}
	if ctx.Err() != nil {
		m.giveBack(&s, "the module stopped before gearmand took it")
		return
	}
	m.warnLimited("submit failed", "queue", s.queue, "host", s.check.HostName, "service", s.check.ServiceDescription, "err", err)
	if gearman.Permanent(err) {
		// gearmand refused this job for good (not an outage): say so.
		if s.expected {
			m.explicitResult(&s.check, fmt.Sprintf("not submitted to queue '%s': %v", s.queue, err), m.now())
		} else {
			m.giveBack(&s, err.Error())
		}
		return
	}
	m.markDown()
	now := m.now()
	if s.since.IsZero() {
		s.since = now
		m.c.held.Add(1)
	}
	if m.holdExpired(&s, now) {
		m.giveBack(&s, m.holdReason())
		return
	}
	m.requeue(s)
}

// statsLoop logs what the module did in every interval (the classic
// log_stats_interval): jobs submitted and their rate, results taken, and
// every way a check did not reach gearmand, so a problem shows in the core
// log without a ping.
func (m *Module) statsLoop(ctx context.Context, every time.Duration) {
	defer m.wg.Done()
	defer m.recoverGoroutine("stats")
	t := time.NewTicker(every)
	defer t.Stop()
	prev, prevAt := m.Stats(), m.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, now := m.Stats(), m.now()
		secs := max(now.Sub(prevAt).Seconds(), 0.001)
		sub := cur.Submitted - prev.Submitted
		m.log.Info(fmt.Sprintf("statistics: %d jobs submitted in %.0fs (%.2f/s), %d results received",
			sub, secs, float64(sub)/secs, cur.Results-prev.Results),
			"local", cur.Local-prev.Local, "not_submitted", cur.NotSubmitted-prev.NotSubmitted,
			"submit_failed", cur.SubmitFailed-prev.SubmitFailed, "explicit_results", cur.ExplicitResults-prev.ExplicitResults,
			"bad_results", cur.BadResults-prev.BadResults, "orphaned", cur.WatchdogOrphans-prev.WatchdogOrphans,
			"orphans_deferred", cur.OrphansDeferred-prev.OrphansDeferred,
			"held", cur.Held-prev.Held, "given_back", cur.GivenBack-prev.GivenBack, "resubmitted_merged", cur.UniqMerged-prev.UniqMerged,
			"notifications", cur.Notifications-prev.Notifications,
			"in_flight", m.watch.Len(), "queued", m.queued())
		prev, prevAt = cur, now
	}
}

// probeLoop marks gearmand reachable again once it answers an ECHO.
func (m *Module) probeLoop(ctx context.Context) {
	defer m.wg.Done()
	defer m.recoverGoroutine("probe")
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m.health.Healthy() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := m.client.Echo(pctx, []byte("gearbridge"))
		cancel()
		if err == nil && m.health.Up() {
			m.log.Info("gearmand reachable again")
		}
	}
}

// warnInterval bounds how often submit problems are logged: while gearmand
// is down every check would log, so the classic module's once-per-interval
// habit is kept, with the number of suppressed messages.
const warnInterval = 10 * time.Second

// warnLimited logs a warning at most once per warnInterval.
func (m *Module) warnLimited(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := m.lastWarn.Load()
	if now-last < int64(warnInterval) || !m.lastWarn.CompareAndSwap(last, now) {
		m.suppressed.Add(1)
		return
	}
	if n := m.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	m.log.Warn(msg, args...)
}

func (m *Module) recoverGoroutine(what string) {
	if r := recover(); r != nil {
		m.log.Error("panic recovered", "in", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}
