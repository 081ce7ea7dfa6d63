package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gearbridge/gearbridge/plugin"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// jobState is where a job of the current session stands.
type jobState int

const (
	jobQueued   jobState = iota // received, waiting for a free slot
	jobRunning                  // its plugin runs
	jobFinished                 // its result waits for the bridge's Ack
)

// job is one job handed to this worker.
type job struct {
	msg    *pb.Job
	seq    uint64 // receive order, for resending results in order
	state  jobState
	cancel context.CancelFunc // stops the plugin; set while running
	result *pb.JobResult      // set when finished
	// cancelled: the bridge withdrew the job; orphaned: its session is
	// gone. Either way the plugin is being killed and no result is sent.
	cancelled, orphaned bool
}

// completion is a plugin run that ended.
type completion struct {
	j   *job
	res plugin.Result
}

// conn is one attempt to hold a session stream with one bridge.
type conn struct {
	idx         int // index into Config.Bridges
	addr        string
	ctx         context.Context
	cancel      context.CancelCauseFunc
	helloSlots  int
	askedResume bool
	stream      workStream // set by the welcome
	sendErr     error      // the stream failed while sending
	draining    bool       // the bridge sent Drain
	closing     bool       // we half-closed the stream
}

// workStream is the client side of WorkerService.Work the loop uses.
type workStream interface {
	Send(*pb.WorkRequest) error
	CloseSend() error
}

type eventKind int

const (
	evWelcome eventKind = iota
	evMessage
	evClosed
)

// streamEvent is what a stream goroutine reports to the loop.
type streamEvent struct {
	c       *conn
	kind    eventKind
	stream  workStream
	welcome *pb.Welcome
	msg     *pb.WorkResponse
	err     error
}

var (
	errHandshakeTimeout = errors.New("no welcome from the bridge in time")
	errCloseTimeout     = errors.New("the bridge did not end the stream in time")
	errSessionDone      = errors.New("session stream no longer needed")
)

// loop owns all session state. Only its goroutine touches it; plugins and
// streams report to it through channels.
type loop struct {
	w   *Worker
	cfg Config
	log *slog.Logger
	m   *metrics

	jobs  map[string]*job // jobs of the current session, by id
	queue []*job          // received jobs waiting for a slot
	seq   uint64
	busy  int               // plugin goroutines alive, orphans included
	alive map[*job]struct{} // their jobs, to kill them at the end
	done  chan completion   // capacity Slots: busy never exceeds it
	plug  sync.WaitGroup

	events   chan streamEvent
	streams  sync.WaitGroup
	conn     *conn // current attempt or attached stream
	session  string
	granted  int // credit the bridge holds from us on conn
	attached bool
	next     int // bridge index of the next attempt
	bo       retryBackoff
	refused  refusals // attempts since the bridge refused this worker

	overloaded    bool
	loadErrLogged bool

	stopping bool
	exit     bool

	retry, stopTimer, drainTimer, closeTimer alarm
}

func newLoop(w *Worker) *loop {
	return &loop{
		w:      w,
		cfg:    w.cfg,
		log:    w.log,
		m:      w.m,
		jobs:   map[string]*job{},
		alive:  map[*job]struct{}{},
		done:   make(chan completion, w.cfg.Slots),
		events: make(chan streamEvent),
		bo:     newRetryBackoff(w.cfg.BackoffMin, w.cfg.BackoffMax),
	}
}

func (l *loop) run(ctx context.Context) error {
	defer l.cleanup()
	var loadTick <-chan time.Time
	if l.cfg.loadLimited() {
		t := time.NewTicker(l.cfg.LoadInterval)
		defer t.Stop()
		loadTick = t.C
		l.refreshLoad()
	}
	l.log.Info("worker starting", "bridges", l.cfg.Bridges, "queues", l.cfg.Queues, "slots", l.cfg.Slots)
	l.retry.set(0)
	ctxDone := ctx.Done()
	for !l.exit {
		select {
		case <-ctxDone:
			ctxDone = nil
			l.beginStop()
		case ev := <-l.events:
			l.handleEvent(ev)
		case c := <-l.done:
			l.handleCompletion(c)
		case <-l.retry.c():
			l.connect()
		case <-loadTick:
			l.refreshLoad()
			l.updateCredit()
		case <-l.stopTimer.c():
			l.stopTimedOut()
		case <-l.drainTimer.c():
			l.bridgeDrainTimedOut()
		case <-l.closeTimer.c():
			if c := l.conn; c != nil {
				c.cancel(errCloseTimeout)
				l.onClosed(c, errCloseTimeout)
			}
		}
		if c := l.conn; c != nil && c.sendErr != nil {
			c.cancel(c.sendErr)
			l.onClosed(c, c.sendErr)
		}
	}
	l.log.Info("worker stopped")
	return nil
}

