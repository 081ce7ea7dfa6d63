package plugin

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// perlServerSource is the embedded Perl server, run with perl -e.
//
//go:embed perlserver.pl
var perlServerSource string

// errPerlServerDied is the status error of a plugin whose server went away.
var errPerlServerDied = errors.New("the embedded Perl server exited while the plugin ran")

// errPerlClosed: the worker stopped its Perl server.
var errPerlClosed = errors.New("the embedded Perl server is stopped")

// perlStopTimeout bounds the wait for the server to leave after the worker
// closed its socket; it kills what it still runs and exits at once.
const perlStopTimeout = 5 * time.Second

// maxPerlFrame bounds a reply of the server (a compile error text, a pid,
// a status): anything longer is a broken server.
const maxPerlFrame = 1 << 20

// PerlConfig configures an embedded Perl server.
type PerlConfig struct {
	// Perl is the interpreter; empty means "perl" from PATH.
	Perl string
	// Implicit also embeds Perl plugins that carry no "# nagios: +epn"
	// line (use_embedded_perl_implicitly); "# nagios: -epn" still opts
	// out.
	Implicit bool
	// NoCache compiles a plugin for every run instead of once per version
	// of its file (use_perl_cache=no).
	NoCache bool
	// Logger receives the server's own messages (compiler warnings, its
	// restarts); nil discards them.
	Logger *slog.Logger
}

// PerlStats are counters of a [Perl] since it was created.
type PerlStats struct {
	// Checks is the number of plugin runs handed to the server.
	Checks uint64
	// CompileErrors counts runs answered with "**ePN failed to compile".
	CompileErrors uint64
	// ServerStarts counts server processes started (the first one and
	// every restart).
	ServerStarts uint64
	// ServerCrashes counts servers that exited without being asked to.
	ServerCrashes uint64
	// LostChecks counts runs answered with an explicit error because the
	// server exited while they waited or ran.
	LostChecks uint64
}

// Perl runs Perl plugins in a persistent Perl process, the embedded Perl
// server, instead of starting perl for every check.
//
// The server is started on the first run and restarted on the next run
// after it died; [Perl.Close] stops it. It compiles each plugin file once
// into a sub in a package of its own (again when the file's mtime, size
// or inode change) and forks a child per run, so one plugin's globals,
// exit or die never reach the next run. The child leads its own process
// group, writes to two FIFOs that Run reads exactly like the pipes of an
// executed plugin, and its pid is reported back: timeouts, the
// process-group kill, the output cap and the mapping of exit codes are
// those of executed plugins. The server's protocol is described in
// perlserver.pl.
//
// A Perl is safe for concurrent use.
type Perl struct {
	cfg PerlConfig
	log *slog.Logger

	mu     sync.Mutex
	srv    *perlServer
	dir    string // FIFOs live here
	closed bool

	wg  sync.WaitGroup // server goroutines
	seq atomic.Uint64

	detectMu sync.Mutex
	detect   map[string]detected

	checks, compileErrors, starts, crashes, lost atomic.Uint64
}

// NewPerl returns an embedded Perl server that starts on its first use.
func NewPerl(cfg PerlConfig) *Perl {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Perl == "" {
		cfg.Perl = "perl"
	}
	return &Perl{cfg: cfg, log: log, detect: map[string]detected{}}
}

// Stats returns the counters.
func (p *Perl) Stats() PerlStats {
	if p == nil {
		return PerlStats{}
	}
	return PerlStats{
		Checks:        p.checks.Load(),
		CompileErrors: p.compileErrors.Load(),
		ServerStarts:  p.starts.Load(),
		ServerCrashes: p.crashes.Load(),
		LostChecks:    p.lost.Load(),
	}
}

// ServerPID returns the pid of the running server, or 0. Tests use it.
func (p *Perl) ServerPID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv == nil || p.srv.isDead() {
		return 0
	}
	return p.srv.cmd.Process.Pid
}

