package gearman

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Priority orders jobs within one function: gearmand hands out all HIGH jobs
// before NORMAL ones and those before LOW ones.
type Priority uint8

// Job priorities. The zero value is PriorityNormal.
const (
	PriorityNormal Priority = iota
	PriorityHigh
	PriorityLow
)

// String returns "normal", "high" or "low".
func (p Priority) String() string {
	switch p {
	case PriorityNormal:
		return "normal"
	case PriorityHigh:
		return "high"
	case PriorityLow:
		return "low"
	}
	return fmt.Sprintf("Priority(%d)", uint8(p))
}

// submitType returns the SUBMIT_JOB* packet type for a priority.
func submitType(p Priority, background bool) (PacketType, error) {
	switch {
	case p == PriorityNormal && background:
		return PktSubmitJobBg, nil
	case p == PriorityHigh && background:
		return PktSubmitJobHighBg, nil
	case p == PriorityLow && background:
		return PktSubmitJobLowBg, nil
	case p == PriorityNormal:
		return PktSubmitJob, nil
	case p == PriorityHigh:
		return PktSubmitJobHigh, nil
	case p == PriorityLow:
		return PktSubmitJobLow, nil
	}
	return 0, fmt.Errorf("%w: priority %d", ErrInvalidArgument, p)
}

// ClientOptions configures a Client. The zero value is usable.
type ClientOptions struct {
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// Window bounds the requests in flight (written, reply not yet read) on
	// the connection. Further callers wait. Default 128: gearmand answers a
	// pipelined window of 100 at about 150k submits/s on loopback, and a
	// larger window only grows the loss when a connection dies.
	Window int
	// DialTimeout bounds connecting and the OPTION_REQ handshake to one
	// server. Default 5s.
	DialTimeout time.Duration
	// WriteTimeout bounds each write to the socket (a flush of buffered
	// requests, or one request too large for the 64 KiB buffer); a server
	// that stops reading for longer is treated as dead. Default 10s.
	WriteTimeout time.Duration
	// BackoffMin and BackoffMax bound the jittered exponential delay between
	// connection rounds (one round tries every server once). Defaults 100ms
	// and 5s.
	BackoffMin, BackoffMax time.Duration
	// Dialer replaces the TCP dialer, e.g. to wrap the connection in TLS.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// MaxPacketSize bounds the body of a packet read from the server.
	// Default DefaultMaxPacketSize.
	MaxPacketSize int
	// WaitForReady makes calls wait (until their context ends) for a
	// connection while no server is reachable. By default a call made after
	// a whole connection round failed returns ErrNoServer at once; calls
	// made while the first round is still running always wait for it.
	WaitForReady bool
	// FlushDelay, when set, writes a request up to this long after it is
	// made, with every request made meanwhile: a burst of submits from
	// many goroutines then costs one write and one wake-up of gearmand
	// instead of one each. Zero writes each request at once.
	FlushDelay time.Duration
	// OnConnectionLost, when set, is called from the client's connection
	// goroutine whenever an established connection dies or a whole
	// connection round fails (not when the client is closed). It must not
	// block. A caller uses it to learn of a server restart that happened
	// between two of its own requests.
	OnConnectionLost func(addr string, err error)
	// NewUnique makes the unique key of a background job submitted with
	// none. Default: a random UUID, as libgearman does. gearmand's
	// persistent queues (libsqlite3 and the others) store a job under its
	// function and unique key, so with an empty key every background job of
	// a function replaces the stored one before it, and after a crash only
	// the last would come back.
	NewUnique func() string
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Window <= 0 {
		o.Window = 128
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
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
	if o.MaxPacketSize <= 0 {
		o.MaxPacketSize = DefaultMaxPacketSize
	}
	if o.NewUnique == nil {
		o.NewUnique = randomUUID
	}
	return o
}

// randomUUID returns a version 4 UUID (RFC 9562).
func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Client submits jobs to one of several gearmand servers over one pipelined
// connection. It uses the first server that answers, fails over to the next
// when the connection dies, and reconnects in the background with jittered
// exponential backoff. All methods are safe for concurrent use.
//
// A request in flight when its connection dies returns an error wrapping
// ErrConnectionLost; it is never silently dropped nor retried, because the
// server may or may not have queued it. A request that was never written
// (the connection was already dead) is sent on the next connection.
type Client struct {
	opts    ClientOptions
	log     *slog.Logger
	servers []string
	dial    dialFunc
	sem     chan struct{} // window: one token per request awaiting its reply
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	cc      *clientConn   // current connection, nil while (re)connecting
	down    error         // last round's error while no server is reachable
	changed chan struct{} // closed and replaced whenever cc, down or closed change
	closed  bool
}

// NewClient returns a client for the given servers ("host:port") and starts
// connecting in the background. Close it to stop.
func NewClient(servers []string, opts ClientOptions) *Client {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts:    opts,
		log:     discardLogger(opts.Logger),
		servers: append([]string(nil), servers...),
		dial:    opts.Dialer,
		sem:     make(chan struct{}, opts.Window),
		cancel:  cancel,
		changed: make(chan struct{}),
	}
	if c.dial == nil {
		c.dial = defaultDialer(opts.DialTimeout)
	}
	c.wg.Add(1)
	go c.run(ctx)
	return c
}

