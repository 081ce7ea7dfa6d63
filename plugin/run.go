package plugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Result is what a plugin run produced, already mapped to the values a
// worker reports.
type Result struct {
	// ReturnCode is 0..3.
	ReturnCode int
	// Output is the text to report, with real line feeds, trimmed of NULs
	// and surrounding white space.
	Output string
	// StartTime is when the plugin was started, FinishTime when it ended
	// (or was killed).
	StartTime, FinishTime time.Time
	// ExitedOK is true when the plugin was started and exited by itself,
	// with whatever exit code, rather than by a signal, a timeout or
	// cancellation. (The Go worker reports exited_ok=1 for every result;
	// callers may do the same, since the core replaces the output of
	// results with exited_ok=0.)
	ExitedOK bool
	// EarlyTimeout is true when the plugin was killed by Options.Timeout.
	EarlyTimeout bool
	// Cancelled is true when the caller's context ended the run. Output and
	// ReturnCode then describe the cancellation; workers that are shutting
	// down may prefer not to report such results.
	Cancelled bool
	// Signal names the signal that ended the plugin ("SIGINT"), if any.
	Signal string
	// Err is set when the plugin could not be run or was rejected (invalid
	// options, restrict_path, start failure). It is meant for logs; Output
	// already holds the text for the result.
	Err error
}

// Run executes commandLine as one plugin and returns its result. It never
// returns before the plugin's process group has been signalled and every
// goroutine it started has finished. See the package documentation for the
// rules.
func Run(ctx context.Context, commandLine string, opt Options) Result {
	if err := opt.Validate(); err != nil {
		return failed(fmt.Sprintf("UNKNOWN: invalid plugin options: %v (worker: %s)", err, opt.Identifier), err)
	}
	opt = opt.withDefaults()
	if len(opt.RestrictPath) > 0 {
		if err := checkRestricted(commandLine, opt.RestrictPath, opt.RestrictCommandCharacters); err != nil {
			return failed(restrictedText, err)
		}
	}
	argv, env, useShell := Parse(commandLine)
	if opt.InternalNegate && !useShell {
		if n, inner, ok := parseNegate(argv); ok {
			return runNegated(ctx, n, inner, env, opt)
		}
	}
	return dispatch(ctx, argv, env, useShell, opt)
}

// dispatch answers a parsed command line: internally (check_dummy), with
// the embedded Perl server, or as a process.
func dispatch(ctx context.Context, argv, env []string, useShell bool, opt Options) Result {
	if opt.InternalCheckDummy {
		if res, ok := internalDummy(argv, useShell); ok {
			return res
		}
	}
	if len(argv) == 0 {
		return failed("UNKNOWN: empty command line (worker: "+opt.Identifier+")", errors.New("empty command line"))
	}
	if opt.Perl != nil && !useShell && !hasNUL(argv) && !hasNUL(env) {
		if path, name, ok := opt.Perl.embeds(argv[0]); ok {
			return opt.Perl.run(ctx, path, name, argv[1:], env, opt)
		}
	}
	return execute(ctx, argv, env, opt)
}

func hasNUL(words []string) bool {
	for _, w := range words {
		if strings.IndexByte(w, 0) >= 0 {
			return true
		}
	}
	return false
}

// failed is the result for a plugin that was never started.
func failed(output string, err error) Result {
	now := time.Now()
	return Result{ReturnCode: 3, Output: output, StartTime: now, FinishTime: now, Err: err}
}

// stopReason tells why the plugin's process group was signalled.
type stopReason int

const (
	notStopped stopReason = iota
	stoppedTimeout
	stoppedCancel
)

func execute(ctx context.Context, argv, env []string, opt Options) Result {
	if err := ctx.Err(); err != nil {
		res := failed(cancelledText(opt.Identifier), err)
		res.Cancelled = true
		return res
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), opt.Env...), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Pipes of our own instead of io.Writers: exec would then copy in
	// goroutines that Wait joins, and a grandchild holding the pipe would
	// block Wait. With *os.File, Wait returns when the plugin exits and the
	// readers below are stopped on our terms.
	outR, outW, err := os.Pipe()
	if err != nil {
		return failed(fmt.Sprintf("UNKNOWN: cannot create pipe: %v (worker: %s)", err, opt.Identifier), err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return failed(fmt.Sprintf("UNKNOWN: cannot create pipe: %v (worker: %s)", err, opt.Identifier), err)
	}
	defer errR.Close()
	cmd.Stdout, cmd.Stderr = outW, errW

	runCtx, cancel := context.WithTimeoutCause(ctx, opt.Timeout, errTimedOut)
	defer cancel()
	start := time.Now()
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		return startFailure(err, start, opt.Identifier)
	}

	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	return supervise(runCtx, start, process{
		pgid:   cmd.Process.Pid, // Setpgid: the plugin leads its own group
		exited: exited,
		status: func() (syscall.WaitStatus, error) {
			if cmd.ProcessState == nil { // wait4 itself failed; nothing to map
				return 0, fmt.Errorf("cannot wait for plugin: %w", waitErr)
			}
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			return ws, nil
		},
		outR: outR,
		errR: errR,
	}, opt)
}

