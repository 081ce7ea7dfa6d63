package neb

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// orphanOutput is the classic text of a synthetic result for a check whose
// job no worker answered (modgearman-wire.md §2.6), with its trailing LF.
func orphanOutput(k Kind, queue string) string {
	return fmt.Sprintf("(%s check orphaned, is the mod-gearman worker on queue '%s' running?)\n", k, queue)
}

// checkKey names a check the way results name it: the host, plus the
// service description for service checks.
type checkKey struct {
	host, service string
}

// inflight is a submitted check waiting for its result.
type inflight struct {
	kind      Kind
	queue     string
	submitted time.Time
	deadline  time.Time
	// deferred: its orphaning was put off at least once because the
	// module was behind reading its results.
	deferred bool
	// handle is the one gearmand gave the check's job ("" until known).
	handle string
}

// Expired is a submitted check that had no result by its deadline.
type Expired struct {
	Kind               Kind
	HostName           string
	ServiceDescription string
	Queue              string
	Submitted          time.Time
	Deadline           time.Time
}

// Watchdog keeps the checks the module submitted until their result comes
// back, so that a check whose job no worker answers is settled within
// seconds of its timeout instead of the core's own orphan check, which
// comes ten minutes later. It is safe for concurrent use and holds no core
// pointers, so one Watchdog can outlive a Module: the broker module keeps it
// across a reload, and the next Module settles what the previous one left.
type Watchdog struct {
	mu    sync.Mutex
	items map[checkKey]inflight
	// answered holds, per check, the handle of its last job whose result
	// came (see Submitted).
	answered map[checkKey]string
}

// NewWatchdog returns an empty watchdog.
func NewWatchdog() *Watchdog {
	return &Watchdog{items: map[checkKey]inflight{}, answered: map[checkKey]string{}}
}

// Submitted records the handle gearmand gave a tracked check's job. It
// reports true when that is the handle of the check's previous job, whose
// result already came: gearmand merged the new submission (same unique
// key) into that job because it had not yet processed the job's
// WORK_COMPLETE, and the merged submission will never run. The handle is
// then not recorded.
func (w *Watchdog) Submitted(host, service, handle string) (merged bool) {
	k := checkKey{host, service}
	w.mu.Lock()
	defer w.mu.Unlock()
	if handle != "" && w.answered[k] == handle {
		return true
	}
	if it, ok := w.items[k]; ok {
		it.handle = handle
		w.items[k] = it
	}
	return false
}

// Track records a submitted check; a later Track of the same check
// replaces it (one job per check is in flight, as the core allows).
func (w *Watchdog) Track(k Kind, host, service, queue string, submitted, deadline time.Time) {
	w.mu.Lock()
	w.items[checkKey{host, service}] = inflight{kind: k, queue: queue, submitted: submitted, deadline: deadline}
	w.mu.Unlock()
}

// Done forgets a check whose result arrived (or was made); it reports
// whether the check was tracked.
func (w *Watchdog) Done(host, service string) bool {
	k := checkKey{host, service}
	w.mu.Lock()
	it, ok := w.items[k]
	delete(w.items, k)
	if ok && it.handle != "" {
		w.answered[k] = it.handle
	}
	w.mu.Unlock()
	return ok
}

// Sweep removes and returns every check whose deadline is before or at
// now. Each is returned once.
func (w *Watchdog) Sweep(now time.Time) []Expired {
	out := w.Expired(now)
	return slices.DeleteFunc(out, func(e Expired) bool { return !w.Take(e) })
}

// Expired returns every check whose deadline is before or at now without
// removing it: the caller settles each with Take, or leaves it for a later
// sweep.
func (w *Watchdog) Expired(now time.Time) []Expired {
	var out []Expired
	w.mu.Lock()
	for k, it := range w.items {
		if !it.deadline.After(now) {
			out = append(out, Expired{Kind: it.kind, HostName: k.host, ServiceDescription: k.service,
				Queue: it.queue, Submitted: it.submitted, Deadline: it.deadline})
		}
	}
	w.mu.Unlock()
	return out
}

// Take removes e if it is still in flight as Expired returned it (no
// result came and it was not submitted again since); it reports whether it
// did, so that each expired check is settled once.
func (w *Watchdog) Take(e Expired) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	k, _, ok := w.currentLocked(e)
	if !ok {
		return false
	}
	delete(w.items, k)
	return true
}

// currentLocked returns e's entry while it is still the submission that
// Expired returned; w.mu is held.
func (w *Watchdog) currentLocked(e Expired) (checkKey, inflight, bool) {
	k := checkKey{e.HostName, e.ServiceDescription}
	it, ok := w.items[k]
	if !ok || !it.submitted.Equal(e.Submitted) || !it.deadline.Equal(e.Deadline) {
		return k, it, false
	}
	return k, it, true
}

// Defer marks e, still in flight, as kept past its deadline; it reports
// whether this is the first time for this submission.
func (w *Watchdog) Defer(e Expired) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	k, it, ok := w.currentLocked(e)
	if !ok || it.deferred {
		return false
	}
	it.deferred = true
	w.items[k] = it
	return true
}

// Len returns the number of checks in flight.
func (w *Watchdog) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.items)
}
