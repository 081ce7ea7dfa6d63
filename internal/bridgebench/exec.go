package bridgebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/bridgeproc"
	"github.com/gearbridge/gearbridge/modgearman"
)

// ExecOptions configure the process benchmark (`bench bridge --exec`):
// a bridge, a remote worker and a direct (--transport=gearman) worker, each
// a gearbridge process of its own, against one gearmand, running a real
// plugin for every check.
type ExecOptions struct {
	Server string // gearmand host:port
	Bin    string // gearbridge binary for the three processes
	// Exec is the command line every check runs, e.g.
	// "/usr/lib/nagios/plugins/check_dummy 0".
	Exec string
	// Checks is the number of checks queued per path in the pre-queued
	// phase.
	Checks int
	// Slots is the concurrency of both workers (--max-workers).
	Slots int
	// Rate is the submit rate of the steady phase in checks/s; zero means
	// half the lower pre-queued rate.
	Rate float64
	// Steady is the length of the steady phase; zero skips it.
	Steady time.Duration
	// GearmandPID is the pid of gearmand for its CPU figures; zero asks
	// gearmand (admin getpid), which works when it runs on this machine.
	GearmandPID int
	// BridgeArgs are extra flags for the bridge, e.g. --cpuprofile FILE.
	BridgeArgs []string
	// RemoteWorkerArgs are extra flags for the remote worker.
	RemoteWorkerArgs []string
	// Timeout bounds waiting for the results of one phase after the last
	// result came in (no progress).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Validate checks the options.
func (o ExecOptions) Validate() error {
	switch {
	case o.Server == "":
		return errors.New("bench bridge: --server (gearmand) is required")
	case strings.TrimSpace(o.Exec) == "":
		return errors.New("bench bridge: --exec needs a command line")
	case o.Checks <= 0:
		return fmt.Errorf("bench bridge: --checks %d: want at least 1", o.Checks)
	case o.Slots <= 0:
		return fmt.Errorf("bench bridge: --slots %d: want at least 1", o.Slots)
	case o.Rate < 0:
		return fmt.Errorf("bench bridge: --rate %v: want a positive rate or 0", o.Rate)
	}
	return nil
}

// role is one of the measured processes.
type role int

const (
	roleBridge role = iota
	roleRemote
	roleDirect
	roleGearmand
	nRoles
)

var roleNames = [nRoles]string{"bridge", "remote worker", "direct worker", "gearmand"}

// phaseResult is what one path did in one phase.
type phaseResult struct {
	n       int
	lost    int
	dups    int
	elapsed time.Duration
	lat     []time.Duration // sorted; steady phase only
	cpu     [nRoles]cpuTimes
	cpuOK   [nRoles]bool
}

func (p phaseResult) rate() float64 { return float64(p.n) / p.elapsed.Seconds() }

// usPer is the CPU of r per check in microseconds, or -1 when unknown.
func (p phaseResult) usPer(r role) float64 {
	if !p.cpuOK[r] || p.n == 0 {
		return -1
	}
	return float64(p.cpu[r].self.Microseconds()) / float64(p.n)
}

// execBench holds the running processes of one run.
type execBench struct {
	o        ExecOptions
	dir      string
	nonce    string
	codec    *modgearman.Codec
	client   *gearman.Client
	pids     [nRoles]int
	bridgeQ  string
	directQ  string
	procs    []*child
	bridgePr *bridgeproc.Proc
}

// RunExec performs the process benchmark and prints its figures to out; the
// last line is the summary.
func RunExec(ctx context.Context, o ExecOptions, out io.Writer) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if err := o.Validate(); err != nil {
		return err
	}
	bin := o.Bin
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return err
		}
	}
	o.Bin = bin
	dir, err := os.MkdirTemp("", "gearbridge-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	codec, err := modgearman.NewCodec(benchKey, true)
	if err != nil {
		return err
	}
	e := &execBench{o: o, dir: dir, nonce: randHex(4), codec: codec}
	e.client = gearman.NewClient([]string{o.Server}, gearman.ClientOptions{})
	defer e.client.Close()
	defer e.stop()
	if err := e.start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "processes: bridge pid %d, remote worker pid %d, direct worker pid %d, gearmand pid %d (%s)\n",
		e.pids[roleBridge], e.pids[roleRemote], e.pids[roleDirect], e.pids[roleGearmand], o.Server)
	fmt.Fprintf(out, "each check runs %q; both workers have %d slots\n", o.Exec, o.Slots)

	// Pre-queued: the path's processes are stopped (SIGSTOP) while the
	// checks are queued, then resumed; the time runs from the resume to the
	// last result.
	fmt.Fprintf(out, "\n== pre-queued: %d checks queued, then drained\n", o.Checks)
	pb, err := e.prequeued(ctx, "bridge", e.bridgeQ, []role{roleBridge, roleRemote})
	if err != nil {
		return fmt.Errorf("bridge path, pre-queued: %w", err)
	}
	e.print(out, "bridge path", pb, []role{roleBridge, roleRemote, roleGearmand})
	pd, err := e.prequeued(ctx, "direct", e.directQ, []role{roleDirect})
	if err != nil {
		return fmt.Errorf("direct path, pre-queued: %w", err)
	}
	e.print(out, "direct path", pd, []role{roleDirect, roleGearmand})
	ratio := pb.rate() / pd.rate()
	fmt.Fprintf(out, "ratio bridge/direct: %.2f\n", ratio)

	if o.Steady > 0 {
		rate := o.Rate
		if rate == 0 {
			rate = min(pb.rate(), pd.rate()) / 2
		}
		n := max(int(rate*o.Steady.Seconds()), 1)
		fmt.Fprintf(out, "\n== steady rate: %d checks at %.0f checks/s\n", n, rate)
		sb, err := e.steady(ctx, "bridge", e.bridgeQ, n, rate)
		if err != nil {
			return fmt.Errorf("bridge path, steady: %w", err)
		}
		e.print(out, "bridge path", sb, []role{roleBridge, roleRemote, roleGearmand})
		sd, err := e.steady(ctx, "direct", e.directQ, n, rate)
		if err != nil {
			return fmt.Errorf("direct path, steady: %w", err)
		}
		e.print(out, "direct path", sd, []role{roleDirect, roleGearmand})
		fmt.Fprintf(out, "latency the bridge adds: p50 %v p99 %v\n",
			pct(sb.lat, 50)-pct(sd.lat, 50), pct(sb.lat, 99)-pct(sd.lat, 99))
	}

	fmt.Fprintf(out, "summary bridge_checks_per_s=%.0f direct_checks_per_s=%.0f ratio=%.2f bridge_cpu_us_per_check=%.0f gearmand_cpu_us_per_check_bridge=%.0f gearmand_cpu_us_per_check_direct=%.0f worker_cpu_us_per_check=%.0f\n",
		pb.rate(), pd.rate(), ratio, pb.usPer(roleBridge), pb.usPer(roleGearmand), pd.usPer(roleGearmand), pb.usPer(roleRemote))
	return nil
}

