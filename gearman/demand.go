package gearman

import (
	"context"
	"fmt"
)

// TryGrab sends one GRAB_JOB_UNIQ and returns the job, or nil when gearmand
// has none queued for this connection (NO_JOB). Unlike Grab it never
// sleeps, so a caller that must account for every grabbed job (the bridge,
// which grabs only while a remote worker has a free slot) holds its slot
// only for one round trip.
func (wc *WorkerConn) TryGrab(ctx context.Context) (*Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return wc.grabOnce(ctx)
}

// Sleep sends PRE_SLEEP and returns when gearmand wakes the connection
// with NOOP (a job arrived for one of its functions, or one was already
// queued), when the connection fails, or when ctx ends. Call TryGrab after
// it: a NOOP is only a hint.
func (wc *WorkerConn) Sleep(ctx context.Context) error {
	// Take the wake-up channel before writing PRE_SLEEP so the NOOP that
	// answers it cannot be missed.
	wc.mu.Lock()
	noop := wc.noop
	wc.mu.Unlock()
	if err := wc.write(true, PktPreSleep, nil, false); err != nil {
		return err
	}
	select {
	case <-noop:
		return wc.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TryGrabN sends n GRAB_JOB_UNIQ in one write and returns the jobs
// gearmand assigned for them, in order; NO_JOB answers are left out, so
// fewer than n jobs mean the queues ran dry. On an error the jobs already
// assigned are not returned: the connection is failed and gearmand
// requeues them when it closes. When ctx ends first, jobs assigned later
// are kept for the next grab, as with TryGrab.
func (wc *WorkerConn) TryGrabN(ctx context.Context, n int) ([]*Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n <= 1 {
		j, err := wc.grabOnce(ctx)
		if err != nil || j == nil {
			return nil, err
		}
		return []*Job{j}, nil
	}
	var jobs []*Job
	wc.mu.Lock()
	if wc.err != nil {
		err := wc.err
		wc.mu.Unlock()
		return nil, fmt.Errorf("grab from %s: %w", wc.addr, connLost(err))
	}
	for len(wc.orphans) > 0 && n > 0 {
		jobs = append(jobs, wc.orphans[0])
		wc.orphans = wc.orphans[1:]
		n--
	}
	wc.mu.Unlock()
	if n == 0 {
		return jobs, nil
	}
	calls := make([]*grabCall, n)
	done := make(chan struct{})
	for i := range calls {
		calls[i] = &grabCall{done: done, last: i == n-1}
	}
	queued := false
	err := wc.w.send(true, func(pw *PacketWriter) error {
		wc.mu.Lock()
		if wc.err != nil {
			err := wc.err
			wc.mu.Unlock()
			return err
		}
		wc.grabs = append(wc.grabs, calls...)
		wc.mu.Unlock()
		queued = true
		for range calls {
			if err := pw.writeStrings(PktGrabJobUniq, nil, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		wc.fail(err)
		if !queued {
			return nil, fmt.Errorf("grab from %s: %w", wc.addr, connLost(wc.Err()))
		}
	}
	select {
	case <-done: // every call is answered
		for _, g := range calls {
			if g.err != nil {
				return nil, fmt.Errorf("grab from %s: %w", wc.addr, g.err)
			}
			if g.job != nil {
				jobs = append(jobs, g.job)
			}
		}
		return jobs, nil
	case <-ctx.Done():
		wc.abandonGrabs(jobs, calls...)
		return nil, ctx.Err()
	}
}
