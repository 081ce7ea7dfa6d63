package gearman

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Buffer sizes of one connection. 64 KiB lets a pipelined burst of a few
// hundred small submits leave in one write and lets the reader decode as
// many replies per read syscall.
const (
	readBufSize  = 64 << 10
	writeBufSize = 64 << 10
)

// wire is the write half of one connection: a buffered packet writer shared
// by many goroutines. Writers that queue up behind each other share one
// Flush (group commit): whoever is last in the queue flushes, so a burst of
// concurrent submits becomes a few large writes instead of one syscall each.
type wire struct {
	pending   atomic.Int32 // writers waiting for or holding mu
	mu        sync.Mutex
	pw        *PacketWriter
	err       error // first write error; sticky
	wantFlush bool  // some buffered packet asked to be flushed
	// soon flushes bytes buffered by sendSoon that no later send flushed;
	// created on first use, armed while such bytes wait.
	soon      *time.Timer
	soonArmed bool
}

// sendSoon buffers like send with flush false, and makes sure the bytes
// leave within d: with the next send that flushes (so that a completion
// rides along with the next GRAB in one write), or else by a timer.
func (w *wire) sendSoon(d time.Duration, write func(pw *PacketWriter) error) error {
	err := w.send(false, write)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil && w.pw.Buffered() > 0 && !w.soonArmed {
		w.soonArmed = true
		if w.soon == nil {
			w.soon = time.AfterFunc(d, w.flushSoon)
		} else {
			w.soon.Reset(d)
		}
	}
	return err
}

func (w *wire) flushSoon() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.soonArmed = false
	w.flushLocked()
}

func newWire(nc net.Conn, writeTimeout time.Duration) *wire {
	return &wire{pw: NewPacketWriter(&deadlineWriter{nc: nc, timeout: writeTimeout}, writeBufSize)}
}

// deadlineWriter is what a wire's buffer writes to. Every Write is bounded
// by a fresh write deadline, so that bytes reaching the socket other than
// by a flush (a packet larger than the buffer goes straight through, a full
// buffer is written out mid-packet) are bounded like a flush and never by
// the long-expired deadline of an earlier one: after an idle spell that
// stale deadline failed the write, and with it every request pipelined on
// the connection. Setting a deadline costs a runtime timer update, so a
// deadline that still has more than half the timeout to run is kept: each
// write then has between half and all of the timeout. Writes happen under
// the wire's lock, one at a time.
type deadlineWriter struct {
	nc       net.Conn
	timeout  time.Duration
	deadline time.Time // the one set last
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.timeout > 0 {
		if now := time.Now(); d.deadline.Sub(now) < d.timeout/2 {
			d.deadline = now.Add(d.timeout)
			if err := d.nc.SetWriteDeadline(d.deadline); err != nil {
				return 0, err
			}
		}
	}
	return d.nc.Write(p)
}

// send runs write with the writer locked and then flushes unless another
// writer is already queued (that one, or the last of the queue, flushes).
// With flush false the bytes stay buffered until a later send flushes them;
// the caller must guarantee such a send follows. write returns a non-nil
// error only for a failure that should not be written; an error of the
// stream is sticky and returned by every later send.
func (w *wire) send(flush bool, write func(pw *PacketWriter) error) error {
	w.pending.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	if w.err != nil {
		err = w.err
	} else {
		err = write(w.pw)
	}
	// A writer that defers its flush to a queued successor leaves wantFlush
	// set, so that a successor with flush false still flushes for it.
	w.wantFlush = w.wantFlush || flush
	if w.pending.Add(-1) == 0 && w.wantFlush {
		w.wantFlush = false
		w.flushLocked()
	}
	if err == nil {
		err = w.err
	}
	return err
}

// flushLocked writes the buffer out; w.mu is held.
func (w *wire) flushLocked() {
	if w.soonArmed && w.soon != nil {
		w.soon.Stop()
		w.soonArmed = false
	}
	if w.err == nil && w.pw.Buffered() > 0 {
		if err := w.pw.Flush(); err != nil {
			w.err = fmt.Errorf("write: %w", err)
		}
	}
}

// dialFunc dials one server.
type dialFunc func(ctx context.Context, addr string) (net.Conn, error)

func defaultDialer(timeout time.Duration) dialFunc {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}
}

// backoff yields exponentially growing delays with jitter: each delay is
// uniformly drawn from [d/2, d] where d doubles from min up to max, so
// clients restarted together do not reconnect in lockstep.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) backoff {
	return backoff{min: min, max: max, cur: min}
}

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	half := int64(d / 2)
	if half <= 0 {
		return d
	}
	return time.Duration(half + rand.Int64N(half+1))
}

func (b *backoff) reset() { b.cur = b.min }

// sleepCtx waits for d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// discardLogger returns l, or a logger that drops everything when l is nil.
func discardLogger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}
