package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
	"github.com/gearbridge/gearbridge/plugin"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// completedMemory is how many finished job ids a session remembers, so that
// a result sent again after a reconnect is acknowledged instead of refused.
const completedMemory = 4096

// session is one remote worker's session. It outlives its gRPC stream by
// the resume grace.
type session struct {
	b          *Bridge
	id         string
	identity   string
	identifier string
	queues     []string
	// statusQueue is the classic worker_<identifier> queue: the session
	// registers it beside its queues and answers check_gearman's pings on
	// it itself (see answerStatus).
	statusQueue string
	log         *slog.Logger
	started     time.Time

	ctx    context.Context // ends when the session closes
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	stream      workStream // nil while detached
	out         *outbox    // the attached stream's send queue; nil while detached
	maxRecv     int        // the attached worker's receive limit in bytes
	detachStop  context.CancelCauseFunc
	attachGen   uint64
	slots       int
	credit      int
	creditWake  chan struct{} // closed and replaced when credit may have grown
	draining    bool
	closed      bool
	inflight    map[string]*inflightJob
	completed   map[string]bool // finished job ids → answered by a timeout
	finishing   map[string]bool // ids whose answer is being submitted → answered by a timeout
	tied        int             // credits of this attachment held back until their result's job is done (creditAfter)
	completedQ  []string
	finishQ     chan []finishReq // to idle finishers (see goFinish)
	finishIdle  int              // idle finishers not yet handed a request
	nextJob     uint64           // starts at a random value: see newSession
	jobsDone    uint64
	graceTimer  *time.Timer
	conns       []*serverConn
	statusConns []*serverConn // answer worker_<identifier> pings, slots or not
	closeReason string
	serial      string    // of the certificate that attached last (or the bridge renewed)
	notAfter    time.Time // its end of validity
	peer        string    // the address the worker's last stream came from
}

// workStream is the gRPC stream of an attached worker; the session sends
// pre-encoded messages on it (see pump).
type workStream = grpc.ServerStream

// inflightJob is a job handed to the worker and not yet answered.
type inflightJob struct {
	id         string
	conn       *serverConn
	handle     string
	queue      string
	job        modgearman.Job
	msg        *pb.Job
	dispatched time.Time
	timeout    time.Duration // the plugin's, without the bridge's grace
	// timer writes the timeout result; it runs only while the job may be
	// with the worker. A job grabbed while the worker was detached, or not
	// yet written to a stream that then detached, has none: it goes out on
	// resume (and gets its timer then) or back to gearmand with the session.
	timer *time.Timer
	sent  atomic.Bool // written to a stream
}

// startTimer arms the timeout result for a job that goes out now.
func (s *session) startTimerLocked(ij *inflightJob, deadline time.Time) {
	id := ij.id
	ij.timer = time.AfterFunc(time.Until(deadline), func() { s.expire(id) })
}

func (ij *inflightJob) stopTimer() {
	if ij.timer != nil {
		ij.timer.Stop()
		ij.timer = nil
	}
}

// serverConn is the session's worker connection to one gearmand, shared by
// its grab loops.
type serverConn struct {
	server string
	queues []string   // registered on every (re)connect
	dialMu sync.Mutex // one dial at a time
	mu     sync.Mutex
	conn   WorkerConn // nil while reconnecting
	gate   *sleepGate // of the sessions serving queues on server
}

// sleepGate returns the gate of c's queues on its server.
func (c *serverConn) sleepGate() *sleepGate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gate
}

func (c *serverConn) get() WorkerConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// drop forgets wc after an error (unless a newer connection replaced it)
// and closes it, so that gearmand requeues what it held.
func (c *serverConn) drop(wc WorkerConn) {
	c.mu.Lock()
	if c.conn == wc {
		c.conn = nil
	}
	c.mu.Unlock()
	_ = wc.Close()
}

// connect returns the live connection, dialling one if there is none. It
// returns nil when the session ends.
func (s *session) connect(c *serverConn, backoff *backoff) WorkerConn {
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	for s.ctx.Err() == nil {
		if wc := c.get(); wc != nil {
			return wc
		}
		c.mu.Lock()
		queues := c.queues // narrowed by restrictQueues
		c.mu.Unlock()
		conn, err := s.b.gm.DialWorker(s.ctx, c.server, s.identifier, queues)
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			d := backoff.next()
			s.b.up.failed(c.server, err) // logged once per outage, not per retry
			s.log.Debug("cannot connect to gearmand; retrying", "server", c.server, "in", d, "err", err)
			sleepCtx(s.ctx, d)
			continue
		}
		s.b.up.ok(c.server)
		c.mu.Lock()
		if s.ctx.Err() != nil {
			c.mu.Unlock()
			_ = conn.Close()
			return nil
		}
		c.conn = conn
		c.mu.Unlock()
		backoff.reset()
		return conn
	}
	return nil
}

