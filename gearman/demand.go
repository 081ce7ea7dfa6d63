package gearman

import "context"

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