func (e *execBench) print(out io.Writer, name string, p phaseResult, roles []role) {
	fmt.Fprintf(out, "%s: %d checks in %v: %.0f checks/s, lost=%d duplicates=%d\n",
		name, p.n, p.elapsed.Round(time.Millisecond), p.rate(), p.lost, p.dups)
	if len(p.lat) > 0 {
		fmt.Fprintf(out, "  latency submit to result: p50 %v p99 %v max %v\n",
			pct(p.lat, 50), pct(p.lat, 99), p.lat[len(p.lat)-1])
	}
	var parts []string
	for _, r := range roles {
		if u := p.usPer(r); u >= 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", roleNames[r], u))
		} else {
			parts = append(parts, roleNames[r]+" n/a")
		}
	}
	line := "  CPU µs per check: " + strings.Join(parts, ", ")
	// Plugins are children of the worker; they show up once reaped.
	w := roleDirect
	if slices.Contains(roles, roleRemote) {
		w = roleRemote
	}
	if p.cpuOK[w] {
		line += fmt.Sprintf(" (plugins %.0f)", float64(p.cpu[w].children.Microseconds())/float64(p.n))
	}
	fmt.Fprintln(out, line)
	fmt.Fprintf(out, "  CPU s per 1,000 checks: %s\n", e.per1000(p, roles))
}