func (b *Bridge) newSession(id Identity, hello *pb.Hello, queues []string, peer string) *session {
	ctx, cancel := context.WithCancel(context.Background())
	n := b.nextSession.Add(1)
	sid := fmt.Sprintf("%x-%d", rand.Uint64(), n)
	identifier := hello.GetIdentifier()
	if identifier == "" {
		identifier = id.Name
	}
	// The log names the session, the certificate identity and the
	// identifier; "worker" repeats the identifier under the key older log
	// searches use.
	s := &session{
		b:           b,
		id:          sid,
		identity:    id.Name,
		identifier:  identifier,
		queues:      queues,
		statusQueue: modgearman.StatusQueuePrefix + identifier,
		log:         b.log.With("session", sid, "identity", id.Name, "identifier", identifier, "worker", identifier),
		started:     time.Now(),
		ctx:         ctx,
		cancel:      cancel,
		creditWake:  make(chan struct{}),
		inflight:    map[string]*inflightJob{},
		finishQ:     make(chan []finishReq, 64),
		completed:   map[string]bool{},
		finishing:   map[string]bool{},
		// Job ids count up from a random start, so that they differ from
		// those of the worker's earlier sessions, with this bridge or one
		// before a restart, which the worker may still hold: a new job must
		// never be taken for a copy of an old one.
		nextJob:  rand.Uint64() >> 16,
		serial:   id.Serial,
		notAfter: id.NotAfter,
		peer:     peer,
	}
	for _, srv := range b.gm.Servers() {
		s.conns = append(s.conns, &serverConn{server: srv, queues: queues, gate: b.gates.get(srv, queues)})
		s.statusConns = append(s.statusConns, &serverConn{server: srv, queues: []string{s.statusQueue}})
	}
	return s
}

// maxGrabWindow bounds the GRAB_JOB_UNIQ a grab loop sends in one write.
// Each still holds a credit, so nothing is grabbed ahead of need.
const maxGrabWindow = 32

// start launches the grab loop and the status loop for every gearmand. The
// session is registered before it starts, so an authorization reload may
// already have closed it: then nothing starts, and close's wait never runs
// beside an Add.
func (s *session) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	run := func(loop func()) {
		s.wg.Add(1)
		s.b.wg.Add(1)
		go func() {
			defer s.b.wg.Done()
			defer s.wg.Done()
			loop()
		}()
	}
	for i, c := range s.conns {
		run(func() { s.grabLoop(c) })
		sc := s.statusConns[i]
		run(func() { s.statusLoop(sc) })
	}
}

// attach binds a stream to the session; the returned context ends when the
// stream is replaced or the session closes.
func (s *session) attach(st workStream, capacity, free, maxRecv int, batches bool, held []string, welcome *pb.Welcome) (context.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("session closed")
	}
	if s.detachStop != nil {
		s.detachStop(errors.New("replaced by a newer stream of the session")) // an older stream gives way
	}
	if s.graceTimer != nil {
		s.graceTimer.Stop()
		s.graceTimer = nil
	}
	switch {
	case s.attachGen == 0:
		s.b.m.sessions.WithLabelValues("attached").Inc()
	case s.stream == nil:
		s.b.m.sessions.WithLabelValues("detached").Dec()
		s.b.m.sessions.WithLabelValues("attached").Inc()
	}
	actx, stop := context.WithCancelCause(s.ctx)
	s.stream = st
	s.detachStop = stop
	s.maxRecv = maxRecv
	s.attachGen++
	s.tied = 0 // credits tied to results of older streams are not granted
	s.b.m.credit.Add(float64(free - s.credit))
	s.slots = capacity
	s.credit = free
	s.draining = false
	// Jobs the worker does not hold were lost in transit: send them again.
	heldSet := make(map[string]bool, len(held))
	for _, id := range held {
		heldSet[id] = true
	}
	var resend []*inflightJob
	for id, ij := range s.inflight {
		if !heldSet[id] {
			resend = append(resend, ij)
		}
	}
	// The queue holds every job the session may have out at once, their
	// acks and cancels, and the resends: only a worker that stops reading
	// fills it.
	s.out = newOutbox(st, 2*capacity+len(resend)+16, batches, maxRecv)
	s.out.put(outMsg{m: &pb.WorkResponse{Msg: &pb.WorkResponse_Welcome{Welcome: welcome}}})
	for _, ij := range resend {
		s.b.m.resent.Inc()
		ij.sent.Store(false)
		resp := jobResponse(ij.msg)
		s.out.put(outMsg{m: resp, job: ij, size: proto.Size(resp)})
	}
	now := time.Now()
	for _, ij := range s.inflight {
		if ij.timer == nil {
			// Not with any worker until now: its time starts now.
			s.startTimerLocked(ij, now.Add(ij.timeout+s.b.cfg.TimeoutGrace))
		}
	}
	s.wakeLocked()
	s.b.wg.Add(1)
	// The pump gets this stream's outbox: s.out may be cleared by a detach
	// or replaced by a newer attach before the goroutine runs.
	out := s.out
	go func() {
		defer s.b.wg.Done()
		s.pump(actx, out, stop)
	}()
	return actx, nil
}

func jobResponse(j *pb.Job) *pb.WorkResponse {
	return &pb.WorkResponse{Msg: &pb.WorkResponse_Job{Job: j}}
}

