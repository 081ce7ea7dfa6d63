package neb

import (
	"sync"
	"time"
)

// CheckResult is a result ready for the core's process_check_result. The
// cgo side copies it into a check_result on the main thread.
type CheckResult struct {
	HostName           string
	ServiceDescription string // empty for host results
	Passive            bool
	ReturnCode         int
	ExitedOK           bool
	EarlyTimeout       bool
	StartTime          time.Time
	FinishTime         time.Time
	Latency            time.Duration
	// Output is the raw plugin output with real LFs; the core splits it
	// into output, long output and perfdata.
	Output string
	Source string
	// GiveBack asks the core to take the check back without a result: the
	// module clears what it set when it took the check and makes sure the
	// next check is scheduled. Only HostName and ServiceDescription count.
	GiveBack bool
	// Received is when the module got the result (from gearmand or made it
	// itself); used to measure the injection delay.
	Received time.Time
}

// Outbox is the hand-over from goroutines to the core's main thread: a
// mutex-protected queue that calls Wake when it goes from empty to non-empty.
// The main thread takes everything at once with Take.
type Outbox struct {
	wake func()
	max  int

	mu      sync.Mutex
	items   []CheckResult
	dropped uint64
}

// NewOutbox returns an outbox holding at most max results (further ones are
// dropped and counted); wake is called without the lock held, from the
// pushing goroutine, when the outbox becomes non-empty. It must not block.
func NewOutbox(max int, wake func()) *Outbox {
	if max <= 0 {
		max = 100000
	}
	return &Outbox{wake: wake, max: max}
}

// Push queues r. It reports false when the outbox was full and r was
// dropped.
func (o *Outbox) Push(r CheckResult) bool {
	o.mu.Lock()
	if len(o.items) >= o.max {
		o.dropped++
		o.mu.Unlock()
		return false
	}
	o.items = append(o.items, r)
	first := len(o.items) == 1
	o.mu.Unlock()
	if first && o.wake != nil {
		o.wake()
	}
	return true
}

// Take moves every queued result into dst[:0] and returns it; dst's
// storage is given to the outbox for reuse.
func (o *Outbox) Take(dst []CheckResult) []CheckResult {
	clear(dst)
	o.mu.Lock()
	out := o.items
	o.items = dst[:0]
	o.mu.Unlock()
	return out
}

// Len returns the number of queued results.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items)
}

// Dropped returns how many results were dropped because the outbox was full.
func (o *Outbox) Dropped() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}
