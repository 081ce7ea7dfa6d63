package sender

import (
	"context"
	"errors"
)

// Outcome is the fate of one result handed to a [Transport].
type Outcome struct {
	// Accepted means the receiver (bridge or gearmand) took the result.
	Accepted bool
	// Retry means the result was not delivered for a temporary reason
	// (receiver unreachable, gearmand down behind the bridge): it may be
	// spooled and sent again. A refusal without Retry is final (not allowed
	// for the host, invalid).
	Retry bool
	// Reason says why a result was not accepted.
	Reason string
	// Call marks a refusal of the whole call (wrong certificate role,
	// identity without the sender role) rather than of this result: the
	// spool keeps such results instead of moving them to dead/.
	Call bool
}

// Transport delivers batches of results.
type Transport interface {
	// Send delivers results and returns one Outcome per result, in order.
	// It never returns fewer outcomes; a failure of the whole batch is
	// reported in every outcome.
	Send(ctx context.Context, results []Result) []Outcome
	// Close releases connections.
	Close() error
}

// ErrClosed is returned by methods of a closed Sender or Daemon.
var ErrClosed = errors.New("sender closed")

// all returns n copies of o.
func all(n int, o Outcome) []Outcome {
	out := make([]Outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}