// detach unbinds st (if it is still the attached stream) and starts the
// resume grace.
func (s *session) detach(st workStream, why error) {
	s.mu.Lock()
	if s.stream != st || s.closed {
		s.mu.Unlock()
		return
	}
	s.stream = nil
	s.out = nil
	s.b.m.credit.Sub(float64(s.credit))
	s.credit = 0
	if s.detachStop != nil {
		s.detachStop(why)
		s.detachStop = nil
	}
	for _, ij := range s.inflight {
		if !ij.sent.Load() {
			// Never reached the worker: no timeout result for it. It goes
			// out again on resume, or back to gearmand with the session.
			ij.stopTimer()
		}
	}
	grace, reason := s.b.cfg.ResumeGrace, "resume grace expired"
	n := len(s.inflight)
	if s.draining && n == 0 {
		// A worker that drained and left is done; nothing to resume.
		grace, reason = 0, "worker shut down"
	}
	s.graceTimer = time.AfterFunc(grace, func() { s.close(reason) })
	s.mu.Unlock()
	s.b.m.sessions.WithLabelValues("attached").Dec()
	s.b.m.sessions.WithLabelValues("detached").Inc()
	s.log.Info("worker disconnected; keeping session for the resume grace", "grace", grace, "in_flight", n, "peer", s.peerAddr(), "err", why)
}

// sendBlockedFor is how long a Send to st has been blocked; zero when st is
// no longer the attached stream.
func (s *session) sendBlockedFor(st workStream, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream != st || s.out == nil {
		return 0
	}
	return s.out.blockedFor(now)
}

// stall ends the attachment of st, whose worker stopped reading.
func (s *session) stall(st workStream, why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream == st && s.detachStop != nil {
		s.detachStop(why)
	}
}

// certSerial is the serial of the certificate the session was last
// attached with.
func (s *session) certSerial() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serial
}

// setCert records the certificate of a resuming stream, which may be a
// renewed one, or the one the bridge renewed for the session.
func (s *session) setCert(serial string, notAfter time.Time) {
	s.mu.Lock()
	s.serial, s.notAfter = serial, notAfter
	s.mu.Unlock()
}

// setPeer records the address of a resuming stream.
func (s *session) setPeer(peer string) {
	s.mu.Lock()
	s.peer = peer
	s.mu.Unlock()
}

// peerAddr is the address of the session's last stream.
func (s *session) peerAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peer
}

// certNotAfter is the end of validity of the session's certificate.
func (s *session) certNotAfter() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notAfter
}

// close ends the session: its Gearman connections are closed, so gearmand
// requeues every job the worker did not finish.
func (s *session) close(reason string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.closeReason = reason
	attached := s.stream != nil
	s.stream = nil
	s.out = nil
	if s.detachStop != nil {
		s.detachStop(errors.New("session closed: " + reason))
	}
	if s.graceTimer != nil {
		s.graceTimer.Stop()
	}
	s.b.m.credit.Sub(float64(s.credit))
	s.credit = 0
	requeued := len(s.inflight)
	for _, ij := range s.inflight {
		ij.stopTimer()
	}
	s.inflight = map[string]*inflightJob{}
	s.wakeLocked()
	s.mu.Unlock()

	s.cancel()
	for _, c := range append(slices.Clone(s.conns), s.statusConns...) {
		c.mu.Lock()
		if c.conn != nil {
			_ = c.conn.Close()
			c.conn = nil
		}
		c.mu.Unlock()
	}
	s.wg.Wait()
	s.b.m.requeued.Add(float64(requeued))
	if attached {
		s.b.m.sessions.WithLabelValues("attached").Dec()
	} else {
		s.b.m.sessions.WithLabelValues("detached").Dec()
	}
	s.b.removeSession(s)
	s.log.Info("session closed", "reason", reason, "requeued", requeued, "peer", s.peerAddr())
}

// drain tells the worker to finish and stops handing out jobs.
func (s *session) drain(reason string) {
	s.mu.Lock()
	s.draining = true
	s.wakeLocked()
	s.mu.Unlock()
	s.send(&pb.WorkResponse{Msg: &pb.WorkResponse_Drain{Drain: &pb.Drain{Reason: reason}}})
}

// detached reports whether the session waits for its worker to resume.
func (s *session) detached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream == nil && !s.closed
}

func (s *session) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight)
}

// addCredit records freed worker slots.
func (s *session) addCredit(n uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	add := int(n)
	// A worker cannot have more free slots than it announced. A slot whose
	// credit came with a result is still taken until that credit is
	// granted (tied).
	if room := s.slots - len(s.inflight) - s.credit - s.tied; add > room {
		add = max(room, 0)
	}
	s.credit += add
	s.b.m.credit.Add(float64(add))
	s.wakeLocked()
}

func (s *session) wakeLocked() {
	close(s.creditWake)
	s.creditWake = make(chan struct{})
}

// takeCredits blocks until the session may take more jobs, and takes up
// to most of its credit; it returns 0 when the session closed.
func (s *session) takeCredits(most int) int {
	k := 0
	s.waitFor(func() bool {
		if s.stream == nil || s.draining || s.credit <= 0 {
			return false
		}
		k = min(s.credit, most)
		s.credit -= k
		s.b.m.credit.Sub(float64(k))
		return true
	})
	return k
}

func (s *session) returnCredit() { s.returnCredits(1) }

func (s *session) returnCredits(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.stream == nil || n <= 0 {
		return
	}
	s.credit += n
	s.b.m.credit.Add(float64(n))
	s.wakeLocked()
}

