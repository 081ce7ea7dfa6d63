package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Config configures a [Sender].
type Config struct {
	// Transport delivers results; required.
	Transport Transport
	// Spool keeps what cannot be delivered; nil disables spooling (results
	// that cannot be delivered are then reported as failed).
	Spool   *Spool
	Logger  *slog.Logger
	Metrics *Metrics
}

// Sender delivers results through a transport, spooling what it cannot
// deliver. It is safe for concurrent use; calls are serialised so that the
// spool's order holds.
type Sender struct {
	cfg Config
	log *slog.Logger
	mu  sync.Mutex
}

// New returns a Sender.
func New(cfg Config) (*Sender, error) {
	if cfg.Transport == nil {
		return nil, errors.New("sender: no transport")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{cfg: cfg, log: log}, nil
}

// Refusal is a result that was not delivered, with the reason.
type Refusal struct {
	Index  int // index in the Submit call's results
	Result Result
	Reason string
}

// Report is what Submit did with its results.
type Report struct {
	Accepted int       // delivered and acknowledged
	Spooled  int       // written durably to the spool
	Refused  []Refusal // refused for good by validation or the receiver
	// Failed were neither delivered nor spooled (no spool, spool full,
	// spool error): the caller must report them as lost.
	Failed []Refusal
	// FromSpool is what the drain before the submit delivered.
	FromSpool DrainReport
}

// Submit delivers results. With a spool it first drains the spool; if
// anything is still spooled afterwards, results go to the spool behind it
// (so that they cannot overtake older ones). Otherwise they are sent, and
// those that fail temporarily are spooled. The error is non-nil exactly
// when some results are in Report.Failed; it wraps ErrSpoolFull when that
// was the cause.
func (s *Sender) Submit(ctx context.Context, results []Result) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rep Report
	valid := make([]int, 0, len(results))
	for i, r := range results {
		if err := r.Validate(); err != nil {
			o := Outcome{Reason: err.Error()}
			rep.Refused = append(rep.Refused, Refusal{Index: i, Result: r, Reason: o.Reason})
			s.cfg.Metrics.refusedOne(o)
			continue
		}
		valid = append(valid, i)
	}
	backlog := false
	if s.cfg.Spool != nil {
		dr, err := s.cfg.Spool.Drain(ctx, s.cfg.Transport)
		rep.FromSpool = dr
		if dr.Delivered > 0 || dr.Dead > 0 {
			s.log.Info("delivered spooled results", "delivered", dr.Delivered, "dead", dr.Dead, "remaining", dr.Remaining)
		}
		if err != nil {
			s.log.Debug("spool not drained", "remaining", dr.Remaining, "err", err)
			backlog = true
		}
	}
	var retry []int
	var retryReason string
	if backlog {
		retry, retryReason = valid, "older results are still spooled"
	} else if len(valid) > 0 {
		batch := make([]Result, len(valid))
		for k, i := range valid {
			batch[k] = results[i]
		}
		for k, o := range s.cfg.Transport.Send(ctx, batch) {
			i := valid[k]
			switch {
			case o.Accepted:
				rep.Accepted++
			case o.Retry:
				retry = append(retry, i)
				if retryReason == "" {
					retryReason = o.Reason
				}
			default:
				rep.Refused = append(rep.Refused, Refusal{Index: i, Result: results[i], Reason: o.Reason})
				s.cfg.Metrics.refusedOne(o)
			}
		}
		s.cfg.Metrics.addAccepted(rep.Accepted)
	}
	if len(retry) == 0 {
		return rep, nil
	}
	batch := make([]Result, len(retry))
	for k, i := range retry {
		batch[k] = results[i]
	}
	var err error
	if s.cfg.Spool == nil {
		err = fmt.Errorf("%d result(s) not delivered: %s", len(retry), retryReason)
	} else if err = s.cfg.Spool.Append(ctx, batch); err == nil {
		rep.Spooled = len(batch)
		s.log.Info("results spooled", "results", len(batch), "reason", retryReason, "spool", s.cfg.Spool.Dir())
		return rep, nil
	} else {
		err = fmt.Errorf("%d result(s) not delivered (%s) and not spooled: %w", len(retry), retryReason, err)
	}
	for _, i := range retry {
		rep.Failed = append(rep.Failed, Refusal{Index: i, Result: results[i], Reason: retryReason})
	}
	return rep, err
}

// Drain delivers the spool, if any (see [Spool.Drain]).
func (s *Sender) Drain(ctx context.Context) (DrainReport, error) {
	if s.cfg.Spool == nil {
		return DrainReport{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Spool.Drain(ctx, s.cfg.Transport)
}

// Close closes the transport.
func (s *Sender) Close() error { return s.cfg.Transport.Close() }