// Close stops the server: it kills the plugins the server still runs and
// exits. Later runs get an error result. Close waits for the server and
// may be called more than once.
func (p *Perl) Close() error {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	s := p.srv
	p.mu.Unlock()
	if s != nil && first {
		s.stop()
	}
	p.wg.Wait()
	if first && p.dir != "" {
		return os.RemoveAll(p.dir)
	}
	return nil
}

// server returns the running server, starting one if there is none.
func (p *Perl) server() (*perlServer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPerlClosed
	}
	if p.srv != nil && !p.srv.isDead() {
		return p.srv, nil
	}
	if p.dir == "" {
		dir, err := os.MkdirTemp("", "gearbridge-epn-")
		if err != nil {
			return nil, fmt.Errorf("directory for plugin output FIFOs: %w", err)
		}
		p.dir = dir
	}
	s, err := p.start()
	if err != nil {
		return nil, err
	}
	if p.srv != nil {
		p.log.Warn("embedded Perl server restarted", "pid", s.cmd.Process.Pid, "previous_exit", p.srv.deathErr())
	}
	p.srv = s
	return s, nil
}

// start starts a server process connected through a socket pair.
func (p *Perl) start() (*perlServer, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket pair for the embedded Perl server: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "epn-worker")
	theirs := os.NewFile(uintptr(fds[1]), "epn-server")
	defer theirs.Close()
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("socket for the embedded Perl server: %w", err)
	}
	cacheFlag := "1"
	if p.cfg.NoCache {
		cacheFlag = "0"
	}
	cmd := exec.Command(p.cfg.Perl, "-e", perlServerSource, cacheFlag)
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	// Its own process group: a terminal's Ctrl-C is for the worker, which
	// then stops the server itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logR, logW, err := os.Pipe()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("pipe for the embedded Perl server: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logW, logW
	err = cmd.Start()
	logW.Close()
	if err != nil {
		conn.Close()
		logR.Close()
		return nil, fmt.Errorf("start the embedded Perl server (%s): %w", p.cfg.Perl, err)
	}
	p.starts.Add(1)
	s := &perlServer{
		cmd:    cmd,
		conn:   conn,
		calls:  map[uint64]*perlCall{},
		dead:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	p.log.Debug("embedded Perl server started", "pid", cmd.Process.Pid)
	p.wg.Go(func() { p.logLines(logR, cmd.Process.Pid) })
	p.wg.Go(func() {
		err := cmd.Wait()
		close(s.exited)
		// The socket closes with the process anyway; closing our end too
		// ends the reader if a forked child still held the other one.
		s.conn.Close()
		if !s.stopping.Load() {
			p.crashes.Add(1)
			p.log.Warn("embedded Perl server exited; it is restarted for the next Perl plugin", "pid", cmd.Process.Pid, "err", err)
		}
	})
	p.wg.Go(func() { s.readReplies() })
	return s, nil
}

// logLines logs what the server prints (compiler warnings of plugins).
func (p *Perl) logLines(r *os.File, pid int) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		p.log.Debug("embedded Perl server", "pid", pid, "line", sc.Text())
	}
}

// perlServer is one server process.
type perlServer struct {
	cmd      *exec.Cmd
	conn     net.Conn
	wmu      sync.Mutex // one frame at a time
	mu       sync.Mutex
	calls    map[uint64]*perlCall // by request id, until the child is reaped
	err      error                // why the server is gone; set before dead closes
	dead     chan struct{}
	exited   chan struct{} // the process has been reaped
	stopping atomic.Bool
}

// perlCall is one run waiting for its replies.
type perlCall struct {
	replies   chan perlReply // started (or compile, fail), then exit
	pid       int
	abandoned bool // the run gave up before the child started: kill it
}

type perlReply struct {
	op     string
	pid    int
	status syscall.WaitStatus
	text   string
}

func (s *perlServer) isDead() bool {
	select {
	case <-s.dead:
		return true
	default:
		return false
	}
}

func (s *perlServer) deathErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// register adds a call for request id; it returns nil if the server died.
func (s *perlServer) register(id uint64) *perlCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		return nil
	}
	c := &perlCall{replies: make(chan perlReply, 2)}
	s.calls[id] = c
	return c
}