// grabLoop takes jobs from one gearmand while the session has credit. It
// holds credits only for the GRAB round trip, and asks for as many jobs
// in one write as it holds credits, up to a window that doubles while
// gearmand has jobs and falls back to one when it has none: a wake-up on
// a quiet queue costs one GRAB, not one per free slot. When gearmand has
// nothing it sleeps (PRE_SLEEP) without credit until gearmand wakes it.
func (s *session) grabLoop(c *serverConn) {
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	window := 1
	for {
		wc := s.connect(c, backoff)
		if wc == nil {
			return
		}
		k := s.takeCredits(window)
		if k == 0 {
			return
		}
		jobs, err := grabN(s.ctx, wc, k)
		if err != nil {
			s.returnCredits(k)
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("gearmand connection lost; reconnecting", "server", c.server, "err", err)
			c.drop(wc)
			window = 1
			continue
		}
		s.returnCredits(k - len(jobs))
		gate := c.sleepGate()
		if len(jobs) > 0 {
			gate.letIn() // there may be more: one more session looks
		}
		for _, job := range jobs {
			s.dispatch(c, wc, job)
		}
		if len(jobs) == k {
			window = min(window*2, maxGrabWindow)
			continue
		}
		window = 1
		sleep, err := gate.acquire(s.ctx)
		if err != nil {
			return
		}
		if !sleep {
			continue // let in by another session: grab again
		}
		err = wc.Sleep(s.ctx)
		gate.leave()
		if err == nil {
			s.b.m.wakeups.Inc()
		}
		if err != nil && s.ctx.Err() == nil {
			s.log.Warn("gearmand connection lost while sleeping; reconnecting", "server", c.server, "err", err)
			c.drop(wc)
		}
	}
}

// batchGrabber is a WorkerConn that asks for several jobs in one write.
type batchGrabber interface {
	TryGrabN(ctx context.Context, n int) ([]*GrabbedJob, error)
}

// grabN asks wc for up to n jobs; fewer mean gearmand has no more.
func grabN(ctx context.Context, wc WorkerConn, n int) ([]*GrabbedJob, error) {
	if bg, ok := wc.(batchGrabber); ok {
		return bg.TryGrabN(ctx, n)
	}
	var jobs []*GrabbedJob
	for range n {
		j, err := wc.TryGrab(ctx)
		if err != nil {
			return nil, err
		}
		if j == nil {
			break
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// statusLoop answers pings on the classic worker_<identifier> queue on a
// connection of its own, so that a ping needs no free slot: like the C and
// Go workers, a session whose slots are all busy still answers (spec
// §2.10). It answers only while a worker is attached; a detached session
// leaves pings in gearmand, and check_gearman reports the worker missing.
func (s *session) statusLoop(c *serverConn) {
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	for s.waitAttached() {
		wc := s.connect(c, backoff)
		if wc == nil {
			return
		}
		ping, err := wc.TryGrab(s.ctx)
		switch {
		case err != nil:
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("gearmand status connection lost; reconnecting", "server", c.server, "err", err)
			c.drop(wc)
		case ping == nil:
			if err := wc.Sleep(s.ctx); err != nil && s.ctx.Err() == nil {
				c.drop(wc)
			}
		default:
			s.answerStatus(wc, ping)
		}
	}
}

// waitAttached blocks until a worker is attached; false when the session
// closed.
func (s *session) waitAttached() bool {
	return s.waitFor(func() bool { return s.stream != nil })
}

// waitFor blocks until cond, called with s.mu held, holds; it reports false
// when the session closed first. cond is checked again whenever the
// session wakes its waiters (credit, attach, drain, close).
func (s *session) waitFor(cond func() bool) bool {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return false
		}
		if cond() {
			s.mu.Unlock()
			return true
		}
		wake := s.creditWake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-s.ctx.Done():
			return false
		}
	}
}

// dispatch decodes one grabbed job and hands it to the worker. The credit
// taken for it is consumed.
func (s *session) dispatch(c *serverConn, wc WorkerConn, g *GrabbedJob) {
	received := time.Now()
	job, err := s.b.decodeJob(g)
	if err != nil {
		// A permanent error: the job cannot run anywhere as it is. Fail it
		// towards gearmand like classic workers do (it is not requeued to
		// hang the next worker), log it once and count it.
		reason := invalidReason(err)
		s.b.m.invalidJobs.WithLabelValues(reason).Inc()
		msg := "refused a job that no worker can run"
		if reason == "undecodable" {
			msg = "refused a job that does not decode: the bridge's key (--key/--keyfile) must be the core's"
		}
		// A wrong key fails every job: one line per queue and interval.
		s.b.rl.Error(s.log, g.Queue+" "+reason, msg, "queue", g.Queue, "handle", g.Handle, "err", err)
		if ferr := wc.Fail(s.ctx, g.Handle); ferr != nil {
			s.log.Warn("fail refused job", "handle", g.Handle, "err", ferr)
		}
		s.returnCredit()
		return
	}
	timeout := job.Timeout
	if timeout <= 0 {
		timeout = s.b.cfg.JobTimeout
	}
	deadline := received.Add(timeout + s.b.cfg.TimeoutGrace)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return // the connection is closed: gearmand requeues the job
	}
	s.nextJob++
	id := strconv.FormatUint(s.nextJob, 10)
	msg := jobMessage(id, g.Queue, deadline, timeout, job)
	ij := &inflightJob{id: id, conn: c, handle: g.Handle, queue: g.Queue, job: job, msg: msg, dispatched: received, timeout: timeout}
	s.inflight[id] = ij
	resp := jobResponse(msg)
	size, limit := proto.Size(resp), s.maxRecv
	if size > limit {
		s.mu.Unlock()
		s.refuseJob(ij, fmt.Sprintf("its message of %d bytes exceeds the worker's receive limit of %d bytes", size, limit), "too_large")
		return
	}
	if s.out == nil {
		// Grabbed while the worker was detaching: it goes out on resume or
		// back to gearmand with the session, and gets no timeout meanwhile.
		s.mu.Unlock()
		s.b.m.dispatched.WithLabelValues(g.Queue).Inc()
		return
	}
	s.startTimerLocked(ij, deadline)
	s.sendLocked(outMsg{m: resp, job: ij, size: size})
	s.mu.Unlock()
	s.b.m.dispatched.WithLabelValues(g.Queue).Inc()
	s.b.m.dispatchLatency.Observe(time.Since(received).Seconds())
}