// Close closes the connection and stops reconnecting. Requests in flight
// return an error wrapping ErrConnectionLost and ErrClosed; later calls
// return ErrClosed. Close waits for the client's goroutines and may be
// called more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.notifyLocked()
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// run owns the connection: it connects, waits for the connection to die and
// connects again, until Close.
func (c *Client) run(ctx context.Context) {
	defer c.wg.Done()
	bo := newBackoff(c.opts.BackoffMin, c.opts.BackoffMax)
	for {
		cc, err := c.connectAny(ctx)
		if ctx.Err() != nil {
			if cc != nil {
				cc.fail(ErrClosed)
				<-cc.readerDone
			}
			return
		}
		if err != nil {
			c.mu.Lock()
			c.down = err
			c.notifyLocked()
			c.mu.Unlock()
			d := bo.next()
			c.log.Warn("gearman client: no server reachable", "servers", c.servers, "retry_in", d, "err", err)
			if c.opts.OnConnectionLost != nil {
				c.opts.OnConnectionLost("", err)
			}
			if !sleepCtx(ctx, d) {
				return
			}
			continue
		}
		bo.reset()
		c.mu.Lock()
		c.cc, c.down = cc, nil
		c.notifyLocked()
		c.mu.Unlock()
		c.log.Info("gearman client: connected", "server", cc.addr)
		select {
		case <-cc.dead:
		case <-ctx.Done():
			cc.fail(ErrClosed)
		}
		<-cc.readerDone
		// A connection that died before it was made current above was not
		// forgotten by fail (it was not current yet); requests would get
		// it again and again, each failing at once without writing.
		c.connDied(cc)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("gearman client: connection lost", "server", cc.addr, "err", cc.cause())
		if c.opts.OnConnectionLost != nil {
			c.opts.OnConnectionLost(cc.addr, cc.cause())
		}
	}
}