// abandon gives up a call whose run ended before its child was started.
// A child that starts later is killed at once, and its exit is ignored.
func (s *perlServer) abandon(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.calls[id]; c != nil {
		c.abandoned = true
		if c.pid > 0 {
			killGroup(c.pid, syscall.SIGKILL)
		}
	}
}

// send writes one request frame.
func (s *perlServer) send(fields ...string) error {
	data := strings.Join(fields, "\x00")
	frame := strconv.Itoa(len(data)) + "\n" + data
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := io.WriteString(s.conn, frame)
	return err
}

// readReplies hands each reply to its call until the socket ends, then
// declares the server dead.
func (s *perlServer) readReplies() {
	br := bufio.NewReader(s.conn)
	for {
		fields, err := readPerlFrame(br)
		if err != nil {
			s.die(err)
			return
		}
		if len(fields) < 3 {
			s.die(fmt.Errorf("malformed reply %q", fields))
			return
		}
		id, _ := strconv.ParseUint(fields[1], 10, 64)
		r := perlReply{op: fields[0], text: fields[2]}
		s.mu.Lock()
		c := s.calls[id]
		deliver := c != nil && !c.abandoned
		switch r.op {
		case "started":
			r.pid, _ = strconv.Atoi(fields[2])
			if c != nil {
				c.pid = r.pid
				if c.abandoned {
					killGroup(r.pid, syscall.SIGKILL)
				}
			}
		case "exit":
			st, _ := strconv.Atoi(fields[2])
			r.status = syscall.WaitStatus(st)
			delete(s.calls, id)
		default: // compile, fail
			delete(s.calls, id)
		}
		s.mu.Unlock()
		if deliver {
			c.replies <- r // buffered for both replies a call gets
		}
	}
}

// die marks the server dead, kills the children it can no longer report
// on and wakes every waiting run.
func (s *perlServer) die(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		return
	}
	if s.stopping.Load() {
		err = errPerlClosed
	}
	s.err = err
	for _, c := range s.calls {
		if c.pid > 0 {
			killGroup(c.pid, syscall.SIGKILL)
		}
	}
	s.calls = nil
	close(s.dead)
	if !s.stopping.Load() {
		// A server that stopped talking but still runs is of no use
		// any more.
		_ = s.cmd.Process.Kill()
	}
}