func (e *execBench) per1000(p phaseResult, roles []role) string {
	var parts []string
	for _, r := range roles {
		if u := p.usPer(r); u >= 0 {
			parts = append(parts, fmt.Sprintf("%s %.3f", roleNames[r], u/1000))
		}
	}
	return strings.Join(parts, ", ")
}

// start launches the bridge and both workers and waits until each has
// registered its queue on gearmand.
func (e *execBench) start(ctx context.Context) error {
	o := e.o
	e.bridgeQ = "hostgroup_benchb_" + e.nonce
	e.directQ = "hostgroup_benchd_" + e.nonce
	pid := o.GearmandPID
	if pid == 0 {
		a := gearman.NewAdmin(o.Server, gearman.AdminOptions{})
		p, err := a.GetPID(ctx)
		a.Close()
		if err != nil {
			return fmt.Errorf("ask gearmand for its pid (or give --gearmand-pid): %w", err)
		}
		pid = p
	}
	e.pids[roleGearmand] = pid
	if _, err := readCPU(pid); err != nil {
		o.Logger.Warn("gearmand's CPU cannot be read; its figures are n/a", "pid", pid, "err", err)
	}

	br, err := bridgeproc.Start(ctx, e.dir, bridgeproc.Options{
		Bin: o.Bin, Server: o.Server, Key: benchKey,
		ClientRole: certs.RoleWorker, ClientName: "bench",
		AuthzYAML: "rules:\n  - {identity: \"*\", role: worker, queues: [\"hostgroup_benchb_*\"]}\n",
		ExtraArgs: o.BridgeArgs,
	})
	if err != nil {
		return err
	}
	e.bridgePr = br
	e.pids[roleBridge] = br.Cmd.Process.Pid

	common := []string{"--max-workers", strconv.Itoa(o.Slots), "--internal_check_dummy=no", "--log-level", "warn"}
	remote, err := e.spawn("remote-worker", append([]string{"worker",
		"--bridge", br.Addr, "--tls-ca", filepath.Join(e.dir, "ca", certs.CACertFile),
		"--tls-cert", filepath.Join(e.dir, "bench.crt"), "--tls-key", filepath.Join(e.dir, "bench.key"),
		"--identifier", "bench", "--hostgroups", strings.TrimPrefix(e.bridgeQ, "hostgroup_")}, append(common, o.RemoteWorkerArgs...)...))
	if err != nil {
		return err
	}
	e.pids[roleRemote] = remote.cmd.Process.Pid
	direct, err := e.spawn("direct-worker", append([]string{"worker", "--transport=gearman",
		"--server", o.Server, "--key", benchKey,
		"--identifier", "bench-direct", "--hostgroups", strings.TrimPrefix(e.directQ, "hostgroup_")}, common...))
	if err != nil {
		return err
	}
	e.pids[roleDirect] = direct.cmd.Process.Pid
	return e.waitRegistered(ctx, []string{e.bridgeQ, e.directQ}, 30*time.Second)
}