// connectAny tries the servers in order and returns the first connection
// that completes the handshake.
func (c *Client) connectAny(ctx context.Context) (*clientConn, error) {
	if len(c.servers) == 0 {
		return nil, errors.New("no servers configured")
	}
	var errs []error
	for _, addr := range c.servers {
		cc, err := c.connect(ctx, addr)
		if err == nil {
			return cc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.log.Debug("gearman client: connect failed", "server", addr, "err", err)
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// connect dials addr and asks for WORK_EXCEPTION forwarding; the OPTION_RES
// round trip also proves that a Gearman server is listening.
func (c *Client) connect(ctx context.Context, addr string) (*clientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	nc, err := c.dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	pr := NewPacketReader(nc, c.opts.MaxPacketSize, readBufSize)
	if err := handshake(ctx, nc, pr); err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	cc := &clientConn{
		c:          c,
		addr:       addr,
		nc:         nc,
		w:          newWire(nc, c.opts.WriteTimeout),
		pr:         pr,
		running:    make(map[string]*call),
		dead:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	c.wg.Add(1)
	go cc.readLoop()
	return cc, nil
}

// handshake sends OPTION_REQ "exceptions" and reads its OPTION_RES with the
// connection's reader, before the reader goroutine starts.
func handshake(ctx context.Context, nc net.Conn, pr *PacketReader) error {
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := nc.Write(AppendPacket(nil, MagicReq, PktOptionReq, []byte("exceptions"))); err != nil {
		return err
	}
	p, err := pr.ReadPacket()
	if err != nil {
		return err
	}
	switch {
	case p.Type == PktError:
		return &ServerError{Code: string(p.Arg(0)), Text: string(p.Arg(1))}
	case p.Magic != MagicRes || p.Type != PktOptionRes:
		return fmt.Errorf("%w: got %s %s to OPTION_REQ", ErrProtocol, p.Magic, p.Type)
	}
	if !stop() {
		return ctx.Err()
	}
	return nc.SetDeadline(time.Time{})
}

// conn returns the current connection, waiting while one is being set up.
func (c *Client) conn(ctx context.Context) (*clientConn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if cc := c.cc; cc != nil {
			c.mu.Unlock()
			return cc, nil
		}
		if c.down != nil && !c.opts.WaitForReady {
			err := c.down
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: %w", ErrNoServer, err)
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// connDied forgets cc so that new requests wait for the next connection.
func (c *Client) connDied(cc *clientConn) {
	c.mu.Lock()
	if c.cc == cc {
		c.cc = nil
		c.notifyLocked()
	}
	c.mu.Unlock()
}

// Submit submits one job and returns its handle once gearmand created it.
// With background true the job is a background job (SUBMIT_JOB*_BG).
// With background false it is a foreground job whose result is discarded;
// use Do to wait for the result. A non-empty unique key makes gearmand
// coalesce the job with a queued or running job of the same function and
// unique key, returning that job's handle. A background job submitted
// without a unique key gets a fresh one (ClientOptions.NewUnique).
//
// A refusal by gearmand (e.g. a full queue) returns a *ServerError at once.
// If ctx ends before the reply, Submit returns ctx.Err(); the job may still
// be created, and the reply is consumed and dropped.
func (c *Client) Submit(ctx context.Context, fn, unique string, data []byte, prio Priority, background bool) (string, error) {
	kind := kindSubmitBg
	if !background {
		kind = kindSubmitFg
	} else if unique == "" {
		// Stored jobs need distinct keys (see ClientOptions.NewUnique);
		// a fresh key coalesces with nothing, like an empty one.
		unique = c.opts.NewUnique()
	}
	cl, err := c.roundTrip(ctx, kind, prio, fn, unique, data)
	if err != nil {
		return "", err
	}
	if cl.err != nil {
		return "", fmt.Errorf("submit job to %s: %w", fn, cl.err)
	}
	return cl.handle, nil
}

// Do submits a foreground job and waits for its result. It returns the
// WORK_COMPLETE data, an error wrapping ErrWorkFail for WORK_FAIL, or a
// *WorkException for WORK_EXCEPTION. WORK_DATA, WORK_WARNING and
// WORK_STATUS are ignored. If ctx ends first, Do returns ctx.Err(); the job
// keeps running on the worker and its result is dropped.
func (c *Client) Do(ctx context.Context, fn, unique string, data []byte, prio Priority) ([]byte, error) {
	cl, err := c.roundTrip(ctx, kindDo, prio, fn, unique, data)
	if err != nil {
		return nil, err
	}
	if cl.err != nil {
		return nil, fmt.Errorf("run job on %s: %w", fn, cl.err)
	}
	return cl.data, nil
}

// Echo sends ECHO_REQ and returns the echoed data: a cheap health probe
// that travels the same pipeline as submits.
func (c *Client) Echo(ctx context.Context, data []byte) ([]byte, error) {
	cl, err := c.roundTrip(ctx, kindEcho, 0, "", "", data)
	if err != nil {
		return nil, err
	}
	if cl.err != nil {
		return nil, fmt.Errorf("echo: %w", cl.err)
	}
	return cl.data, nil
}

// BackgroundJob is one job of SubmitAll.
type BackgroundJob struct {
	Function string
	Unique   string // empty: a fresh key (ClientOptions.NewUnique)
	Data     []byte
	Priority Priority
}

// SubmitAll submits jobs as background jobs, pipelined: their requests
// share writes, without FlushDelay, and it returns once gearmand answered
// every one. errs[i] is the error of jobs[i], nil when gearmand created
// it; the errors are those of Submit. It is how one caller submits a batch
// without a goroutine per job.
func (c *Client) SubmitAll(ctx context.Context, jobs []BackgroundJob) []error {
	errs := make([]error, len(jobs))
	calls := make([]*call, len(jobs))
	var unflushed *clientConn // buffered requests not yet written
	flush := func() {
		if unflushed != nil {
			unflushed.flush()
			unflushed = nil
		}
	}
	for i, j := range jobs {
		unique := j.Unique
		if unique == "" {
			unique = c.opts.NewUnique()
		}
		t, err := c.checkRequest(kindSubmitBg, j.Priority, j.Function, unique)
		if err != nil {
			errs[i] = err
			continue
		}
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		select {
		case c.sem <- struct{}{}:
		default:
			// The window is full: what is buffered must leave before
			// replies can free it.
			flush()
			select {
			case c.sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				continue
			}
		}
		cl := &call{kind: kindSubmitBg, slot: true, done: make(chan struct{})}
		cc, err := c.sendCall(ctx, cl, t, j.Function, unique, j.Data, func(cc *clientConn) bool {
			if unflushed != cc {
				flush()
			}
			return false
		})
		if err != nil {
			errs[i] = err
			continue
		}
		unflushed = cc
		calls[i] = cl
	}
	flush()
	for i, cl := range calls {
		if cl == nil {
			continue
		}
		select {
		case <-cl.done:
			if cl.err != nil {
				errs[i] = fmt.Errorf("submit job to %s: %w", jobs[i].Function, cl.err)
			}
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return errs
}

// checkRequest validates a request and returns its packet type.
func (c *Client) checkRequest(kind callKind, prio Priority, fn, unique string) (PacketType, error) {
	if kind == kindEcho {
		return PktEchoReq, nil
	}
	t, err := submitType(prio, kind == kindSubmitBg)
	if err != nil {
		return 0, err
	}
	if err := checkFunction(fn); err != nil {
		return 0, err
	}
	if err := checkUnique(unique); err != nil {
		return 0, err
	}
	return t, nil
}

// sendCall writes cl's request on the current connection, moving on to the
// next one when the current one turns out dead before the write. The
// caller holds a window token; on error it is given back. flushNow, called
// with the connection about to take the request, reports whether the
// request is written at once (else it stays buffered until cc.flush).
func (c *Client) sendCall(ctx context.Context, cl *call, t PacketType, fn, unique string, data []byte, flushNow func(*clientConn) bool) (*clientConn, error) {
	for {
		cc, err := c.conn(ctx)
		if err != nil {
			<-c.sem
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if cc.send(cl, t, fn, unique, data, flushNow(cc)) {
			return cc, nil
		}
		// Never written: the connection was dead already. Try the next one.
		if err := ctx.Err(); err != nil {
			<-c.sem
			return nil, err
		}
	}
}

// roundTrip sends one request and waits for the call to finish. A context
// error is returned as is; other errors are in cl.err or wrapped here.
func (c *Client) roundTrip(ctx context.Context, kind callKind, prio Priority, fn, unique string, data []byte) (*call, error) {
	t, err := c.checkRequest(kind, prio, fn, unique)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cl := &call{kind: kind, slot: true, done: make(chan struct{})}
	if _, err := c.sendCall(ctx, cl, t, fn, unique, data, func(*clientConn) bool { return true }); err != nil {
		return nil, err
	}
	select {
	case <-cl.done:
		return cl, nil
	case <-ctx.Done():
		if kind == kindDo {
			cl.cc.abandon(cl)
		}
		return nil, ctx.Err()
	}
}

type callKind uint8

const (
	kindSubmitBg callKind = iota // reply JOB_CREATED
	kindSubmitFg                 // reply JOB_CREATED; the result is dropped
	kindDo                       // reply JOB_CREATED, then WORK_COMPLETE/FAIL/EXCEPTION
	kindEcho                     // reply ECHO_RES
)

// call is one request awaiting its reply. The fields below done are written
// by the finisher before it closes done and read by the caller after.
type call struct {
	kind      callKind
	cc        *clientConn
	slot      bool  // holds a window token; guarded by cc.mu
	abandoned bool  // the caller gave up (Do only); guarded by cc.mu
	next      *call // next call running under the same handle; guarded by cc.mu
	done      chan struct{}
	handle    string
	data      []byte
	err       error
}

// clientConn is one connection of a Client with its reader goroutine.
type clientConn struct {
	c          *Client
	addr       string
	nc         net.Conn
	w          *wire
	pr         *PacketReader
	dead       chan struct{} // closed by fail
	readerDone chan struct{}

	mu      sync.Mutex
	err     error            // why the connection failed; nil while alive
	fifo    callQueue        // requests awaiting their reply, in write order
	running map[string]*call // Do calls awaiting a result, by handle
}

func (cc *clientConn) cause() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err
}

// flush writes out requests buffered by send with now false.
func (cc *clientConn) flush() {
	if err := cc.w.send(true, func(*PacketWriter) error { return nil }); err != nil {
		cc.fail(err)
	}
}

// send queues cl and writes its request: at once with now true (or within
// FlushDelay when that is set), else when cc.flush is called. It reports
// false when nothing was written because the connection had already
// failed. Once queued, the call is finished by the reader or by fail, even
// if writing fails.
func (cc *clientConn) send(cl *call, t PacketType, fn, unique string, data []byte, now bool) bool {
	queued := false
	write := func(pw *PacketWriter) error {
		cc.mu.Lock()
		if cc.err != nil {
			cc.mu.Unlock()
			return cc.err
		}
		cl.cc = cc
		cc.fifo.push(cl)
		cc.mu.Unlock()
		queued = true
		if t == PktEchoReq {
			return pw.writeStrings(t, data, true)
		}
		return pw.writeStrings(t, data, true, fn, unique)
	}
	var err error
	if d := cc.c.opts.FlushDelay; d > 0 && now {
		err = cc.w.sendSoon(d, write)
	} else {
		err = cc.w.send(now, write)
	}
	if err != nil {
		cc.fail(err)
	}
	return queued
}

// finishLocked completes cl; cc.mu is held.
func (cc *clientConn) finishLocked(cl *call) {
	if cl.slot {
		cl.slot = false
		<-cc.c.sem
	}
	close(cl.done)
}

// abandon unregisters a Do call whose caller gave up, so its result, when
// it comes, is dropped without keeping the call alive.
func (cc *clientConn) abandon(cl *call) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cl.abandoned = true
	if cl.handle == "" || cc.running == nil {
		return
	}
	head := cc.running[cl.handle]
	if head == cl {
		if cl.next == nil {
			delete(cc.running, cl.handle)
		} else {
			cc.running[cl.handle] = cl.next
		}
		return
	}
	for p := head; p != nil; p = p.next {
		if p.next == cl {
			p.next = cl.next
			return
		}
	}
}

// fail marks the connection dead, closes it and finishes every call in
// flight with an error wrapping ErrConnectionLost and cause.
func (cc *clientConn) fail(cause error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = cause
	lost := connLost(cause)
	for cl := cc.fifo.pop(); cl != nil; cl = cc.fifo.pop() {
		cl.err = lost
		cc.finishLocked(cl)
	}
	for _, head := range cc.running {
		for cl := head; cl != nil; cl = cl.next {
			cl.err = lost
			cc.finishLocked(cl)
		}
	}
	cc.running = nil
	cc.mu.Unlock()
	// Closed outside the lock: a TLS connection may block in Close.
	cc.nc.Close()
	close(cc.dead)
	cc.c.connDied(cc)
}

func (cc *clientConn) readLoop() {
	defer cc.c.wg.Done()
	defer close(cc.readerDone)
	for {
		p, err := cc.pr.ReadPacket()
		if err != nil {
			cc.fail(fmt.Errorf("read from %s: %w", cc.addr, err))
			return
		}
		if err := cc.dispatch(p); err != nil {
			cc.fail(fmt.Errorf("from %s: %w", cc.addr, err))
			return
		}
	}
}

// dispatch routes one server packet to the call it answers.
func (cc *clientConn) dispatch(p *Packet) error {
	if p.Magic != MagicRes {
		return fmt.Errorf("%w: request magic on %s", ErrProtocol, p.Type)
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	switch p.Type {
	case PktJobCreated, PktError, PktEchoRes:
		cl := cc.fifo.pop()
		if cl == nil {
			if p.Type == PktError {
				cc.c.log.Warn("gearman client: unsolicited ERROR", "server", cc.addr,
					"code", string(p.Arg(0)), "text", string(p.Arg(1)))
				return nil
			}
			return fmt.Errorf("%w: unsolicited %s", ErrProtocol, p.Type)
		}
		switch {
		case p.Type == PktError:
			cl.err = &ServerError{Code: string(p.Arg(0)), Text: string(p.Arg(1))}
		case p.Type == PktJobCreated && cl.kind == kindDo:
			if !cl.abandoned {
				cl.handle = string(p.Arg(0))
				cl.next = cc.running[cl.handle]
				cc.running[cl.handle] = cl
				if cl.slot {
					cl.slot = false
					<-cc.c.sem
				}
				return nil
			}
		case p.Type == PktJobCreated && cl.kind != kindEcho:
			cl.handle = string(p.Arg(0))
		case p.Type == PktEchoRes && cl.kind == kindEcho:
			cl.data = append([]byte(nil), p.Arg(0)...)
		default:
			cl.err = fmt.Errorf("%w: got %s for a pending %s", ErrProtocol, p.Type, cl.kind)
			cc.finishLocked(cl)
			return cl.err
		}
		cc.finishLocked(cl)
	case PktWorkComplete, PktWorkFail, PktWorkException:
		head := cc.running[string(p.Arg(0))]
		if head == nil {
			// A result for a job whose caller gave up, or a second
			// delivery for a coalesced job.
			return nil
		}
		delete(cc.running, head.handle)
		for cl := head; cl != nil; cl = cl.next {
			switch p.Type {
			case PktWorkComplete:
				cl.data = append([]byte(nil), p.Arg(1)...)
			case PktWorkFail:
				cl.err = fmt.Errorf("job %s: %w", cl.handle, ErrWorkFail)
			case PktWorkException:
				cl.err = &WorkException{Handle: cl.handle, Data: append([]byte(nil), p.Arg(1)...)}
			}
			cc.finishLocked(cl)
		}
	case PktWorkData, PktWorkWarning, PktWorkStatus, PktOptionRes, PktStatusRes:
		// Progress of a foreground job, or a reply to a request this
		// client never sends; ignored.
	default:
		cc.c.log.Debug("gearman client: ignoring packet", "server", cc.addr, "type", p.Type.String())
	}
	return nil
}

func (k callKind) String() string {
	switch k {
	case kindSubmitBg:
		return "background submit"
	case kindSubmitFg:
		return "foreground submit"
	case kindDo:
		return "foreground job"
	case kindEcho:
		return "echo"
	}
	return "call"
}

// callQueue is a FIFO ring of calls.
type callQueue struct {
	buf  []*call
	head int
	n    int
}

func (q *callQueue) push(c *call) {
	if q.n == len(q.buf) {
		nb := make([]*call, max(64, 2*len(q.buf)))
		for i := 0; i < q.n; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = c
	q.n++
}

func (q *callQueue) pop() *call {
	if q.n == 0 {
		return nil
	}
	c := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return c
}
