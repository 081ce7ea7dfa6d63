package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/keepalive"

	"github.com/gearbridge/gearbridge/plugin"
)

// Connection timing.
const (
	// keepaliveTime makes the worker ping an idle connection every 20 s, so
	// that NAT and firewall state in front of a remote worker does not
	// expire (many drop idle TCP state after 30..60 s). The bridge permits
	// pings every 15 s.
	keepaliveTime = 20 * time.Second
	// keepaliveTimeout is how long a ping may go unanswered before the
	// connection counts as dead and the worker reconnects.
	keepaliveTimeout = 10 * time.Second
	// maxReceiveBytes is the largest message the worker takes from the
	// bridge. It is announced in the hello, so that the bridge answers a
	// larger job itself instead of sending what the worker must refuse
	// (which would break the stream on every reconnect). Jobs are command
	// lines and, for notifications, plugin output: 16 MiB is plenty.
	maxReceiveBytes = 16 << 20
	// streamWindow is the flow-control window of the stream and its
	// connection; a larger message flows as the window is updated.
	streamWindow = 1 << 20
	// closeTimeout bounds the wait for the bridge to end a stream the worker
	// half-closed.
	closeTimeout = 2 * time.Second
)

// handshakeTimeout bounds dialling, the TLS handshake, the hello and the
// bridge's welcome. It matches the bridge's own wait for a hello. A
// variable only so that tests can make attempts time out quickly.
var handshakeTimeout = 10 * time.Second

// Worker runs jobs from a bridge. Create it with [New] and start it with
// [Worker.Run].
type Worker struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	load     func() ([3]float64, error)
	dialOpts []grpc.DialOption
	version  string
	base     plugin.Options
	renew    RenewFunc
	started  atomic.Bool
}

// New checks cfg and builds a worker. It connects nothing until Run.
func New(cfg Config, deps Deps) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("worker config: %w", err)
	}
	if deps.Credentials == nil {
		return nil, errors.New("worker: no transport credentials for the bridge connection")
	}
	base, m, log, load, err := commonParts(cfg, deps)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(deps.Credentials),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxReceiveBytes)),
		// Fixed flow-control windows, as the bridge's: gRPC's default
		// estimates the bandwidth-delay product with a PING for every read
		// of data, which the bridge must read and answer for each message.
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(streamWindow),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                keepaliveTime,
			Timeout:             keepaliveTimeout,
			PermitWithoutStream: true,
		}),
		// Each attempt uses a fresh connection and the worker's own
		// backoff decides when to try again; gRPC's default connect
		// backoff (up to 120 s) would keep a restarted bridge waiting.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  cfg.BackoffMin,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   cfg.BackoffMax,
			},
			MinConnectTimeout: handshakeTimeout,
		}),
	}
	opts = append(opts, deps.DialOptions...)
	return &Worker{
		cfg:      cfg,
		log:      log.With("identifier", cfg.Identifier),
		m:        m,
		load:     load,
		dialOpts: opts,
		version:  deps.Version,
		base:     base,
		renew:    deps.Renew,
	}, nil
}

// commonParts builds what both transports need from cfg and deps: the
// plugin options (with the embedded Perl server, which starts on its first
// Perl plugin), the metrics, the logger and the load reader.
func commonParts(cfg Config, deps Deps) (plugin.Options, *metrics, *slog.Logger, func() ([3]float64, error), error) {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := plugin.DefaultOptions()
	base.Identifier = cfg.Identifier
	base.TimeoutReturn = cfg.TimeoutReturn
	base.MaxOutput = cfg.OutputCap
	base.ShowErrorOutput = cfg.ShowErrorOutput
	base.InternalCheckDummy = cfg.InternalCheckDummy
	base.InternalNegate = cfg.InternalNegate
	base.WorkerNameInResult = cfg.WorkerNameInResult
	base.RestrictPath = cfg.RestrictPath
	base.RestrictCommandCharacters = cfg.RestrictCommandCharacters
	if err := base.Validate(); err != nil {
		return base, nil, nil, nil, fmt.Errorf("worker config: plugin options: %w", err)
	}
	if cfg.EmbeddedPerl {
		base.Perl = plugin.NewPerl(plugin.PerlConfig{
			Perl:     cfg.PerlInterpreter,
			Implicit: cfg.EmbeddedPerlImplicitly,
			NoCache:  !cfg.PerlCache,
			Logger:   log,
		})
	}
	m, err := newMetrics(deps.Registerer, base.Perl)
	if err != nil {
		return base, nil, nil, nil, err
	}
	load := deps.Load
	if load == nil {
		load = SystemLoad
	}
	return base, m, log, load, nil
}

// closePerl stops the embedded Perl server, if any, once no plugin runs
// any more.
func closePerl(opt plugin.Options, log *slog.Logger) {
	if opt.Perl == nil {
		return
	}
	if err := opt.Perl.Close(); err != nil {
		log.Warn("stop the embedded Perl server", "err", err)
	}
}

// Run serves the configured queues until ctx ends, reconnecting to the
// bridges as needed. When ctx ends it drains: it tells the bridge, takes no
// new jobs, lets running plugins finish and waits for their results to be
// acknowledged, bounded by Config.DrainTimeout, after which remaining
// plugins are killed. Run returns when every goroutine it started has
// finished. It may be called only once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("worker: Run called twice")
	}
	defer closePerl(w.base, w.log)
	return newLoop(w).run(ctx)
}

// retryBackoff is capped exponential backoff with equal jitter: each pause is
// between half and all of the current step.
type retryBackoff struct {
	min, max, cur time.Duration
}

func newRetryBackoff(minD, maxD time.Duration) retryBackoff {
	return retryBackoff{min: minD, max: maxD, cur: minD}
}

func (b *retryBackoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	return d/2 + rand.N(d/2+1)
}

func (b *retryBackoff) reset() { b.cur = b.min }

// alarm is a timer a select loop can wait on; it never fires while unset.
type alarm struct{ t *time.Timer }

func (a *alarm) set(d time.Duration) {
	if a.t == nil {
		a.t = time.NewTimer(d)
		return
	}
	a.t.Reset(d)
}

func (a *alarm) stop() {
	if a.t != nil {
		a.t.Stop()
	}
}

func (a *alarm) c() <-chan time.Time {
	if a.t == nil {
		return nil
	}
	return a.t.C
}