// waitRegistered waits until gearmand has a worker for each queue.
func (e *execBench) waitRegistered(ctx context.Context, queues []string, wait time.Duration) error {
	a := gearman.NewAdmin(e.o.Server, gearman.AdminOptions{})
	defer a.Close()
	deadline := time.Now().Add(wait)
	for {
		st, err := a.Status(ctx)
		if err == nil {
			ready := 0
			for _, q := range queues {
				if i := slices.IndexFunc(st, func(s gearman.FunctionStatus) bool { return s.Name == q }); i >= 0 && st[i].Workers > 0 {
					ready++
				}
			}
			if ready == len(queues) {
				return nil
			}
		}
		for _, c := range e.procs {
			if c.exited() {
				return fmt.Errorf("%s exited: %s", c.name, c.logTail())
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("workers did not register %v on gearmand within %v (last err %v); logs in %s", queues, wait, err, e.dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitQueued waits until gearmand holds n jobs of queue.
func (e *execBench) waitQueued(ctx context.Context, queue string, n int) error {
	a := gearman.NewAdmin(e.o.Server, gearman.AdminOptions{})
	defer a.Close()
	deadline := time.Now().Add(e.o.Timeout)
	for {
		st, err := a.Status(ctx)
		if err != nil {
			return err
		}
		if i := slices.IndexFunc(st, func(s gearman.FunctionStatus) bool { return s.Name == queue }); i >= 0 && st[i].Total >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gearmand did not queue %d jobs on %s in time", n, queue)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (e *execBench) snapshot() ([nRoles]cpuTimes, [nRoles]bool) {
	var t [nRoles]cpuTimes
	var ok [nRoles]bool
	for r, pid := range e.pids {
		if pid > 0 {
			c, err := readCPU(pid)
			t[r], ok[r] = c, err == nil
		}
	}
	return t, ok
}

func (e *execBench) signal(roles []role, sig syscall.Signal) error {
	for _, r := range roles {
		if err := syscall.Kill(e.pids[r], sig); err != nil {
			return fmt.Errorf("signal %v to %s: %w", sig, roleNames[r], err)
		}
	}
	return nil
}

// prequeued queues o.Checks checks on queue while the path's processes are
// stopped, resumes them and times the drain. The CPU window starts before
// the submits, so gearmand's figure includes taking the jobs.
func (e *execBench) prequeued(ctx context.Context, path, queue string, stopped []role) (phaseResult, error) {
	n := e.o.Checks
	resultQ := fmt.Sprintf("bench_results_%s_pre_%s", path, e.nonce)
	col := e.collect(resultQ, n)
	defer col.close()
	before, okB := e.snapshot()
	if err := e.signal(stopped, syscall.SIGSTOP); err != nil {
		return phaseResult{}, err
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = e.signal(stopped, syscall.SIGCONT)
		}
	}()
	if err := e.submitAll(ctx, queue, resultQ, n); err != nil {
		return phaseResult{}, err
	}
	if err := e.waitQueued(ctx, queue, n); err != nil {
		return phaseResult{}, err
	}
	start := time.Now()
	if err := e.signal(stopped, syscall.SIGCONT); err != nil {
		return phaseResult{}, err
	}
	resumed = true
	last, err := col.wait(ctx, e.o.Timeout)
	after, okA := e.snapshot()
	p := phaseResult{n: n, elapsed: last.Sub(start), lost: col.lost(), dups: col.duplicates()}
	for r := range p.cpu {
		p.cpu[r], p.cpuOK[r] = after[r].sub(before[r]), okB[r] && okA[r]
	}
	if err != nil {
		return p, err
	}
	return p, nil
}

// steady submits n checks at rate per second to running processes and
// measures each one's time from submit to result.
func (e *execBench) steady(ctx context.Context, path, queue string, n int, rate float64) (phaseResult, error) {
	resultQ := fmt.Sprintf("bench_results_%s_steady_%s", path, e.nonce)
	col := e.collect(resultQ, n)
	defer col.close()
	before, okB := e.snapshot()
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	serr := make(chan error, 1)
	go func() {
		for i := range n {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			col.sent(i, time.Now())
			if _, err := e.client.Submit(ctx, queue, "", e.codec.Encode(e.job(i, queue, resultQ).Marshal()), gearman.PriorityNormal, true); err != nil {
				serr <- err
				return
			}
		}
		serr <- nil
	}()
	last, err := col.wait(ctx, e.o.Timeout+time.Duration(float64(n)/rate*float64(time.Second)))
	if serr := <-serr; serr != nil && err == nil {
		err = fmt.Errorf("submit: %w", serr)
	}
	after, okA := e.snapshot()
	p := phaseResult{n: n, elapsed: last.Sub(start), lost: col.lost(), dups: col.duplicates(), lat: col.latencies()}
	for r := range p.cpu {
		p.cpu[r], p.cpuOK[r] = after[r].sub(before[r]), okB[r] && okA[r]
	}
	return p, err
}

func (e *execBench) job(i int, queue, resultQueue string) modgearman.Job {
	return modgearman.Job{
		Type: modgearman.JobService, ResultQueue: resultQueue, TargetQueue: queue,
		HostName: "h" + strconv.Itoa(i), ServiceDescription: "bench", CoreTime: time.Now(),
		Timeout: 60 * time.Second, CommandLine: e.o.Exec,
	}
}

func (e *execBench) submitAll(ctx context.Context, queue, resultQueue string, n int) error {
	const senders = 8
	var wg sync.WaitGroup
	errc := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			for i := s; i < n; i += senders {
				data := e.codec.Encode(e.job(i, queue, resultQueue).Marshal())
				if _, err := e.client.Submit(ctx, queue, "", data, gearman.PriorityNormal, true); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// collector reads one result queue and accounts for every check: each must
// come back exactly once.
type collector struct {
	n      int
	w      *gearman.Worker
	mu     sync.Mutex
	seen   []bool
	sentAt []time.Time
	lat    []time.Duration
	got    int
	dups   int
	bad    error
	last   time.Time
	change chan struct{} // closed and replaced on every result
}

func (e *execBench) collect(queue string, n int) *collector {
	c := &collector{n: n, seen: make([]bool, n), sentAt: make([]time.Time, n), change: make(chan struct{})}
	c.w = gearman.NewWorker([]string{e.o.Server}, []string{queue}, func(_ context.Context, j *gearman.Job) ([]byte, error) {
		now := time.Now()
		i, err := e.checkIndex(j.Data)
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case err != nil:
			c.bad = cmpErr(c.bad, err)
		case i < 0 || i >= n:
			c.bad = cmpErr(c.bad, fmt.Errorf("result for unknown check %d", i))
		case c.seen[i]:
			c.dups++
		default:
			c.seen[i] = true
			c.got++
			c.last = now
			if !c.sentAt[i].IsZero() {
				c.lat = append(c.lat, now.Sub(c.sentAt[i]))
			}
		}
		close(c.change)
		c.change = make(chan struct{})
		return nil, nil
	}, gearman.WorkerOptions{Connections: 2, InFlight: 64, ClientID: "bench-results"})
	return c
}

func cmpErr(old, err error) error {
	if old != nil {
		return old
	}
	return err
}

func (e *execBench) checkIndex(data []byte) (int, error) {
	plain, err := e.codec.Decode(data)
	if err != nil {
		return 0, err
	}
	r, err := modgearman.ParseResult(plain)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimPrefix(r.HostName, "h"))
}

func (c *collector) sent(i int, t time.Time) {
	c.mu.Lock()
	c.sentAt[i] = t
	c.mu.Unlock()
}

// wait returns the time of the last result once every check is back. It
// fails when no result came for idle, or a result was malformed.
func (c *collector) wait(ctx context.Context, idle time.Duration) (time.Time, error) {
	for {
		c.mu.Lock()
		got, bad, last, change := c.got, c.bad, c.last, c.change
		c.mu.Unlock()
		if bad != nil {
			return last, bad
		}
		if got == c.n {
			return last, nil
		}
		t := time.NewTimer(idle)
		select {
		case <-change:
			t.Stop()
		case <-t.C:
			return last, fmt.Errorf("lost=%d: only %d of %d results came back (none for %v)", c.n-got, got, c.n, idle)
		case <-ctx.Done():
			t.Stop()
			return last, fmt.Errorf("lost=%d: %w", c.n-got, ctx.Err())
		}
	}
}

func (c *collector) lost() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n - c.got
}

func (c *collector) duplicates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dups
}

func (c *collector) latencies() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := slices.Clone(c.lat)
	slices.Sort(l)
	return l
}

// close stops reading; a result already counted is completed first, so
// gearmand does not hand it out again.
func (c *collector) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.w.Shutdown(ctx)
}

// child is a worker process of the benchmark.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (e *execBench) spawn(name string, args []string) (*child, error) {
	logPath := filepath.Join(e.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.o.Bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(c.done) }()
	e.procs = append(e.procs, c)
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *child) logTail() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop ends the workers (SIGTERM, then SIGKILL after 15 s), then the
// bridge, and waits for them.
func (e *execBench) stop() {
	for _, c := range e.procs {
		_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGCONT)
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range e.procs {
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
	e.procs = nil
	if e.bridgePr != nil {
		_ = syscall.Kill(e.bridgePr.Cmd.Process.Pid, syscall.SIGCONT)
		e.bridgePr.Stop()
		e.bridgePr = nil
	}
}
