package plugin

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
)

// capture collects stdout and stderr under one byte budget.
type capture struct {
	mu        sync.Mutex
	remaining int   // bytes still accepted
	discarded int64 // bytes read past the budget
	stdout    bytes.Buffer
	stderr    bytes.Buffer
}

func newCapture(limit int) *capture {
	return &capture{remaining: limit}
}

// readFrom reads r until EOF or an error (a read deadline set to stop it)
// into buf, keeping what fits the budget and discarding the rest.
func (c *capture) readFrom(r io.Reader, buf *bytes.Buffer) {
	chunk := make([]byte, 16<<10)
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			c.keep(buf, chunk[:n])
		}
		if err != nil {
			return
		}
	}
}

func (c *capture) keep(buf *bytes.Buffer, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(p), c.remaining)
	buf.Write(p[:n])
	c.remaining -= n
	c.discarded += int64(len(p) - n)
}

// texts returns the trimmed stdout and stderr and the number of discarded
// bytes. Call it only after both readers have returned.
func (c *capture) texts() (stdout, stderr string, discarded int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return trimOutput(c.stdout.String()), trimOutput(c.stderr.String()), c.discarded
}

// trimOutput removes NUL bytes and white space from both ends.
func trimOutput(s string) string {
	return strings.Trim(s, " \t\r\n\v\f\x00")
}

// joinOutput appends stderr the Go worker's way: LF + "[" + stderr + "]",
// only if enabled and the plugin failed.
func joinOutput(stdout, stderr string, showErrorOutput, failed bool) string {
	if !showErrorOutput || !failed || stderr == "" {
		return stdout
	}
	return trimOutput(stdout + "\n[" + stderr + "]")
}

// withDetail appends output to a fixed text after a line feed, if any.
func withDetail(text, output string) string {
	if output == "" {
		return text
	}
	return text + "\n" + output
}

// withWorkerName adds the worker name to the output of a plugin that exited
// with 0..3, as the classic Go worker does for worker_name_in_result: "on"
// gives "(worker: <id>) <output>", "pre_perfdata" puts " (worker: <id>) "
// before the first pipe sign or " (worker: <id>)" at the end.
func withWorkerName(output string, opt Options) string {
	tag := "(worker: " + opt.Identifier + ")"
	switch opt.WorkerNameInResult {
	case WorkerNameOn:
		return tag + " " + output
	case WorkerNamePrePerfdata:
		if text, perf, ok := strings.Cut(output, "|"); ok {
			return text + " " + tag + " |" + perf
		}
		return output + " " + tag
	}
	return output
}

// truncationNote is appended when output exceeded the budget.
func truncationNote(limit int, discarded int64) string {
	return fmt.Sprintf("[output truncated to %d bytes, %d bytes discarded]", limit, discarded)
}

func notExecutableText(id string) string {
	return "UNKNOWN: Return code of 126 is out of bounds. Make sure the plugin you're trying to run is executable. (worker: " + id + ")"
}

func notFoundText(id string) string {
	return "UNKNOWN: Return code of 127 is out of bounds. Make sure the plugin you're trying to run actually exists. (worker: " + id + ")"
}

func signalText(sig syscall.Signal, id string) string {
	return fmt.Sprintf("UNKNOWN: Return code of %d is out of bounds. Plugin exited by signal: %s. (worker: %s)", int(sig), signalName(sig), id)
}

func outOfBoundsText(rc int, id string) string {
	return fmt.Sprintf("CRITICAL: Return code of %d is out of bounds. (worker: %s)", rc, id)
}

// TimeoutText is the classic output of a check that timed out on worker id
// (wire contract §2.6), for whoever answers the timeout: the worker, or the
// bridge when the worker stays silent.
func TimeoutText(k Kind, id string) string {
	switch k {
	case KindHost:
		return "(Host Check Timed Out On Worker: " + id + ")"
	case KindService:
		return "(Service Check Timed Out On Worker: " + id + ")"
	}
	return "(Check Timed Out On Worker: " + id + ")"
}

func cancelledText(id string) string {
	return "(Check Cancelled On Worker: " + id + ")"
}

// signalName returns the conventional name of a signal ("SIGINT"); Go's
// Signal.String gives prose ("interrupt").
func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	case syscall.SIGILL:
		return "SIGILL"
	case syscall.SIGTRAP:
		return "SIGTRAP"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGBUS:
		return "SIGBUS"
	case syscall.SIGFPE:
		return "SIGFPE"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	case syscall.SIGALRM:
		return "SIGALRM"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGCHLD:
		return "SIGCHLD"
	case syscall.SIGCONT:
		return "SIGCONT"
	case syscall.SIGSTOP:
		return "SIGSTOP"
	case syscall.SIGTSTP:
		return "SIGTSTP"
	case syscall.SIGTTIN:
		return "SIGTTIN"
	case syscall.SIGTTOU:
		return "SIGTTOU"
	case syscall.SIGURG:
		return "SIGURG"
	case syscall.SIGXCPU:
		return "SIGXCPU"
	case syscall.SIGXFSZ:
		return "SIGXFSZ"
	case syscall.SIGVTALRM:
		return "SIGVTALRM"
	case syscall.SIGPROF:
		return "SIGPROF"
	case syscall.SIGWINCH:
		return "SIGWINCH"
	case syscall.SIGIO:
		return "SIGIO"
	case syscall.SIGSYS:
		return "SIGSYS"
	}
	return fmt.Sprintf("SIG%d", int(s))
}
