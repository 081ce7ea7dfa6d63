package gearman

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WorkerOptions configures DialWorker and NewWorker. The zero value is
// usable.
type WorkerOptions struct {
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// ClientID, when set, is sent with SET_CLIENT_ID after connecting; the
	// admin "workers" command shows it. It must pass ValidClientID.
	ClientID string
	// DialTimeout bounds connecting to one server. Default 5s.
	DialTimeout time.Duration
	// WriteTimeout bounds each write to the socket (a flush of buffered
	// packets, or one result too large for the 64 KiB buffer). Default 10s.
	WriteTimeout time.Duration
	// Dialer replaces the TCP dialer, e.g. to wrap the connection in TLS.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// MaxPacketSize bounds the body of a packet read from the server.
	// Default DefaultMaxPacketSize.
	MaxPacketSize int
	// OnServerError is called from the connection's reader goroutine for
	// every ERROR packet (e.g. JOB_NOT_FOUND for a completion of a job the
	// server no longer knows). It must not block. ERROR packets are logged
	// at warning level either way.
	OnServerError func(addr string, err *ServerError)

	// The fields below are used by NewWorker only.

	// Connections is the number of connections per server. Default 1.
	Connections int
	// InFlight is the number of jobs each connection may hold at once
	// (grabbed and not yet completed); each runs the handler in its own
	// goroutine. Default 1. More than 1 pipelines GRAB_JOB_UNIQ so that the
	// next job is already on its way while one is being completed.
	InFlight int
	// ConnectionPerFunction registers each function on its own connection
	// (times Connections) instead of all functions on each connection, so
	// that a busy function cannot starve another on gearmand without -R.
	ConnectionPerFunction bool
	// BackoffMin and BackoffMax bound the jittered exponential delay
	// between reconnection attempts. Defaults 100ms and 5s.
	BackoffMin, BackoffMax time.Duration
}