// refuseJob answers a job that cannot be sent to the worker with an
// explicit UNKNOWN result that says why, and gives its credit back: the
// worker never got it. Nothing retries it; it would fail again the same way.
func (s *session) refuseJob(ij *inflightJob, why, reason string) {
	s.mu.Lock()
	if s.inflight[ij.id] != ij || s.closed {
		s.mu.Unlock()
		return
	}
	delete(s.inflight, ij.id)
	s.finishing[ij.id] = true
	ij.stopTimer()
	s.wg.Add(1)
	s.mu.Unlock()
	s.returnCredit()

	s.b.m.refusedJobs.WithLabelValues(reason).Inc()
	s.log.Error("job not sent to the worker; answered with UNKNOWN", "job_id", ij.id, "host", ij.job.HostName, "service", ij.job.ServiceDescription, "why", why)
	now := time.Now()
	text := fmt.Sprintf("(gearbridge: check not sent to worker %s: %s)", s.identifier, why)
	res := ij.job.Answer(3, text, now, now, s.source())
	s.goFinish(finishReq{ij: ij, res: res, how: outcomeRefused})
}

// answerStatus answers a ping on the status queue as a classic worker
// does, with a plain status line (spec §2.10, the Go worker's form); see
// statusReply.
func (s *session) answerStatus(wc WorkerConn, g *GrabbedJob) {
	reply := s.b.statusReply(s)
	if err := wc.Complete(s.ctx, g.Handle, []byte(reply)); err != nil {
		s.log.Warn("answer status ping", "queue", g.Queue, "err", err)
	} else {
		s.b.m.statusReplies.Inc()
	}
}

// statusReply is the status line for the identifier of s. Several sessions
// may share an identifier (two workers with one certificate); each answers
// pings on its status queue with the workers and jobs summed over the
// attached sessions of the identifier, and says how many they are before
// the performance data. A single session answers exactly in the classic
// form, which check_gearman and its users parse.
func (b *Bridge) statusReply(self *session) string {
	sessions, slots, busy, done := 0, 0, 0, uint64(0)
	add := func(s *session, always bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if always || (s.stream != nil && !s.closed) {
			sessions++
			slots += s.slots
			busy += len(s.inflight)
			done += s.jobsDone
		}
	}
	add(self, true)
	for _, s := range b.sessionList() {
		if s != self && s.identifier == self.identifier {
			add(s, false)
		}
	}
	reply := modgearman.WorkerStatus(self.identifier, slots, busy, b.version, done)
	if sessions > 1 {
		i := strings.LastIndex(reply, "|worker=")
		reply = reply[:i] + fmt.Sprintf(" (%d sessions)", sessions) + reply[i:]
	}
	return reply
}

// send queues m for the attached stream; it reports false when detached.
func (s *session) send(m *pb.WorkResponse) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(outMsg{m: m})
}

// ack queues the ack of job id for the attached stream.
func (s *session) ack(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out != nil && s.out.batches && s.out.putAck(id) {
		return
	}
	s.sendLocked(outMsg{m: ackMsg(id)})
}

// sendLocked queues om without blocking. A full queue means the worker
// stopped reading: the stream is detached, and the session waits for the
// worker to resume like after any other disconnect.
func (s *session) sendLocked(om outMsg) bool {
	if s.out == nil {
		return false
	}
	if s.out.put(om) {
		return true
	}
	s.b.m.stalled.Inc()
	s.detachStop(fmt.Errorf("%w: its send queue of %d messages is full", errStalled, cap(s.out.ch)))
	return false
}

// handleResult accepts a worker's result for a job of this session.
func (s *session) handleResult(r *pb.JobResult) { s.handleResultCredit(r, 0) }

// generation identifies the current attachment.
func (s *session) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attachGen
}

// handleResultCredit accepts a result; with gen set, one credit the worker
// sent with it is granted when the job is done (see creditAfter).
func (s *session) handleResultCredit(r *pb.JobResult, gen uint64) {
	if req, ok := s.acceptResult(r, gen); ok {
		s.goFinish(req)
	}
}

