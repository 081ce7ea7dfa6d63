package bridge

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxSleepers is how many sessions serving the same queues sleep on one
// gearmand at once (see sleepGate).
const maxSleepers = 2

// gateWaitMax bounds a wait in a sleepGate: a waiter then grabs once more
// on its own. Turns are passed on exactly, but a session that ends right
// after it was let in takes its turn with it; this makes such a loss cost
// at most this much delay, for one GRAB per waiting session per period.
const gateWaitMax = 2 * time.Second

// sleepGate bounds how many sessions that serve the same queues wait for
// work asleep on one gearmand (PRE_SLEEP). gearmand wakes every sleeping
// worker of a queue for each job it receives (its --worker-wakeup
// default), so a hundred idle sessions cost a hundred wake-ups, GRABs and
// NO_JOBs per job, in the bridge and in gearmand. The other sessions wait
// in the bridge instead, and are let in by the sleepers:
//
//   - a sleeper that wakes (gearmand has work, or the connection ended)
//     lets one waiter grab;
//   - a session that grabbed a job lets one more waiter grab, so a burst
//     engages every session with free slots, one after the other.
//
// A session asks to sleep and registers as a waiter in one step under the
// lock, so a waiter exists only while maxSleepers sessions sleep, and each
// of them lets one waiter go when it wakes: no waiter is forgotten while
// jobs wait in gearmand.
type sleepGate struct {
	mu       sync.Mutex
	sleepers int
	waiters  []chan struct{}
}

// acquire returns true when the caller may sleep on gearmand (it must call
// leave when it wakes), false when it was let in to grab by another
// session. It returns ctx's error if ctx ends first.
func (g *sleepGate) acquire(ctx context.Context) (sleep bool, err error) {
	g.mu.Lock()
	if g.sleepers < maxSleepers {
		g.sleepers++
		g.mu.Unlock()
		return true, nil
	}
	ch := make(chan struct{})
	g.waiters = append(g.waiters, ch)
	g.mu.Unlock()
	t := time.NewTimer(gateWaitMax)
	defer t.Stop()
	select {
	case <-ch:
		return false, nil
	case <-t.C:
		g.forget(ch)
		return false, nil
	case <-ctx.Done():
		if !g.forget(ch) {
			g.letIn() // let in as the session ended: pass the turn on
		}
		return false, ctx.Err()
	}
}

// forget takes ch out of the waiters; false if it was let in meanwhile.
func (g *sleepGate) forget(ch chan struct{}) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i := slices.Index(g.waiters, ch); i >= 0 {
		g.waiters = slices.Delete(g.waiters, i, i+1)
		return true
	}
	return false
}

// leave ends a sleep and lets one waiter grab.
func (g *sleepGate) leave() {
	g.mu.Lock()
	g.sleepers--
	g.mu.Unlock()
	g.letIn()
}

// letIn lets the longest waiting session grab, if any waits.
func (g *sleepGate) letIn() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiters) > 0 {
		close(g.waiters[0])
		g.waiters = g.waiters[1:]
	}
}

// sleepGates holds a bridge's gates by gearmand and queue set.
type sleepGates struct {
	mu    sync.Mutex
	gates map[string]*sleepGate
}

// get returns the gate of sessions serving queues on server.
func (gs *sleepGates) get(server string, queues []string) *sleepGate {
	q := slices.Clone(queues)
	slices.Sort(q)
	key := server + "\x00" + strings.Join(q, "\x00")
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.gates == nil {
		gs.gates = map[string]*sleepGate{}
	}
	g := gs.gates[key]
	if g == nil {
		g = &sleepGate{}
		gs.gates[key] = g
	}
	return g
}