func (o WorkerOptions) withDefaults() WorkerOptions {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxPacketSize <= 0 {
		o.MaxPacketSize = DefaultMaxPacketSize
	}
	if o.Connections <= 0 {
		o.Connections = 1
	}
	if o.InFlight <= 0 {
		o.InFlight = 1
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	return o
}

// Job is a job assigned to a worker.
type Job struct {
	Handle   string
	Function string
	Unique   string
	Data     []byte
}

// WorkerConn is one worker connection to one gearmand. It grabs jobs only
// when Grab is called, and any number of grabbed jobs may be completed
// concurrently from other goroutines while a Grab is pending. Closing the
// connection makes gearmand requeue the jobs grabbed and not completed.
// WorkerConn does not reconnect; dial a new one (or use Worker).
type WorkerConn struct {
	addr       string
	log        *slog.Logger
	onErr      func(string, *ServerError)
	nc         net.Conn
	w          *wire
	pr         *PacketReader
	readerDone chan struct{}

	mu      sync.Mutex
	err     error         // why the connection failed; nil while alive
	grabs   []*grabCall   // GRAB_JOB_UNIQ awaiting JOB_ASSIGN_UNIQ or NO_JOB, in order
	orphans []*Job        // jobs whose Grab gave up; returned by the next Grab
	noop    chan struct{} // closed and replaced on every NOOP (and on failure)
}

// grabCall is one GRAB_JOB_UNIQ awaiting its answer. The calls written
// together by TryGrabN share done, closed with the answer to the last of
// them (answers come in order), so their caller wakes once, not per job.
type grabCall struct {
	done      chan struct{}
	last      bool // closes done when answered
	job       *Job // nil for NO_JOB
	err       error
	delivered bool // guarded by WorkerConn.mu
	abandoned bool // guarded by WorkerConn.mu
}

// DialWorker connects to one server. When opts.ClientID is set it is sent
// with SET_CLIENT_ID. Register functions with CanDo before calling Grab.
func DialWorker(ctx context.Context, addr string, opts WorkerOptions) (*WorkerConn, error) {
	opts = opts.withDefaults()
	dial := dialFunc(opts.Dialer)
	if dial == nil {
		dial = defaultDialer(opts.DialTimeout)
	}
	dctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	nc, err := dial(dctx, addr)
	if err != nil {
		return nil, fmt.Errorf("dial worker connection to %s: %w", addr, err)
	}
	wc := &WorkerConn{
		addr:       addr,
		log:        discardLogger(opts.Logger),
		onErr:      opts.OnServerError,
		nc:         nc,
		w:          newWire(nc, opts.WriteTimeout),
		pr:         NewPacketReader(nc, opts.MaxPacketSize, readBufSize),
		readerDone: make(chan struct{}),
		noop:       make(chan struct{}),
	}
	go wc.readLoop()
	if opts.ClientID != "" {
		if err := wc.SetClientID(opts.ClientID); err != nil {
			wc.Close()
			return nil, err
		}
	}
	return wc, nil
}

// Addr returns the server address the connection was dialed to.
func (wc *WorkerConn) Addr() string { return wc.addr }

// Close closes the connection and waits for its reader goroutine. Pending
// Grab calls return an error wrapping ErrConnectionLost and ErrClosed.
// Jobs grabbed and not completed are requeued by gearmand. Close may be
// called more than once.
func (wc *WorkerConn) Close() error {
	if wc.Err() == nil {
		// Completions buffered by CompleteSoon go out first.
		_ = wc.flush()
	}
	wc.fail(ErrClosed)
	<-wc.readerDone
	return nil
}

// Err returns why the connection failed, or nil while it is usable.
func (wc *WorkerConn) Err() error {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	return wc.err
}

// SetClientID sets the ID shown by the admin "workers" command. It refuses
// an ID that ValidClientID refuses: gearmand would cut or garble it
// silently.
func (wc *WorkerConn) SetClientID(id string) error {
	if err := ValidClientID(id); err != nil {
		return err
	}
	return wc.write(true, PktSetClientID, nil, false, id)
}

// CanDo registers fn with plain CAN_DO. CAN_DO_TIMEOUT is never sent: it
// can hang gearmand up to 1.1.22; enforce timeouts in the handler instead.
func (wc *WorkerConn) CanDo(fn string) error {
	if err := checkFunction(fn); err != nil {
		return err
	}
	return wc.write(true, PktCanDo, nil, false, fn)
}

// CantDo unregisters fn.
func (wc *WorkerConn) CantDo(fn string) error {
	if err := checkFunction(fn); err != nil {
		return err
	}
	return wc.write(true, PktCantDo, nil, false, fn)
}

// ResetAbilities unregisters all functions.
func (wc *WorkerConn) ResetAbilities() error {
	return wc.write(true, PktResetAbilities, nil, false)
}

// Complete sends WORK_COMPLETE with the result data.
func (wc *WorkerConn) Complete(handle string, data []byte) error {
	return wc.result(true, PktWorkComplete, handle, data)
}

// CompleteAll sends WORK_COMPLETE without data for every handle, in one
// write.
func (wc *WorkerConn) CompleteAll(handles []string) error {
	return wc.sendCompletions(handles, func(write func(*PacketWriter) error) error { return wc.w.send(true, write) })
}

// CompleteSoon sends WORK_COMPLETE without data within d: together with
// the next request written on the connection (typically the GRAB for the
// slot the job freed), or on its own when none comes in time. Close sends
// it before closing.
func (wc *WorkerConn) CompleteSoon(handle string, d time.Duration) error {
	return wc.sendCompletions([]string{handle}, func(write func(*PacketWriter) error) error { return wc.w.sendSoon(d, write) })
}

// sendCompletions writes WORK_COMPLETE without data for handles through
// send, one of the wire's send methods.
func (wc *WorkerConn) sendCompletions(handles []string, send func(write func(*PacketWriter) error) error) error {
	for _, h := range handles {
		if !validArg(h) {
			return fmt.Errorf("%w: %s argument %q", ErrInvalidArgument, PktWorkComplete, h)
		}
	}
	err := send(func(pw *PacketWriter) error {
		if err := wc.Err(); err != nil {
			return err
		}
		for _, h := range handles {
			if err := pw.writeStrings(PktWorkComplete, nil, true, h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		wc.fail(err)
		return fmt.Errorf("send %s to %s: %w", PktWorkComplete, wc.addr, connLost(wc.Err()))
	}
	return nil
}

// Fail sends WORK_FAIL.
func (wc *WorkerConn) Fail(handle string) error {
	return wc.write(true, PktWorkFail, nil, false, handle)
}

// Exception sends WORK_EXCEPTION with data. gearmand forwards it to
// foreground clients that asked for exceptions (Client does) and sends
// WORK_FAIL to the others; either way the job is finished.
func (wc *WorkerConn) Exception(handle string, data []byte) error {
	return wc.result(true, PktWorkException, handle, data)
}

// Data sends WORK_DATA, a partial result forwarded to foreground clients.
func (wc *WorkerConn) Data(handle string, data []byte) error {
	return wc.result(true, PktWorkData, handle, data)
}

// Status sends WORK_STATUS with progress numerator/denominator.
func (wc *WorkerConn) Status(handle string, numerator, denominator int) error {
	return wc.write(true, PktWorkStatus, nil, false, handle, strconv.Itoa(numerator), strconv.Itoa(denominator))
}

func (wc *WorkerConn) result(flush bool, t PacketType, handle string, data []byte) error {
	return wc.write(flush, t, data, true, handle)
}

// flush writes out packets buffered with flush false.
func (wc *WorkerConn) flush() error {
	return wc.w.send(true, func(*PacketWriter) error { return nil })
}

// write buffers one request made of string arguments and optional raw data.
func (wc *WorkerConn) write(flush bool, t PacketType, data []byte, hasData bool, args ...string) error {
	for _, a := range args {
		if !validArg(a) {
			return fmt.Errorf("%w: %s argument %q", ErrInvalidArgument, t, a)
		}
	}
	err := wc.w.send(flush, func(pw *PacketWriter) error {
		if err := wc.Err(); err != nil {
			return err
		}
		return pw.writeStrings(t, data, hasData, args...)
	})
	if err != nil {
		wc.fail(err)
		return fmt.Errorf("send %s to %s: %w", t, wc.addr, connLost(wc.Err()))
	}
	return nil
}

// Grab returns the next job for one of the registered functions. It sends
// GRAB_JOB_UNIQ; on NO_JOB it sends PRE_SLEEP, waits for gearmand's NOOP
// and grabs again. Grab never asks for a job the caller did not ask for.
// Several goroutines may call Grab at once; each gets its own job.
//
// If ctx ends while a GRAB_JOB_UNIQ is unanswered and gearmand then assigns
// a job, that job is kept and returned by the next Grab (or requeued by
// gearmand when the connection closes).
func (wc *WorkerConn) Grab(ctx context.Context) (*Job, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		job, err := wc.grabOnce(ctx)
		if err != nil || job != nil {
			return job, err
		}
		// NO_JOB: sleep until NOOP. The wake-up channel is taken before
		// PRE_SLEEP is written, so the NOOP answering it cannot be missed.
		wc.mu.Lock()
		noop := wc.noop
		wc.mu.Unlock()
		if err := wc.write(true, PktPreSleep, nil, false); err != nil {
			return nil, err
		}
		select {
		case <-noop:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// grabOnce sends one GRAB_JOB_UNIQ and waits for its answer; it returns a
// nil job for NO_JOB.
func (wc *WorkerConn) grabOnce(ctx context.Context) (*Job, error) {
	g := &grabCall{done: make(chan struct{}), last: true}
	wc.mu.Lock()
	if wc.err != nil {
		err := wc.err
		wc.mu.Unlock()
		return nil, fmt.Errorf("grab from %s: %w", wc.addr, connLost(err))
	}
	if len(wc.orphans) > 0 {
		job := wc.orphans[0]
		wc.orphans = wc.orphans[1:]
		wc.mu.Unlock()
		return job, nil
	}
	wc.mu.Unlock()
	queued := false
	err := wc.w.send(true, func(pw *PacketWriter) error {
		wc.mu.Lock()
		if wc.err != nil {
			err := wc.err
			wc.mu.Unlock()
			return err
		}
		wc.grabs = append(wc.grabs, g)
		wc.mu.Unlock()
		queued = true
		return pw.writeStrings(PktGrabJobUniq, nil, false)
	})
	if err != nil {
		wc.fail(err)
		if !queued {
			return nil, fmt.Errorf("grab from %s: %w", wc.addr, connLost(wc.Err()))
		}
	}
	select {
	case <-g.done:
		if g.err != nil {
			return nil, fmt.Errorf("grab from %s: %w", wc.addr, g.err)
		}
		return g.job, nil
	case <-ctx.Done():
		wc.abandonGrabs(nil, g)
		return nil, ctx.Err()
	}
}

// abandonGrabs is for a grab whose caller gave up: the jobs it already
// holds, and those assigned to its calls, now or later, wait for the next
// grab.
func (wc *WorkerConn) abandonGrabs(jobs []*Job, calls ...*grabCall) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	wc.orphans = append(wc.orphans, jobs...)
	for _, g := range calls {
		if !g.delivered {
			g.abandoned = true
		} else if g.job != nil {
			wc.orphans = append(wc.orphans, g.job)
		}
	}
}

// fail marks the connection dead, closes it and wakes every pending Grab.
func (wc *WorkerConn) fail(cause error) {
	wc.mu.Lock()
	if wc.err != nil {
		wc.mu.Unlock()
		return
	}
	wc.err = cause
	lost := connLost(cause)
	for _, g := range wc.grabs {
		g.err = lost
		g.delivered = true
		if g.last {
			close(g.done)
		}
	}
	wc.grabs = nil
	wc.orphans = nil
	close(wc.noop)
	wc.mu.Unlock()
	// Closed outside the lock: a TLS connection may block in Close.
	wc.nc.Close()
}

func (wc *WorkerConn) readLoop() {
	defer close(wc.readerDone)
	for {
		p, err := wc.pr.ReadPacket()
		if err != nil {
			wc.fail(fmt.Errorf("read from %s: %w", wc.addr, err))
			return
		}
		if err := wc.dispatch(p); err != nil {
			wc.fail(fmt.Errorf("from %s: %w", wc.addr, err))
			return
		}
	}
}

// dispatch routes one server packet: assignments and NO_JOB to the oldest
// pending grab, NOOP to sleepers, ERROR to the log and OnServerError.
func (wc *WorkerConn) dispatch(p *Packet) error {
	if p.Magic != MagicRes {
		return fmt.Errorf("%w: request magic on %s", ErrProtocol, p.Type)
	}
	switch p.Type {
	case PktNoop:
		wc.mu.Lock()
		if wc.err == nil {
			close(wc.noop)
			wc.noop = make(chan struct{})
		}
		wc.mu.Unlock()
	case PktNoJob, PktJobAssignUniq, PktJobAssign, PktJobAssignAll:
		var job *Job
		switch p.Type {
		case PktJobAssignUniq:
			job = newJob(p.Arg(0), p.Arg(1), p.Arg(2), p.Arg(3))
		case PktJobAssign:
			job = newJob(p.Arg(0), p.Arg(1), nil, p.Arg(2))
		case PktJobAssignAll:
			job = newJob(p.Arg(0), p.Arg(1), p.Arg(2), p.Arg(4))
		}
		wc.mu.Lock()
		defer wc.mu.Unlock()
		if len(wc.grabs) == 0 {
			return fmt.Errorf("%w: unsolicited %s", ErrProtocol, p.Type)
		}
		g := wc.grabs[0]
		wc.grabs[0] = nil
		wc.grabs = wc.grabs[1:]
		if g.abandoned {
			if job != nil {
				wc.orphans = append(wc.orphans, job)
			}
			return nil
		}
		g.job = job
		g.delivered = true
		if g.last {
			close(g.done)
		}
	case PktError:
		se := &ServerError{Code: string(p.Arg(0)), Text: string(p.Arg(1))}
		wc.log.Warn("gearman worker: server error", "server", wc.addr, "code", se.Code, "text", se.Text)
		if wc.onErr != nil {
			wc.onErr(wc.addr, se)
		}
	default:
		wc.log.Debug("gearman worker: ignoring packet", "server", wc.addr, "type", p.Type.String())
	}
	return nil
}

// newJob copies an assignment out of the reader's buffer, with one
// allocation for the three strings.
func newJob(handle, fn, unique, data []byte) *Job {
	var b strings.Builder
	b.Grow(len(handle) + len(fn) + len(unique))
	b.Write(handle)
	b.Write(fn)
	b.Write(unique)
	s := b.String()
	h, f := len(handle), len(handle)+len(fn)
	return &Job{
		Handle:   s[:h],
		Function: s[h:f],
		Unique:   s[f:],
		Data:     append([]byte(nil), data...),
	}
}

// Handler runs one job for a Worker. A nil error sends WORK_COMPLETE with
// the returned data; a *WorkException (found with errors.As) sends
// WORK_EXCEPTION with its Data; any other error sends WORK_FAIL. ctx ends
// when the Worker is closed.
type Handler func(ctx context.Context, job *Job) ([]byte, error)

// Worker runs a Handler on connections to every server, reconnecting with
// jittered exponential backoff. It is a convenience on top of WorkerConn.
type Worker struct {
	servers []string
	fns     []string
	handler Handler
	opts    WorkerOptions
	log     *slog.Logger

	grabCtx    context.Context // ends when no more jobs may be grabbed
	stopGrab   context.CancelFunc
	jobCtx     context.Context // passed to handlers; ends on Close
	cancelJobs context.CancelFunc
	wg         sync.WaitGroup

	mu    sync.Mutex
	conns map[*WorkerConn]struct{}
}

// NewWorker starts a worker that registers functions on opts.Connections
// connections per server and runs opts.InFlight jobs at a time per
// connection. Stop it with Shutdown or Close.
func NewWorker(servers, functions []string, handler Handler, opts WorkerOptions) *Worker {
	opts = opts.withDefaults()
	w := &Worker{
		servers: append([]string(nil), servers...),
		fns:     append([]string(nil), functions...),
		handler: handler,
		opts:    opts,
		log:     discardLogger(opts.Logger),
		conns:   make(map[*WorkerConn]struct{}),
	}
	w.grabCtx, w.stopGrab = context.WithCancel(context.Background())
	w.jobCtx, w.cancelJobs = context.WithCancel(context.Background())
	groups := [][]string{w.fns}
	if opts.ConnectionPerFunction {
		groups = groups[:0]
		for _, fn := range w.fns {
			groups = append(groups, []string{fn})
		}
	}
	for _, addr := range w.servers {
		for range opts.Connections {
			for _, g := range groups {
				w.wg.Add(1)
				go w.runConn(addr, g)
			}
		}
	}
	return w
}

// Shutdown stops grabbing, lets running handlers finish and send their
// results, then closes the connections. If ctx ends first it falls back to
// Close and returns ctx.Err().
func (w *Worker) Shutdown(ctx context.Context) error {
	w.stopGrab()
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		w.cancelJobs()
		return nil
	case <-ctx.Done():
		w.Close()
		<-done
		return ctx.Err()
	}
}

// Close stops grabbing, cancels the handlers' context, closes the
// connections (gearmand requeues unfinished jobs) and waits for the
// goroutines, including running handlers. It may be called more than once.
func (w *Worker) Close() error {
	w.stopGrab()
	w.cancelJobs()
	w.mu.Lock()
	for wc := range w.conns {
		wc.fail(ErrClosed)
	}
	w.mu.Unlock()
	w.wg.Wait()
	return nil
}

// runConn keeps one connection to addr serving fns until the worker stops.
func (w *Worker) runConn(addr string, fns []string) {
	defer w.wg.Done()
	bo := newBackoff(w.opts.BackoffMin, w.opts.BackoffMax)
	for w.grabCtx.Err() == nil {
		wc, err := w.connect(addr, fns)
		if err != nil {
			d := bo.next()
			w.log.Warn("gearman worker: connect failed", "server", addr, "retry_in", d, "err", err)
			sleepCtx(w.grabCtx, d)
			continue
		}
		bo.reset()
		w.log.Info("gearman worker: connected", "server", addr, "functions", len(fns))
		var slots sync.WaitGroup
		for range w.opts.InFlight {
			slots.Go(func() { w.serve(wc) })
		}
		slots.Wait()
		w.mu.Lock()
		delete(w.conns, wc)
		w.mu.Unlock()
		cause := wc.Err()
		wc.Close()
		if w.grabCtx.Err() != nil {
			return
		}
		d := bo.next()
		w.log.Warn("gearman worker: connection lost", "server", addr, "retry_in", d, "err", cause)
		sleepCtx(w.grabCtx, d)
	}
}

func (w *Worker) connect(addr string, fns []string) (*WorkerConn, error) {
	wc, err := DialWorker(w.grabCtx, addr, w.opts)
	if err != nil {
		return nil, err
	}
	for _, fn := range fns {
		if err := wc.CanDo(fn); err != nil {
			wc.Close()
			return nil, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.grabCtx.Err() != nil {
		wc.Close()
		return nil, ErrClosed
	}
	w.conns[wc] = struct{}{}
	return wc, nil
}

// serve grabs and runs jobs on wc until it fails or grabbing stops. The
// result of a job is buffered without a flush when another grab follows at
// once, so that WORK_COMPLETE and GRAB_JOB_UNIQ leave in one write.
func (w *Worker) serve(wc *WorkerConn) {
	defer wc.flush()
	for {
		job, err := wc.Grab(w.grabCtx)
		if err != nil {
			if w.grabCtx.Err() == nil {
				wc.fail(err) // wake the other slots of this connection
			}
			return
		}
		data, herr := w.handler(w.jobCtx, job)
		flush := w.grabCtx.Err() != nil
		var ex *WorkException
		switch {
		case herr == nil:
			err = wc.result(flush, PktWorkComplete, job.Handle, data)
		case errors.As(herr, &ex):
			err = wc.result(flush, PktWorkException, job.Handle, ex.Data)
		default:
			w.log.Debug("gearman worker: job failed", "handle", job.Handle, "function", job.Function, "err", herr)
			err = wc.write(flush, PktWorkFail, nil, false, job.Handle)
		}
		if err != nil {
			return
		}
	}
}