// acceptResult takes a worker's result for one of the session's jobs out
// of the jobs in flight and returns what is to be finished, which the
// caller hands to goFinish; every other result is answered here (an ack,
// or a refusal).
func (s *session) acceptResult(r *pb.JobResult, gen uint64) (finishReq, bool) {
	s.mu.Lock()
	if gen != 0 && gen == s.attachGen {
		s.tied++ // until creditAfter(gen), which every path below calls
	}
	ij, ok := s.inflight[r.GetJobId()]
	if !ok {
		timedOut, done := s.completed[r.GetJobId()]
		if t, busy := s.finishing[r.GetJobId()]; busy {
			if !t {
				// A copy of this result, sent again on a resumed stream
				// (or on the old one, delivered late), is being submitted:
				// this one is the same result, and the ack follows.
				s.mu.Unlock()
				s.creditAfter(gen)
				s.log.Debug("result received again while it is being submitted; the ack follows", "job_id", r.GetJobId())
				return finishReq{}, false
			}
			timedOut, done = true, true // the bridge is writing its own answer
		}
		s.mu.Unlock()
		s.creditAfter(gen)
		if done {
			if timedOut {
				// Too late: the bridge already wrote the timeout result.
				s.b.m.refused.WithLabelValues("late").Inc()
				s.b.rl.Warn(s.log, s.id+" late", "refused result that came after its timeout result", "job_id", r.GetJobId())
			}
			// Sent again after a reconnect, or late: acknowledge so the
			// worker forgets it.
			s.ack(r.GetJobId())
			return finishReq{}, false
		}
		s.b.m.refused.WithLabelValues("unknown_job").Inc()
		s.b.rl.Warn(s.log, s.id+" unknown_job", "refused result for a job not handed to this session", "job_id", r.GetJobId(), "peer", s.peerAddr())
		return finishReq{}, false
	}
	delete(s.inflight, r.GetJobId())
	s.finishing[r.GetJobId()] = false
	ij.stopTimer()
	s.wg.Add(1) // under mu, so that close (which sets closed under mu) waits for it
	s.mu.Unlock()

	return finishReq{ij: ij, res: s.workerResult(ij, r), how: outcomeWorker, gen: gen}, true
}

// creditAfter grants one credit held back for a result (gen set), unless
// the worker has attached again since: its hello counted the slot.
func (s *session) creditAfter(gen uint64) { s.creditsAfter(gen, 1) }

// creditsAfter grants n credits held back for results of attachment gen
// (see creditAfter), with one wake-up of the grab loops.
func (s *session) creditsAfter(gen uint64, n int) {
	if gen == 0 || n <= 0 {
		return
	}
	s.mu.Lock()
	if s.attachGen == gen {
		s.tied = max(s.tied-n, 0)
	}
	same := s.attachGen == gen && s.stream != nil && !s.closed
	s.mu.Unlock()
	if same {
		s.addCredit(uint32(n))
	}
}

// expire writes the classic timeout result for a job whose worker did not
// answer in time, and withdraws the job from the worker.
func (s *session) expire(id string) {
	s.mu.Lock()
	ij, ok := s.inflight[id]
	if !ok || s.closed {
		s.mu.Unlock()
		return
	}
	delete(s.inflight, id)
	s.finishing[id] = true
	s.wg.Add(1)
	s.sendLocked(outMsg{m: &pb.WorkResponse{Msg: &pb.WorkResponse_Cancel{Cancel: &pb.Cancel{JobId: id, Reason: "timed out; the bridge answered it"}}}})
	s.mu.Unlock()

	now := time.Now()
	res := ij.job.Answer(s.b.cfg.TimeoutReturn, plugin.TimeoutText(plugin.KindOf(string(ij.job.Type)), s.identifier),
		ij.dispatched, now, s.source())
	s.b.m.timedOut.WithLabelValues(ij.queue).Inc()
	s.log.Warn("job timed out on the worker; wrote the timeout result", "job_id", id, "host", ij.job.HostName, "service", ij.job.ServiceDescription)
	s.goFinish(finishReq{ij: ij, res: res, how: outcomeTimeout})
}

// outcome is how a job of a session ended.
type outcome int

const (
	outcomeWorker  outcome = iota // the worker's result
	outcomeTimeout                // the bridge's timeout result
	outcomeRefused                // the bridge's explicit result for a job it could not send
)

func (o outcome) String() string {
	switch o {
	case outcomeWorker:
		return "worker"
	case outcomeTimeout:
		return "timeout"
	}
	return "refused"
}

// finishAll puts the results of reqs on their result queues, then
// completes their jobs towards gearmand: all the results in one pipelined
// submit, and the completions on each gearmand connection in one write.
// Temporary submit errors are retried, each job on its own, until its
// result is submitted or the session closes (then gearmand requeues the
// job and it runs again); a permanent one fails the job at once.
func (s *session) finishAll(reqs []finishReq) {
	defer func() {
		// After completed is set (or the job went back to gearmand, or
		// failed): a result that comes now is answered from there.
		s.mu.Lock()
		for _, r := range reqs {
			delete(s.finishing, r.ij.id)
		}
		s.mu.Unlock()
	}()
	done := s.submitAll(reqs)
	s.completeAll(reqs, done)
	for i, r := range reqs {
		if done[i] {
			s.jobDone(r)
		}
	}
}