// stop asks the server to leave by closing its socket, then kills it if it
// does not.
func (s *perlServer) stop() {
	s.stopping.Store(true)
	s.conn.Close()
	t := time.NewTimer(perlStopTimeout)
	defer t.Stop()
	select {
	case <-s.exited:
	case <-t.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// kill ends a server that does not answer. It counts as dead at once, so
// that the next check starts a new one.
func (s *perlServer) kill(why error) {
	s.die(why)
}

func readPerlFrame(br *bufio.Reader) ([]string, error) {
	head, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(head, "\n"))
	if err != nil || n < 0 || n > maxPerlFrame {
		return nil, fmt.Errorf("malformed frame header %q", head)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, err
	}
	return strings.Split(string(buf), "\x00"), nil
}

// run runs the Perl plugin at path (absolute) in the server; name is what
// the plugin sees as $0.
func (p *Perl) run(ctx context.Context, path, name string, args, env []string, opt Options) Result {
	if err := ctx.Err(); err != nil {
		res := failed(cancelledText(opt.Identifier), err)
		res.Cancelled = true
		return res
	}
	p.checks.Add(1)
	s, err := p.server()
	if err != nil {
		return failed(fmt.Sprintf("UNKNOWN: embedded Perl: %v (worker: %s)", err, opt.Identifier), err)
	}
	id := p.seq.Add(1)
	outPath := filepath.Join(p.dir, strconv.FormatUint(id, 10)+".out")
	errPath := filepath.Join(p.dir, strconv.FormatUint(id, 10)+".err")
	outR, err := openFIFO(outPath)
	if err != nil {
		return failed(fmt.Sprintf("UNKNOWN: embedded Perl: %v (worker: %s)", err, opt.Identifier), err)
	}
	defer outR.Close()
	errR, err := openFIFO(errPath)
	if err != nil {
		os.Remove(outPath)
		return failed(fmt.Sprintf("UNKNOWN: embedded Perl: %v (worker: %s)", err, opt.Identifier), err)
	}
	defer errR.Close()
	// Both ends are open once the child has started; the names are not
	// needed after that.
	defer os.Remove(outPath)
	defer os.Remove(errPath)

	call := s.register(id)
	if call == nil {
		p.lost.Add(1)
		return failed(fmt.Sprintf("UNKNOWN: %v (worker: %s)", errPerlServerDied, opt.Identifier), errPerlServerDied)
	}
	cwd, _ := os.Getwd()
	fields := make([]string, 0, 8+len(args)+len(env))
	fields = append(fields, "run", strconv.FormatUint(id, 10), path, name, cwd, outPath, errPath, strconv.Itoa(len(args)))
	fields = append(fields, args...)
	fields = append(fields, os.Environ()...)
	fields = append(fields, opt.Env...)
	fields = append(fields, env...)

	runCtx, cancel := context.WithTimeoutCause(ctx, opt.Timeout, errTimedOut)
	defer cancel()
	start := time.Now()
	if err := s.send(fields...); err != nil {
		s.abandon(id)
		s.die(fmt.Errorf("send: %w", err))
		p.lost.Add(1)
		return failed(fmt.Sprintf("UNKNOWN: embedded Perl: send the plugin to the server: %v (worker: %s)", err, opt.Identifier), err)
	}

	var first perlReply
	select {
	case first = <-call.replies:
	case <-s.dead:
		p.lost.Add(1)
		return Result{ReturnCode: 3, StartTime: start, FinishTime: time.Now(), Err: errPerlServerDied,
			Output: fmt.Sprintf("UNKNOWN: %v (worker: %s)", errPerlServerDied, opt.Identifier)}
	case <-runCtx.Done():
		s.abandon(id)
		res := Result{ReturnCode: 3, StartTime: start, FinishTime: time.Now()}
		if errors.Is(context.Cause(runCtx), errTimedOut) {
			// The server spent the whole timeout before starting the
			// plugin: it is stuck (a BEGIN block that never ends).
			s.kill(errors.New("no answer within a plugin's timeout"))
			res.ReturnCode, res.Output, res.EarlyTimeout = opt.TimeoutReturn, TimeoutText(opt.Kind, opt.Identifier), true
			return res
		}
		res.Output, res.Cancelled, res.Err = cancelledText(opt.Identifier), true, context.Cause(runCtx)
		return res
	}
	switch first.op {
	case "started":
	case "compile":
		p.compileErrors.Add(1)
		now := time.Now()
		return Result{ReturnCode: 3, Output: trimOutput(first.text), StartTime: start, FinishTime: now,
			Err: errors.New("plugin does not compile")}
	default:
		err := errors.New(first.text)
		return Result{ReturnCode: 3, StartTime: start, FinishTime: time.Now(), Err: err,
			Output: fmt.Sprintf("UNKNOWN: embedded Perl: %v (worker: %s)", err, opt.Identifier)}
	}

	exited := make(chan struct{})
	var status syscall.WaitStatus
	var statusErr error
	go func() {
		defer close(exited)
		select {
		case r := <-call.replies:
			status = r.status
		case <-s.dead:
			statusErr = errPerlServerDied
		}
	}()
	res := supervise(runCtx, start, process{
		pgid:   first.pid,
		exited: exited,
		status: func() (syscall.WaitStatus, error) { return status, statusErr },
		outR:   outR,
		errR:   errR,
	}, opt)
	if statusErr != nil && !res.EarlyTimeout && !res.Cancelled {
		p.lost.Add(1)
	}
	return res
}

// openFIFO makes a FIFO and opens its read end without waiting for a
// writer. A read with no writer ever seen would report EOF at once, so the
// output is read only after the server reported the child started: the
// server opens the write ends before it forks, and the child inherits them.
func openFIFO(path string) (*os.File, error) {
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("make FIFO %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("open FIFO %s: %w", path, err)
	}
	return f, nil
}
