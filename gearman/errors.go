package gearman

import (
	"errors"
	"fmt"
)

// Sentinel errors a caller may branch on with errors.Is.
var (
	// ErrConnectionLost wraps the cause when a connection died while a
	// request was in flight. The request may or may not have reached the
	// server; the caller decides whether to retry.
	ErrConnectionLost = errors.New("gearman: connection lost")
	// ErrClosed is returned by calls on a closed Client, WorkerConn, Worker
	// or Admin.
	ErrClosed = errors.New("gearman: closed")
	// ErrNoServer means no configured server could be reached in the last
	// connection round; the client keeps reconnecting in the background.
	ErrNoServer = errors.New("gearman: no server reachable")
	// ErrWorkFail is returned by Client.Do when the worker sent WORK_FAIL.
	ErrWorkFail = errors.New("gearman: work failed")
	// ErrInvalidArgument means a function name, unique key, client ID or
	// priority cannot be sent (it contains a NUL, or whitespace or a
	// control byte where the text protocol would garble it) or is longer
	// than gearmand or libgearman accept. Nothing was sent; the same
	// request fails the same way every time.
	ErrInvalidArgument = errors.New("gearman: invalid argument")
	// ErrProtocol means the peer sent something the protocol does not allow
	// at that point, e.g. a JOB_CREATED nobody asked for.
	ErrProtocol = errors.New("gearman: protocol violation")
)

// ServerError is an ERROR packet from gearmand (binary protocol) or an
// "ERR" line (admin protocol). gearmand 1.1.20 answers a submit to a
// function whose maxqueue is reached with Code "QUEUE_ERROR".
type ServerError struct {
	Code string
	Text string
}

// Error implements error.
func (e *ServerError) Error() string {
	if e.Text == "" {
		return "gearman server error " + e.Code
	}
	return fmt.Sprintf("gearman server error %s: %s", e.Code, e.Text)
}

// Server error codes worth branching on, as sent by gearmand 1.1.20.
const (
	CodeQueueFull        = "QUEUE_ERROR"
	CodeJobNotFound      = "JOB_NOT_FOUND"
	CodeArgumentTooLarge = "ARGUMENT_TOO_LARGE"
	CodeUnknownCommand   = "UNKNOWN_COMMAND"
)

// WorkException is the WORK_EXCEPTION a worker sent for a foreground job:
// Client.Do returns it as its error. A Handler of a Worker returns one to
// send WORK_EXCEPTION instead of WORK_FAIL.
type WorkException struct {
	Handle string
	Data   []byte
}

// Error implements error.
func (e *WorkException) Error() string {
	const max = 200
	d := e.Data
	if len(d) > max {
		d = d[:max]
	}
	if e.Handle == "" {
		return fmt.Sprintf("gearman: work exception: %q", d)
	}
	return fmt.Sprintf("gearman: work exception for job %s: %q", e.Handle, d)
}

// connLost wraps cause so that errors.Is finds both ErrConnectionLost and
// the cause.
func connLost(cause error) error {
	if cause == nil {
		return ErrConnectionLost
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, cause)
}

// Permanent reports whether err means that the request itself can never
// succeed, on any connection to any server, so that retrying it is
// pointless: an ErrInvalidArgument (nothing was sent), or an ERROR reply of
// gearmand other than the few that pass (see below), e.g.
// ARGUMENT_TOO_LARGE. It reports false for nil and for everything that may
// pass: a lost or timed-out connection, no reachable server, ErrClosed, a
// context's end, WORK_FAIL or WORK_EXCEPTION of a job, and the ERROR codes
// QUEUE_ERROR (a queue at its maxqueue, or a failing persistent queue),
// JOB_QUEUE_FULL and MEMORY_ALLOCATION_FAILURE. An unknown ERROR code
// counts as permanent: gearmand answers a well-formed request with ERROR
// only when it cannot take it, and retrying such a request forever would
// hold its caller forever.
//
// This is the one place that tells permanent from temporary Gearman
// errors; callers that retry branch on it.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrInvalidArgument) {
		return true
	}
	var se *ServerError
	if errors.As(err, &se) {
		switch se.Code {
		case CodeQueueFull, "JOB_QUEUE_FULL", "MEMORY_ALLOCATION_FAILURE":
			return false
		}
		return true
	}
	return false
}
