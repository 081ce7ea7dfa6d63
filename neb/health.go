package neb

import (
	"sync/atomic"
	"time"
)

// Health is the module's knowledge of gearmand: whether it is reachable now,
// and when a connection to it was last lost. It holds no core pointers, so
// one Health outlives a Module: the broker module keeps it across a reload,
// and a module loaded while gearmand is down does not start out believing
// it healthy.
type Health struct {
	down     atomic.Bool
	lastLost atomic.Int64 // unix nanoseconds; 0: never
}

// NewHealth returns a Health that assumes gearmand is reachable until a
// submission or a connection says otherwise.
func NewHealth() *Health { return &Health{} }

// Healthy reports whether gearmand is believed reachable.
func (h *Health) Healthy() bool { return !h.down.Load() }

// Down records that gearmand could not be reached (or a connection to it
// died) at t. It reports whether this changed the state.
func (h *Health) Down(t time.Time) bool {
	for {
		last := h.lastLost.Load()
		if t.UnixNano() <= last || h.lastLost.CompareAndSwap(last, t.UnixNano()) {
			break
		}
	}
	return !h.down.Swap(true)
}

// Up records that gearmand answered. It reports whether this changed the
// state.
func (h *Health) Up() bool { return h.down.Swap(false) }

// LostSince reports whether a connection to gearmand was lost (or gearmand
// was unreachable) at or after t: a job submitted before that may have been
// lost with gearmand's memory queue.
func (h *Health) LostSince(t time.Time) bool {
	last := h.lastLost.Load()
	return last != 0 && last >= t.UnixNano()
}
