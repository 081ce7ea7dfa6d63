package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
)

// GearmanConfig configures a [GearmanTransport].
type GearmanConfig struct {
	// Servers receive every result (the classic server= list; the first
	// that answers is used).
	Servers []string
	// DupServers each receive a copy of every accepted result (the classic
	// dupserver= list; gearbridge sends to every entry, as the Go worker
	// does).
	DupServers []string
	// ResultQueue is the Gearman function results are submitted to.
	ResultQueue string
	// Codec encodes payloads (AES or base64 only).
	Codec *modgearman.Codec
	// Timeout bounds connecting and one submit (the classic --timeout).
	Timeout time.Duration
	// Parallel bounds submits in flight (the client pipelines them). The
	// default 1 keeps the input order on the result queue, as classic
	// send_gearman does; more is faster but lets results overtake each
	// other.
	Parallel int
	// Retries is how often a submit that failed is tried again, each time
	// after RetryInterval (send_gearman's --retries and --retry-interval).
	// The default 0 fails at once, as classic send_gearman does.
	Retries       int
	RetryInterval time.Duration
	Logger        *slog.Logger
	Metrics       *Metrics
}

// GearmanTransport submits results straight to gearmand as background jobs,
// the way classic send_gearman does, for setups without a bridge.
type GearmanTransport struct {
	cfg  GearmanConfig
	log  *slog.Logger
	main *gearman.Client
	dups []*gearman.Client
}

// NewGearmanTransport returns a transport to cfg.Servers. It connects
// lazily.
func NewGearmanTransport(cfg GearmanConfig) (*GearmanTransport, error) {
	switch {
	case len(cfg.Servers) == 0:
		return nil, errors.New("gearman transport: no server")
	case cfg.ResultQueue == "":
		return nil, errors.New("gearman transport: empty result queue")
	case cfg.Codec == nil:
		return nil, errors.New("gearman transport: no codec")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 1
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := gearman.ClientOptions{Logger: log, DialTimeout: cfg.Timeout}
	t := &GearmanTransport{cfg: cfg, log: log, main: gearman.NewClient(cfg.Servers, opts)}
	for _, d := range cfg.DupServers {
		t.dups = append(t.dups, gearman.NewClient([]string{d}, opts))
	}
	return t, nil
}

// Send implements [Transport]. A result is accepted once gearmand has
// queued it on the result queue; a failed copy to a dupserver is logged and
// counted but does not change the outcome (the copy feeds a second core,
// the original is what counts).
func (t *GearmanTransport) Send(ctx context.Context, results []Result) []Outcome {
	out := make([]Outcome, len(results))
	sem := make(chan struct{}, t.cfg.Parallel)
	var wg sync.WaitGroup
	for i, r := range results {
		if err := r.Validate(); err != nil {
			out[i] = Outcome{Reason: err.Error()}
			continue
		}
		payload := t.cfg.Codec.Encode(r.Classic().MarshalPassive())
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := t.submit(ctx, payload); err != nil {
				out[i] = Outcome{Retry: true, Reason: fmt.Sprintf("sending job to gearmand failed: %v", err)}
				return
			}
			out[i] = Outcome{Accepted: true}
			sctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
			defer cancel()
			for k, d := range t.dups {
				if _, err := d.Submit(sctx, t.cfg.ResultQueue, "", payload, gearman.PriorityNormal, true); err != nil {
					t.log.Error("copy to dupserver failed", "dupserver", t.cfg.DupServers[k], "host", r.Host, "service", r.Service, "err", err)
					t.cfg.Metrics.dupFailed()
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// submit puts payload on the result queue, trying Retries more times.
func (t *GearmanTransport) submit(ctx context.Context, payload []byte) error {
	for attempt := 0; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
		_, err := t.main.Submit(sctx, t.cfg.ResultQueue, "", payload, gearman.PriorityNormal, true)
		cancel()
		if err == nil || attempt >= t.cfg.Retries || ctx.Err() != nil {
			return err
		}
		t.log.Warn("sending job to gearmand failed; retrying", "attempt", attempt+1, "of", t.cfg.Retries+1, "in", t.cfg.RetryInterval, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(t.cfg.RetryInterval):
		}
	}
}

// Close closes every connection.
func (t *GearmanTransport) Close() error {
	errs := []error{t.main.Close()}
	for _, d := range t.dups {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}