// process is a started plugin as supervise sees it: an executed one, or a
// child of the embedded Perl server.
type process struct {
	// pgid is the plugin's process group (its pid: it leads the group).
	pgid int
	// exited is closed once the plugin has been reaped, or once its status
	// can no longer be learned.
	exited <-chan struct{}
	// status is the wait status, valid after exited is closed; an error
	// says why there is none.
	status func() (syscall.WaitStatus, error)
	// outR and errR are the read ends of the plugin's stdout and stderr.
	outR, errR *os.File
}

// supervise waits for a started plugin: it kills its process group at the
// timeout or when runCtx is cancelled, collects its output under the cap
// and maps what happened to a result.
func supervise(runCtx context.Context, start time.Time, p process, opt Options) Result {
	out := newCapture(opt.MaxOutput)
	var readers sync.WaitGroup
	readers.Go(func() { out.readFrom(p.outR, &out.stdout) })
	readers.Go(func() { out.readFrom(p.errR, &out.stderr) })
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()

	reason := notStopped
	select {
	case <-p.exited:
	case <-runCtx.Done():
		reason = stoppedCancel
		if errors.Is(context.Cause(runCtx), errTimedOut) {
			reason = stoppedTimeout
		}
		killGroup(p.pgid, syscall.SIGTERM)
		grace := time.NewTimer(opt.KillGrace)
		select {
		case <-p.exited:
		case <-grace.C:
		}
		grace.Stop()
		// Also when the plugin left after SIGTERM: whatever it forked may
		// still be running.
		killGroup(p.pgid, syscall.SIGKILL)
		<-p.exited
	}
	finish := time.Now()

	// Collect the output. If the plugin left on its own, processes it forked
	// may still hold the pipes: give them KillGrace, then kill the group.
	// If even that does not close the pipes (a process that left the group
	// holds them), stop reading after another KillGrace.
	if reason == notStopped {
		grace := time.NewTimer(opt.KillGrace)
		select {
		case <-drained:
		case <-grace.C:
		case <-runCtx.Done():
		}
		grace.Stop()
	}
	select {
	case <-drained:
	default:
		killGroup(p.pgid, syscall.SIGKILL)
		grace := time.NewTimer(opt.KillGrace)
		select {
		case <-drained:
		case <-grace.C:
			now := time.Now()
			p.outR.SetReadDeadline(now)
			p.errR.SetReadDeadline(now)
			<-drained
		}
		grace.Stop()
	}

	res := Result{StartTime: start, FinishTime: finish}
	stdout, stderr, discarded := out.texts()
	state, statusErr := p.status()
	switch {
	case reason == stoppedTimeout:
		res.ReturnCode = opt.TimeoutReturn
		res.Output = withDetail(TimeoutText(opt.Kind, opt.Identifier), joinOutput(stdout, stderr, opt.ShowErrorOutput, true))
		res.EarlyTimeout = true
	case reason == stoppedCancel:
		res.ReturnCode = 3
		res.Output = withDetail(cancelledText(opt.Identifier), joinOutput(stdout, stderr, opt.ShowErrorOutput, true))
		res.Cancelled = true
		res.Err = context.Cause(runCtx)
	case statusErr != nil:
		res.ReturnCode = 3
		res.Output = withDetail(fmt.Sprintf("UNKNOWN: %v (worker: %s)", statusErr, opt.Identifier), joinOutput(stdout, stderr, opt.ShowErrorOutput, true))
		res.Err = statusErr
	case state.Signaled():
		res.ReturnCode = 3
		res.Output = withDetail(signalText(state.Signal(), opt.Identifier), joinOutput(stdout, stderr, opt.ShowErrorOutput, true))
	default:
		res.ExitedOK = true
		rc := state.ExitStatus()
		output := joinOutput(stdout, stderr, opt.ShowErrorOutput, rc != 0)
		switch {
		case rc >= 0 && rc <= 3:
			res.ReturnCode, res.Output = rc, withWorkerName(output, opt)
		case rc == 126:
			res.ReturnCode, res.Output = 3, notExecutableText(opt.Identifier)
		case rc == 127:
			res.ReturnCode, res.Output = 3, notFoundText(opt.Identifier)
		default:
			res.ReturnCode, res.Output = 3, withDetail(outOfBoundsText(rc, opt.Identifier), output)
		}
	}
	if statusErr == nil && state.Signaled() {
		res.Signal = signalName(state.Signal())
	}
	if discarded > 0 {
		res.Output = withDetail(res.Output, truncationNote(opt.MaxOutput, discarded))
	}
	return res
}

// startFailure maps an error from starting the plugin.
func startFailure(err error, start time.Time, id string) Result {
	res := Result{ReturnCode: 3, StartTime: start, FinishTime: time.Now(), Err: err}
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		res.Output = notFoundText(id)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ENOEXEC), errors.Is(err, syscall.EISDIR):
		res.Output = notExecutableText(id)
	default:
		res.Output = fmt.Sprintf("UNKNOWN: cannot start plugin: %v (worker: %s)", err, id)
	}
	return res
}

// killGroup signals every process in the group. ESRCH (the group is gone)
// is the expected outcome and not an error worth reporting.
func killGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig)
}