// submitAll submits the results of reqs; done[i] reports whether reqs[i]'s
// result is on its queue, or whether it has none to put there.
func (s *session) submitAll(reqs []finishReq) []bool {
	done := make([]bool, len(reqs))
	var batch []QueuedResult
	var of []int // index in reqs of each result in batch
	for i, r := range reqs {
		if !r.ij.job.Type.HasResult() {
			done[i] = true
			continue
		}
		queue := r.ij.job.ResultQueue
		if queue == "" {
			queue = s.b.cfg.ResultQueue
		}
		batch = append(batch, QueuedResult{Queue: queue, Payload: s.b.codec.Encode(r.res.Marshal())})
		of = append(of, i)
	}
	if len(batch) == 0 {
		return done
	}
	var dups []QueuedResult
	for k, err := range submitResults(s.ctx, s.b.results, batch) {
		r := reqs[of[k]]
		if !s.submit(r.ij, batch[k], err) {
			continue
		}
		done[of[k]] = true
		if len(s.b.dups) > 0 {
			// As a classic worker with dup_results_are_passive=yes (its
			// default): the copy feeds a second core as a passive result.
			dup := r.res
			dup.Type = modgearman.ResultPassive
			dups = append(dups, QueuedResult{Queue: batch[k].Queue, Payload: s.b.codec.Encode(dup.Marshal())})
		}
	}
	s.b.copyToDups(s.ctx, dups)
	return done
}

// completeAll completes the jobs of reqs that are done towards gearmand.
// The checks of one connection share a write; a job without a result
// rides with the next request (see completeJob). After a gearmand restart
// the handles are unknown; the results are already on their queues,
// which is what counts.
func (s *session) completeAll(reqs []finishReq, done []bool) {
	checks := map[*serverConn][]string{}
	for i, r := range reqs {
		if !done[i] {
			continue
		}
		if r.ij.job.Type.HasResult() {
			checks[r.ij.conn] = append(checks[r.ij.conn], r.ij.handle)
			continue
		}
		if wc := r.ij.conn.get(); wc != nil {
			if err := completeJob(s.ctx, wc, r.ij.handle, false); err != nil {
				s.log.Debug("complete job", "handle", r.ij.handle, "err", err)
			}
		}
	}
	for c, handles := range checks {
		wc := c.get()
		if wc == nil {
			continue
		}
		if bc, ok := wc.(batchCompleter); ok {
			if err := bc.CompleteAll(handles); err != nil {
				s.log.Debug("complete jobs", "server", c.server, "jobs", len(handles), "err", err)
			}
			continue
		}
		for _, h := range handles {
			if err := completeJob(s.ctx, wc, h, true); err != nil {
				s.log.Debug("complete job", "handle", h, "err", err)
			}
		}
	}
}

// jobDone records a job whose result is on its queue and whose job is
// completed, and acknowledges a worker's result.
func (s *session) jobDone(r finishReq) {
	ij, how := r.ij, r.how
	s.mu.Lock()
	s.completed[ij.id] = how != outcomeWorker
	s.completedQ = append(s.completedQ, ij.id)
	if len(s.completedQ) > completedMemory {
		delete(s.completed, s.completedQ[0])
		s.completedQ = slices.Delete(s.completedQ, 0, 1)
	}
	s.jobsDone++
	s.mu.Unlock()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		// One line per job, as a classic worker's debug=1; the session's
		// logger names the session, identity and worker.
		s.log.Debug("job done", "job_id", ij.id, "queue", ij.queue, "host", ij.job.HostName, "service", ij.job.ServiceDescription,
			"rc", r.res.ReturnCode, "outcome", how, "duration", time.Since(ij.dispatched))
	}
	if how == outcomeWorker {
		s.b.m.completed.WithLabelValues(ij.queue).Inc()
		s.b.m.jobDuration.WithLabelValues(ij.queue).Observe(time.Since(ij.dispatched).Seconds())
		s.ack(ij.id)
	}
}

// completeDelay bounds how long a completion waits for a GRAB to ride
// along with (see completeJob).
const completeDelay = time.Millisecond

// softCompleter is a WorkerConn that can send a completion with the next
// request instead of on its own.
type softCompleter interface {
	CompleteSoon(handle string, d time.Duration) error
}

// completeJob completes a job towards gearmand. A job without a result (an
// event handler, a notification) is completed within completeDelay, with
// the next request on the connection: the GRAB for the slot the job freed
// usually follows at once, and both then cost one write.
//
// A check whose result is already on its result queue is completed at
// once. Until gearmand has its WORK_COMPLETE it holds the job under the
// check's unique key, and the core, as soon as it has the result, may
// submit the next run of the check under that key (at once for a check
// that became overdue while it ran, as after a network cut): gearmand then
// merges the new job into the finished one, which ends with the
// completion, and the new run never happens. Holding the completion back
// for a GRAB widened that window from a scheduling delay to milliseconds.
func completeJob(ctx context.Context, wc WorkerConn, handle string, hasResult bool) error {
	if sc, ok := wc.(softCompleter); ok && !hasResult {
		return sc.CompleteSoon(handle, completeDelay)
	}
	return wc.Complete(ctx, handle, nil)
}