// cleanup kills what is left and waits for every goroutine.
func (l *loop) cleanup() {
	for _, a := range []*alarm{&l.retry, &l.stopTimer, &l.drainTimer, &l.closeTimer} {
		a.stop()
	}
	if c := l.conn; c != nil {
		c.cancel(errSessionDone)
		l.conn = nil
		l.m.setSession(false)
	}
	for j := range l.alive {
		j.cancel()
	}
	l.plug.Wait()
	l.streams.Wait()
	l.m.running.Set(0)
	l.m.creditWithheld.Set(0)
}

// connect starts an attempt on the next bridge.
func (l *loop) connect() {
	if l.conn != nil || l.exit {
		return
	}
	if l.stopping && len(l.jobs) == 0 {
		l.exit = true
		return
	}
	idx := l.next % len(l.cfg.Bridges)
	slots := l.free()
	if l.stopping || l.overloaded {
		slots = 0
	}
	hello := &pb.Hello{
		Identifier: l.cfg.Identifier,
		Queues:     l.cfg.Queues,
		Slots:      uint32(slots),
		Capacity:   uint32(l.cfg.Slots),
		Version:    l.w.version,
		SessionId:  l.session,
		HeldJobIds: l.heldIDs(),

		MaxReceiveBytes: maxReceiveBytes,
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &conn{
		idx:         idx,
		addr:        l.cfg.Bridges[idx],
		ctx:         ctx,
		cancel:      cancel,
		helloSlots:  slots,
		askedResume: l.session != "",
	}
	l.conn = c
	l.log.Debug("connecting to bridge", "bridge", c.addr, "session", l.session, "slots", slots, "held", len(hello.HeldJobIds))
	l.streams.Add(1)
	go func() {
		defer l.streams.Done()
		err := l.runStream(c, hello)
		l.post(c, streamEvent{c: c, kind: evClosed, err: err})
	}()
}

func (l *loop) handleEvent(ev streamEvent) {
	c := ev.c
	if c != l.conn {
		return // from a stream the loop has already given up
	}
	switch ev.kind {
	case evWelcome:
		l.onWelcome(c, ev.stream, ev.welcome)
	case evMessage:
		l.onMessage(c, ev.msg)
	case evClosed:
		l.onClosed(c, ev.err)
	}
}

func (l *loop) onWelcome(c *conn, st workStream, wel *pb.Welcome) {
	c.stream = st
	l.bo.reset()
	l.endRefusals(c)
	if l.attached {
		l.m.reconnects.Inc()
	}
	l.attached = true
	l.m.setSession(true)
	if c.askedResume && !wel.GetResumed() {
		l.dropSession()
	}
	l.session = wel.GetSessionId()
	l.granted = c.helloSlots
	if !slices.Equal(wel.GetQueues(), l.cfg.Queues) {
		l.log.Warn("the bridge serves other queues than asked for", "asked", l.cfg.Queues, "served", wel.GetQueues())
	}
	if wel.GetResumed() {
		l.log.Info("session resumed", "bridge", c.addr, "session", l.session, "held", len(l.jobs))
		for _, j := range l.byReceiveOrder() {
			if j.state == jobFinished && l.sendResult(c, j) {
				l.m.resultsResent.Inc()
			}
		}
	} else {
		l.log.Info("session started", "bridge", c.addr, "session", l.session, "queues", wel.GetQueues(), "credit", c.helloSlots)
	}
	if l.stopping {
		l.sendDrain(c)
	}
	l.updateCredit()
	l.maybeDone()
}

func (l *loop) onMessage(c *conn, m *pb.WorkResponse) {
	switch x := m.GetMsg().(type) {
	case *pb.WorkResponse_Job:
		l.onJob(x.Job)
	case *pb.WorkResponse_Cancel:
		l.onCancel(x.Cancel)
	case *pb.WorkResponse_Ack:
		l.onAck(x.Ack.GetJobId())
	case *pb.WorkResponse_Drain:
		l.onBridgeDrain(c, x.Drain.GetReason())
	default:
		l.log.Warn("unexpected message from the bridge; ignored", "type", fmt.Sprintf("%T", x))
	}
}

func (l *loop) onJob(msg *pb.Job) {
	id := msg.GetJobId()
	if id == "" {
		l.log.Warn("job without id from the bridge; ignored", "host", string(msg.GetHostName()))
		return
	}
	if _, dup := l.jobs[id]; dup {
		l.log.Warn("job received twice; the first copy is kept", "job_id", id)
		return
	}
	l.m.received.Inc()
	l.granted = max(l.granted-1, 0)
	l.seq++
	j := &job{msg: msg, seq: l.seq, state: jobQueued}
	l.jobs[id] = j
	l.queue = append(l.queue, j)
	l.schedule()
}

func (l *loop) onCancel(cn *pb.Cancel) {
	id := cn.GetJobId()
	j, ok := l.jobs[id]
	if !ok {
		l.log.Debug("cancel for a job not held; ignored", "job_id", id)
		return
	}
	delete(l.jobs, id)
	l.m.cancelled.Inc()
	l.log.Info("job withdrawn by the bridge", "job_id", id, "host", string(j.msg.GetHostName()), "service", string(j.msg.GetServiceDescription()), "reason", cn.GetReason())
	switch j.state {
	case jobQueued:
		l.queue = slices.DeleteFunc(l.queue, func(q *job) bool { return q == j })
	case jobRunning:
		j.cancelled = true
		j.cancel() // the slot frees when the plugin is gone
	case jobFinished:
		// The result is no longer wanted: the bridge answered the job.
	}
	l.updateCredit()
	l.maybeDone()
}

func (l *loop) onAck(id string) {
	j, ok := l.jobs[id]
	if !ok {
		l.log.Debug("ack for a job not held; ignored", "job_id", id)
		return
	}
	if j.state != jobFinished {
		l.log.Warn("ack for a job without result; ignored", "job_id", id)
		return
	}
	delete(l.jobs, id)
	l.m.acks.Inc()
	l.maybeDone()
}

func (l *loop) onBridgeDrain(c *conn, reason string) {
	if c.draining {
		return
	}
	c.draining = true
	l.m.creditWithheld.Set(0)
	l.log.Info("bridge asks to drain; finishing held jobs before moving on", "bridge", c.addr, "reason", reason, "held", len(l.jobs))
	l.drainTimer.set(l.cfg.DrainTimeout)
	l.maybeDone()
}

// onClosed forgets the stream of c and plans the next attempt.
func (l *loop) onClosed(c *conn, err error) {
	l.conn = nil
	l.m.setSession(false)
	c.cancel(errSessionDone)
	l.granted = 0
	l.closeTimer.stop()
	l.drainTimer.stop()
	l.m.creditWithheld.Set(0)
	attached := c.stream != nil
	if !attached && !c.closing {
		l.m.connectFailures.Inc()
	}
	switch {
	case c.closing:
		l.log.Debug("session stream closed", "bridge", c.addr)
	case l.refused.active || classifyFailure(err) == failureRefused:
		l.noteRefusal(c, err)
	case attached:
		l.log.Warn("lost the bridge; reconnecting", "bridge", c.addr, "held", len(l.jobs), "err", err)
	default:
		l.log.Warn("cannot open a session with the bridge", "bridge", c.addr, "err", err)
	}
	if l.stopping && len(l.jobs) == 0 {
		l.exit = true
		return
	}
	if attached && !c.draining {
		l.next = c.idx // a broken stream: the same bridge holds the session
	} else {
		l.next = c.idx + 1
	}
	if l.refused.active {
		l.retry.set(l.refused.bo.next())
	} else {
		l.retry.set(l.bo.next())
	}
}

// beginStop starts the shutdown drain.
func (l *loop) beginStop() {
	l.stopping = true
	l.stopTimer.set(l.cfg.DrainTimeout)
	l.m.creditWithheld.Set(0)
	l.log.Info("draining: no new jobs; finishing held ones", "held", len(l.jobs), "timeout", l.cfg.DrainTimeout)
	if c := l.conn; c != nil && c.stream != nil {
		l.sendDrain(c)
	}
	l.maybeDone()
}

func (l *loop) stopTimedOut() {
	running := 0
	for _, j := range l.jobs {
		if j.state != jobFinished {
			running++
		}
		l.m.discarded.WithLabelValues(discardDrainTimeout).Inc()
	}
	l.log.Warn("drain timed out; killing plugins and dropping unacknowledged results",
		"running", running, "unacked", len(l.jobs)-running)
	l.exit = true
}

func (l *loop) bridgeDrainTimedOut() {
	c := l.conn
	if c == nil || c.stream == nil || c.closing {
		return
	}
	l.log.Warn("bridge drain timed out; moving on with unacknowledged jobs", "bridge", c.addr, "held", len(l.jobs))
	l.closeConn(c)
}

// maybeDone closes the stream once nothing is held and the worker or the
// bridge is draining.
func (l *loop) maybeDone() {
	if len(l.jobs) > 0 || l.exit {
		return
	}
	c := l.conn
	switch {
	case l.stopping && c == nil:
		l.exit = true
	case l.stopping && c.stream == nil:
		c.cancel(errSessionDone) // still dialling, and nothing to deliver
		l.exit = true
	case l.stopping || (c != nil && c.draining):
		if c.closing {
			return
		}
		// Nothing is held, so the session on the bridge ends with this
		// stream; the next attempt starts a new one.
		l.session = ""
		l.closeConn(c)
	}
}

// closeConn half-closes the stream and waits (bounded) for the bridge to end
// it.
func (l *loop) closeConn(c *conn) {
	c.closing = true
	if err := c.stream.CloseSend(); err != nil {
		l.log.Debug("close session stream", "err", err)
	}
	l.closeTimer.set(closeTimeout)
}

// dropSession forgets the jobs of a session the bridge no longer knows:
// gearmand has requeued them, so their results would be duplicates.
func (l *loop) dropSession() {
	n := 0
	for _, j := range l.jobs {
		n++
		if j.state == jobRunning {
			j.orphaned = true
			j.cancel()
		}
		l.m.discarded.WithLabelValues(discardSessionLost).Inc()
	}
	if n > 0 {
		l.log.Warn("the bridge lost the session; its jobs were requeued, stopping their plugins and dropping their results",
			"session", l.session, "jobs", n)
	}
	clear(l.jobs)
	l.queue = nil
}

// schedule starts queued jobs on free slots, then offers the rest.
func (l *loop) schedule() {
	for len(l.queue) > 0 && l.busy < l.cfg.Slots {
		j := l.queue[0]
		l.queue = l.queue[1:]
		l.start(j)
	}
	l.updateCredit()
}

func (l *loop) start(j *job) {
	now := time.Now()
	if l.tooOld(j.msg, now) {
		l.m.tooOld.Inc()
		l.log.Info("job older than max-age; not started", "job_id", j.msg.GetJobId(), "host", string(j.msg.GetHostName()), "service", string(j.msg.GetServiceDescription()))
		j.state = jobFinished
		j.result = &pb.JobResult{
			JobId:      j.msg.GetJobId(),
			ReturnCode: 3, // spec §11: rc 3 with the Go worker's text
			Output:     []byte("Could not start check in time (worker: " + l.cfg.Identifier + ")"),
			StartTime:  timestamppb.New(now),
			FinishTime: timestamppb.New(now),
			ExitedOk:   true,
		}
		if c := l.conn; c != nil {
			l.sendResult(c, j)
		}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	j.cancel = cancel
	j.state = jobRunning
	l.busy++
	l.alive[j] = struct{}{}
	l.m.running.Set(float64(l.busy))
	cmd, opt := string(j.msg.GetCommandLine()), l.pluginOptions(j.msg)
	l.plug.Go(func() {
		l.done <- completion{j: j, res: plugin.Run(ctx, cmd, opt)}
	})
}

func (l *loop) handleCompletion(c completion) {
	j, res := c.j, c.res
	j.cancel()
	delete(l.alive, j)
	l.busy--
	l.m.running.Set(float64(l.busy))
	if res.EarlyTimeout {
		l.m.timeouts.Inc()
	}
	switch {
	case j.orphaned || j.cancelled:
		// Counted when it was dropped; the bridge wants no result.
	default:
		l.m.pluginDone(res)
		if res.Err != nil {
			l.log.Warn("plugin could not be run", "job_id", j.msg.GetJobId(), "host", string(j.msg.GetHostName()), "service", string(j.msg.GetServiceDescription()), "err", res.Err)
		}
		j.state = jobFinished
		// One line per job at debug level, as the classic worker's debug=1.
		l.log.Debug("job done", "job_id", j.msg.GetJobId(), "queue", j.msg.GetQueue(), "host", string(j.msg.GetHostName()),
			"service", string(j.msg.GetServiceDescription()), "rc", res.ReturnCode, "duration", res.FinishTime.Sub(res.StartTime))
		j.result = &pb.JobResult{
			JobId:        j.msg.GetJobId(),
			ReturnCode:   int32(res.ReturnCode),
			Output:       []byte(res.Output),
			StartTime:    timestamppb.New(res.StartTime),
			FinishTime:   timestamppb.New(res.FinishTime),
			ExitedOk:     res.ExitedOK,
			EarlyTimeout: res.EarlyTimeout,
		}
		if conn := l.conn; conn != nil {
			l.sendResult(conn, j)
		}
	}
	l.schedule()
	if c := l.conn; l.busy == 0 && c != nil {
		if f, ok := c.stream.(interface{ Flush() }); ok {
			f.Flush() // no plugin is running: no result will join the batch
		}
	}
	l.maybeDone()
}

// updateCredit offers free slots to the bridge, unless the load is too
// high or nobody should send more jobs.
func (l *loop) updateCredit() {
	c := l.conn
	if c == nil || c.stream == nil || c.sendErr != nil || c.draining || c.closing || l.stopping {
		return
	}
	n := l.free() - l.granted
	if n <= 0 {
		l.m.creditWithheld.Set(0)
		return
	}
	if l.overloaded {
		l.m.creditWithheld.Set(float64(n))
		return
	}
	l.m.creditWithheld.Set(0)
	if l.send(c, &pb.WorkRequest{Msg: &pb.WorkRequest_Credit{Credit: &pb.Credit{Slots: uint32(n)}}}) {
		l.granted += n
	}
}

// free is the number of slots neither busy nor promised to a queued job.
func (l *loop) free() int {
	return max(l.cfg.Slots-l.busy-len(l.queue), 0)
}

func (l *loop) refreshLoad() {
	v, err := l.w.load()
	if err != nil {
		if !l.loadErrLogged {
			l.log.Warn("cannot read the load; load limits are not applied", "err", err)
			l.loadErrLogged = true
		}
		l.overloaded = false
		return
	}
	l.loadErrLogged = false
	over := l.cfg.overLimit(v)
	if over != l.overloaded {
		if over {
			l.log.Info("load above the limits; holding back credit", "load1", v[0], "load5", v[1], "load15", v[2])
		} else {
			l.log.Info("load below the limits again; offering free slots", "load1", v[0], "load5", v[1], "load15", v[2])
		}
	}
	l.overloaded = over
}

func (l *loop) sendResult(c *conn, j *job) bool {
	if c.stream == nil || c.closing {
		return false
	}
	if !l.send(c, &pb.WorkRequest{Msg: &pb.WorkRequest_Result{Result: j.result}}) {
		return false
	}
	l.m.resultsSent.Inc()
	return true
}

func (l *loop) sendDrain(c *conn) {
	l.send(c, &pb.WorkRequest{Msg: &pb.WorkRequest_Drain{Drain: &pb.Drain{Reason: "worker is shutting down"}}})
}

// send writes to the stream of c. A failure marks the stream broken; the
// loop drops it after the current event.
func (l *loop) send(c *conn, req *pb.WorkRequest) bool {
	if c.stream == nil || c.sendErr != nil {
		return false
	}
	if err := c.stream.Send(req); err != nil {
		c.sendErr = err
		return false
	}
	return true
}

// heldIDs lists the jobs of the session the worker holds, in receive order.
func (l *loop) heldIDs() []string {
	var ids []string
	for _, j := range l.byReceiveOrder() {
		ids = append(ids, j.msg.GetJobId())
	}
	return ids
}

func (l *loop) byReceiveOrder() []*job {
	js := make([]*job, 0, len(l.jobs))
	for _, j := range l.jobs {
		js = append(js, j)
	}
	slices.SortFunc(js, func(a, b *job) int { return cmp.Compare(a.seq, b.seq) })
	return js
}

func (l *loop) tooOld(msg *pb.Job, now time.Time) bool {
	return l.cfg.MaxAge > 0 && msg.GetCoreTime() != nil && now.Sub(msg.GetCoreTime().AsTime()) > l.cfg.MaxAge
}

func (l *loop) pluginOptions(msg *pb.Job) plugin.Options {
	opt := l.w.base
	opt.Timeout = l.cfg.JobTimeout
	if d := msg.GetTimeout().AsDuration(); msg.GetTimeout() != nil && d > 0 {
		opt.Timeout = d
	}
	switch msg.GetType() {
	case pb.JobType_JOB_TYPE_HOST:
		opt.Kind = plugin.KindHost
	case pb.JobType_JOB_TYPE_SERVICE:
		opt.Kind = plugin.KindService
	default:
		opt.Kind = plugin.KindOther
	}
	return opt
}

// post hands ev to the loop unless the loop has given up c.
func (l *loop) post(c *conn, ev streamEvent) bool {
	select {
	case l.events <- ev:
		return true
	case <-c.ctx.Done():
		return false
	}
}
