package bridge

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateLogEvery is how often one kind of refusal from one source is logged.
// Ten seconds keeps a misbehaving peer visible in the log while a flood of
// bad handshakes or refused sessions costs one line per source and reason
// per interval.
const rateLogEvery = 10 * time.Second

// rateLogMaxKeys bounds the keys a rateLog remembers, so that a flood of
// distinct sources cannot grow it without bound.
const rateLogMaxKeys = 4096

// rateLog writes log lines that a peer can provoke at will (refused
// sessions and results, failed TLS handshakes) at most once per interval
// per message and key. The lines held back are counted, and the next line
// of that message and key carries suppressed=N.
type rateLog struct {
	every time.Duration
	now   func() time.Time

	mu     sync.Mutex
	keys   map[string]*rateKey
	pruned time.Time // when pruneLocked last ran
}

type rateKey struct {
	last       time.Time
	suppressed int
}

func newRateLog(every time.Duration, now func() time.Time) *rateLog {
	if now == nil {
		now = time.Now
	}
	return &rateLog{every: every, now: now, keys: map[string]*rateKey{}}
}

// Warn logs msg to log at warning level unless msg was logged for key
// within the interval.
func (r *rateLog) Warn(log *slog.Logger, key, msg string, args ...any) {
	r.logAt(log, slog.LevelWarn, key, msg, args)
}

// Error is Warn at error level.
func (r *rateLog) Error(log *slog.Logger, key, msg string, args ...any) {
	r.logAt(log, slog.LevelError, key, msg, args)
}

func (r *rateLog) logAt(log *slog.Logger, level slog.Level, key, msg string, args []any) {
	n, ok := r.take(msg+"\x00"+key, msg)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Log(context.Background(), level, msg, args...)
}

// take reports whether a line for k may be written now, and how many were
// held back since the last one.
func (r *rateLog) take(k, msg string) (int, bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.keys[k]
	if e == nil {
		if len(r.keys) >= rateLogMaxKeys && now.Sub(r.pruned) >= r.every/10 {
			r.pruneLocked(now)
		}
		if len(r.keys) >= rateLogMaxKeys {
			// Still full of recent keys: every further new key of this
			// message shares one limit.
			k = msg + "\x00\x00overflow"
			e = r.keys[k]
		}
	}
	if e == nil {
		e = &rateKey{}
		r.keys[k] = e
	} else if now.Sub(e.last) < r.every {
		e.suppressed++
		return 0, false
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return n, true
}

// pruneLocked forgets keys that were last logged an interval ago or more:
// their next line would be written anyway. A count held back for such a
// key is dropped with it. It runs at most ten times per interval, so that
// a flood of new keys does not scan the table on every line.
func (r *rateLog) pruneLocked(now time.Time) {
	r.pruned = now
	for k, e := range r.keys {
		if now.Sub(e.last) >= r.every {
			delete(r.keys, k)
		}
	}
}