// submit sees one result's submission through: err is the outcome of its
// first attempt. Temporary errors are retried with backoff (logged once,
// then summed up when it succeeds). It reports false when the result was
// not submitted: the session closed (gearmand requeues the job) or the
// error is permanent (the job is failed towards gearmand).
func (s *session) submit(ij *inflightJob, r QueuedResult, err error) bool {
	backoff := newBackoff(50*time.Millisecond, 2*time.Second)
	var first error
	attempts := 0
	for {
		if err == nil {
			if attempts > 0 {
				s.log.Info("result submitted after retries", "queue", r.Queue, "job_id", ij.id, "attempts", attempts+1, "first_err", first)
			}
			return true
		}
		s.b.m.submitErrors.Inc()
		attempts++
		switch {
		case s.ctx.Err() != nil:
			s.log.Error("result not submitted before the session closed; gearmand requeues the job", "job_id", ij.id, "err", err)
			return false
		case gearman.Permanent(err):
			s.b.m.failedJobs.Inc()
			s.log.Error("result can never be submitted; failed the job", "queue", r.Queue, "job_id", ij.id, "host", ij.job.HostName, "err", err)
			if wc := ij.conn.get(); wc != nil {
				if ferr := wc.Fail(s.ctx, ij.handle); ferr != nil {
					s.log.Debug("fail job", "handle", ij.handle, "err", ferr)
				}
			}
			return false
		case attempts == 1:
			first = err
			// A gearmand outage fails a whole batch: one line per interval.
			s.b.rl.Warn(s.log, s.id+" submit", "submit result failed; retrying with backoff", "queue", r.Queue, "job_id", ij.id, "err", err)
		}
		sleepCtx(s.ctx, backoff.next())
		err = s.b.results.SubmitResult(s.ctx, r.Queue, r.Payload)
	}
}

// errUndecodable marks a job payload that does not decode with the key.
var errUndecodable = errors.New("payload does not decode; check the encryption key")

// decodeJob decodes and parses a grabbed job. Every error is permanent:
// the same bytes fail the same way on every worker.
func (b *Bridge) decodeJob(g *GrabbedJob) (modgearman.Job, error) {
	plain, err := b.codec.Decode(g.Data)
	if err != nil {
		return modgearman.Job{}, fmt.Errorf("%w: %w", errUndecodable, err)
	}
	return modgearman.ParseJob(plain)
}

// invalidReason is the metric label of a decodeJob error.
func invalidReason(err error) string {
	if errors.Is(err, errUndecodable) {
		return "undecodable"
	}
	return "invalid"
}

// workerResult builds the classic result from the worker's answer. Host and
// service come from the job, never from the worker.
func (s *session) workerResult(ij *inflightJob, r *pb.JobResult) modgearman.Result {
	start, finish := r.GetStartTime().AsTime(), r.GetFinishTime().AsTime()
	if r.GetStartTime() == nil {
		start = ij.dispatched
	}
	if r.GetFinishTime() == nil {
		finish = time.Now()
	}
	return ij.job.Answer(int(r.GetReturnCode()), string(r.GetOutput()), start, finish, s.source())
}

func (s *session) source() string { return "gearbridge worker @ " + s.identifier }

func (s *session) status() *pb.SessionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &pb.SessionStatus{
		SessionId:  s.id,
		Identifier: s.identifier,
		Identity:   s.identity,
		Queues:     slices.Clone(s.queues),
		Slots:      uint32(s.slots),
		Credit:     uint32(s.credit),
		InFlight:   uint32(len(s.inflight)),
		JobsDone:   s.jobsDone,
		Connected:  s.stream != nil,
		Started:    timestamppb.New(s.started),
		Peer:       s.peer,
	}
}

func ackMsg(id string) *pb.WorkResponse {
	return &pb.WorkResponse{Msg: &pb.WorkResponse_Ack{Ack: &pb.Ack{JobId: id}}}
}

// jobMessage converts a decoded classic job into its typed message.
func jobMessage(id, queue string, deadline time.Time, timeout time.Duration, j modgearman.Job) *pb.Job {
	m := &pb.Job{
		JobId:              id,
		Queue:              queue,
		Deadline:           timestamppb.New(deadline),
		Type:               jobType(j.Type),
		ResultQueue:        []byte(j.ResultQueue),
		TargetQueue:        []byte(j.TargetQueue),
		HostName:           []byte(j.HostName),
		ServiceDescription: []byte(j.ServiceDescription),
		Timeout:            durationpb.New(timeout),
		CommandLine:        []byte(j.CommandLine),
		Contact:            []byte(j.Contact),
		PluginOutput:       []byte(j.PluginOutput),
		LongPluginOutput:   []byte(j.LongPluginOutput),
		CheckOptions:       int32(j.CheckOptions),
		ScheduledCheck:     j.ScheduledCheck,
	}
	if !j.CoreTime.IsZero() {
		m.CoreTime = timestamppb.New(j.CoreTime)
	}
	if !j.StartTime.IsZero() {
		m.StartTime = timestamppb.New(j.StartTime)
	}
	if !j.NextCheck.IsZero() {
		m.NextCheck = timestamppb.New(j.NextCheck)
	}
	if j.Latency != 0 {
		m.Latency = durationpb.New(j.Latency)
	}
	return m
}

func jobType(t modgearman.JobType) pb.JobType {
	switch t {
	case modgearman.JobHost:
		return pb.JobType_JOB_TYPE_HOST
	case modgearman.JobService:
		return pb.JobType_JOB_TYPE_SERVICE
	case modgearman.JobEventHandler:
		return pb.JobType_JOB_TYPE_EVENTHANDLER
	case modgearman.JobNotification:
		return pb.JobType_JOB_TYPE_NOTIFICATION
	}
	return pb.JobType_JOB_TYPE_UNSPECIFIED
}

// backoff is capped exponential backoff with full jitter.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(minD, maxD time.Duration) *backoff { return &backoff{min: minD, max: maxD, cur: minD} }

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.cur = b.min }

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
