package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/plugin"
)

// Defaults of [DefaultConfig].
const (
	// DefaultSlots is the classic max-worker default: at most 20 plugins run
	// at once.
	DefaultSlots = 20
	// DefaultJobTimeout is the classic job_timeout, used for jobs that carry
	// no timeout of their own.
	DefaultJobTimeout = 60 * time.Second
	// DefaultOutputCap bounds captured plugin output. A result must fit into
	// one gRPC message, which the bridge accepts up to 4 MiB by default.
	DefaultOutputCap = 1 << 20
	// DefaultTimeoutReturn is the classic timeout_return: CRITICAL, as the
	// C worker and the shipped config files have it (mod-gearman-worker-go
	// uses 3, UNKNOWN).
	DefaultTimeoutReturn = 2
	// DefaultDrainTimeout bounds a drain: long enough for ordinary checks to
	// finish, short enough for a service manager's stop timeout (systemd
	// waits 90 s by default).
	DefaultDrainTimeout = 30 * time.Second
	// DefaultResultBatchWait lets the results of a busy worker share
	// messages, which takes most of the bridge's cost per check away, for at
	// most this much delay of a result (a check's own latency is unchanged).
	DefaultResultBatchWait = 50 * time.Millisecond
	// DefaultBackoffMin and DefaultBackoffMax bound the jittered pause
	// between connection attempts. The cap is low on purpose: a restarted
	// bridge should see its workers back within a few seconds, and a dial
	// attempt costs the bridge one TLS handshake.
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second
	// DefaultRefusedBackoffMax caps the pause after the bridge refused
	// the worker for good (see Config.RefusedBackoffMax): a minute keeps
	// a misconfigured fleet from costing the bridge a handshake per
	// worker every two seconds, and a fixed authorization still takes
	// effect within a minute.
	DefaultRefusedBackoffMax = time.Minute
	// DefaultRefusedLogInterval is how often a run of refusals is
	// summarised in the log: often enough to be seen, rarely enough not
	// to drown other lines.
	DefaultRefusedLogInterval = 5 * time.Minute
	// DefaultLoadInterval is how often the load limits are checked.
	DefaultLoadInterval = time.Second
)

// maxQueueName is the limit the bridge enforces.
const maxQueueName = 511

// Config is the worker's configuration. Start from [DefaultConfig]; the zero
// value is not valid.
type Config struct {
	// Bridges are the bridge addresses (gRPC targets, usually host:port),
	// tried in turn.
	Bridges []string
	// Identifier names this worker in the bridge's status and in result
	// texts ("(worker: <identifier>)"). Classic workers use the host name.
	Identifier string
	// Queues are the Gearman queues to serve, e.g. "service",
	// "hostgroup_dmz".
	Queues []string
	// Slots is the number of plugins that may run at once (max-worker).
	Slots int
	// JobTimeout is the plugin timeout for jobs that carry none.
	JobTimeout time.Duration
	// MaxAge, when positive, answers jobs whose core_time is older than
	// this with "could not start in time" instead of running them.
	MaxAge time.Duration
	// LoadLimit1, LoadLimit5 and LoadLimit15 hold back credit while the
	// 1, 5 or 15 minute load average is above them; 0 switches a limit off.
	LoadLimit1, LoadLimit5, LoadLimit15 float64
	// LoadInterval is how often the load is read while a limit is set.
	LoadInterval time.Duration
	// OutputCap bounds the captured stdout and stderr of one plugin.
	OutputCap int
	// ShowErrorOutput appends stderr to the output of failing plugins.
	ShowErrorOutput bool
	// TimeoutReturn is the return code (0..3) of timed-out plugins.
	TimeoutReturn int
	// InternalCheckDummy answers check_dummy command lines without starting
	// a process.
	InternalCheckDummy bool
	// InternalNegate runs ".../negate [options] /path/plugin" command lines
	// in process (internal_negate).
	InternalNegate bool
	// WorkerNameInResult adds the identifier to plugin output: "on" in
	// front, "pre_perfdata" before the perfdata; "" or "off" not at all
	// (worker_name_in_result).
	WorkerNameInResult string
	// EmbeddedPerl runs Perl plugins that ask for it in a persistent Perl
	// server (enable_embedded_perl); EmbeddedPerlImplicitly also those
	// without a "# nagios: +epn" line (use_embedded_perl_implicitly);
	// PerlCache keeps compiled plugins until their file changes
	// (use_perl_cache). PerlInterpreter is the perl that runs the server
	// ("perl": the one in PATH).
	EmbeddedPerl           bool
	EmbeddedPerlImplicitly bool
	PerlCache              bool
	PerlInterpreter        string
	// RestrictPath, when not empty, lists the only directories commands may
	// be started from; RestrictCommandCharacters are then forbidden in
	// commands (empty means the classic default set).
	RestrictPath              []string
	RestrictCommandCharacters string
	// DrainTimeout bounds a drain: waiting for running plugins and for the
	// acknowledgement of their results, at shutdown and when a bridge asks
	// for it. Plugins still running after it are killed.
	DrainTimeout time.Duration
	// ResultBatchWait is how long a busy worker holds a finished result for
	// others to go with it in one message to a bridge that takes batches.
	// A batch goes out earlier when half the slots' results are in it or
	// when no plugin is running any more. 0 sends each result at once.
	ResultBatchWait time.Duration
	// BackoffMin and BackoffMax bound the jittered exponential pause
	// between connection attempts.
	BackoffMin, BackoffMax time.Duration
	// RefusedBackoffMax caps the pause when the bridge refuses the worker
	// for good (Unauthenticated, PermissionDenied, InvalidArgument, a
	// certificate error in the TLS handshake): from BackoffMax it doubles
	// up to this until a session starts.
	RefusedBackoffMax time.Duration
	// RefusedLogInterval is how often such a run of refusals is logged
	// again, as a summary, after its first refusal.
	RefusedLogInterval time.Duration
}

// DefaultConfig returns the classic worker defaults. Bridges, Identifier
// and Queues are left empty: they have no sensible default here (the
// command fills in the host name as identifier).
func DefaultConfig() Config {
	return Config{
		Slots:              DefaultSlots,
		JobTimeout:         DefaultJobTimeout,
		LoadInterval:       DefaultLoadInterval,
		OutputCap:          DefaultOutputCap,
		ShowErrorOutput:    true,
		TimeoutReturn:      DefaultTimeoutReturn,
		InternalCheckDummy: true,
		InternalNegate:     true,
		WorkerNameInResult: plugin.WorkerNameOff,
		PerlCache:          true,
		PerlInterpreter:    "perl",
		DrainTimeout:       DefaultDrainTimeout,
		ResultBatchWait:    DefaultResultBatchWait,
		BackoffMin:         DefaultBackoffMin,
		BackoffMax:         DefaultBackoffMax,
		RefusedBackoffMax:  DefaultRefusedBackoffMax,
		RefusedLogInterval: DefaultRefusedLogInterval,
	}
}

// Validate reports every invalid field, named like the command's flags. It
// does not change c.
func (c Config) Validate() error { return c.validate(true) }

// validate is Validate; needBridges is false for a worker that talks to
// gearmand directly (NewGearman), which ignores Bridges.
func (c Config) validate(needBridges bool) error {
	var errs []error
	if needBridges && len(c.Bridges) == 0 {
		errs = append(errs, errors.New("bridge: at least one bridge address is needed"))
	}
	for _, b := range c.Bridges {
		if b == "" {
			errs = append(errs, errors.New("bridge: empty address"))
		}
	}
	if err := gearman.ValidClientID(c.Identifier); err != nil {
		// The identifier is the client id at gearmand (directly, or through
		// the bridge's session connection) and names the status queue.
		errs = append(errs, fmt.Errorf("identifier: %w", err))
	} else if needBridges && !utf8.ValidString(c.Identifier) {
		errs = append(errs, fmt.Errorf("identifier: %q is not UTF-8, which the bridge protocol needs for names", c.Identifier))
	}
	if len(c.Queues) == 0 {
		errs = append(errs, errors.New("queues: a worker needs at least one queue (--services, --hosts, --eventhandler, --notifications, --hostgroups or --servicegroups)"))
	}
	seen := map[string]bool{}
	for _, q := range c.Queues {
		switch {
		case q == "" || len(q) > maxQueueName:
			errs = append(errs, fmt.Errorf("queues: queue name %q is empty or longer than %d bytes", q, maxQueueName))
		case strings.ContainsFunc(q, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			// Spaces are fine (host group names may have them); a NUL or a
			// line end cannot reach gearmand intact.
			errs = append(errs, fmt.Errorf("queues: queue name %q contains a control character", q))
		case needBridges && !utf8.ValidString(q):
			errs = append(errs, fmt.Errorf("queues: queue name %q is not UTF-8, which the bridge protocol needs for names", q))
		case seen[q]:
			errs = append(errs, fmt.Errorf("queues: %q is listed twice", q))
		}
		seen[q] = true
	}
	if c.Slots < 1 {
		errs = append(errs, fmt.Errorf("max-workers: must be at least 1, got %d", c.Slots))
	}
	if c.JobTimeout <= 0 {
		errs = append(errs, fmt.Errorf("job-timeout: must be positive, got %v", c.JobTimeout))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max-age: must not be negative, got %v", c.MaxAge))
	}
	for name, v := range map[string]float64{"load-limit1": c.LoadLimit1, "load-limit5": c.LoadLimit5, "load-limit15": c.LoadLimit15} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative (0 is off), got %v", name, v))
		}
	}
	if c.loadLimited() && c.LoadInterval <= 0 {
		errs = append(errs, fmt.Errorf("load-interval: must be positive, got %v", c.LoadInterval))
	}
	if c.OutputCap <= 0 {
		errs = append(errs, fmt.Errorf("output-cap: must be positive, got %d", c.OutputCap))
	}
	if c.TimeoutReturn < 0 || c.TimeoutReturn > 3 {
		errs = append(errs, fmt.Errorf("timeout-return: %d is not a return code 0..3", c.TimeoutReturn))
	}
	for _, p := range c.RestrictPath {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("restrict-path: %q is not an absolute path", p))
		}
	}
	switch c.WorkerNameInResult {
	case "", plugin.WorkerNameOff, plugin.WorkerNameOn, plugin.WorkerNamePrePerfdata:
	default:
		errs = append(errs, fmt.Errorf("worker-name-in-result: %q: want off, on or pre_perfdata", c.WorkerNameInResult))
	}
	if c.ResultBatchWait < 0 || c.ResultBatchWait > time.Second {
		errs = append(errs, fmt.Errorf("result-batch-wait: must be between 0 and 1s, got %v", c.ResultBatchWait))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("drain-timeout: must be positive, got %v", c.DrainTimeout))
	}
	if c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("backoff: want 0 < min <= max, got min %v, max %v", c.BackoffMin, c.BackoffMax))
	}
	if c.RefusedBackoffMax < c.BackoffMax {
		errs = append(errs, fmt.Errorf("refused-backoff: must be at least the backoff max %v, got %v", c.BackoffMax, c.RefusedBackoffMax))
	}
	if c.RefusedLogInterval <= 0 {
		errs = append(errs, fmt.Errorf("refused-log-interval: must be positive, got %v", c.RefusedLogInterval))
	}
	return errors.Join(errs...)
}

func (c Config) loadLimited() bool {
	return c.LoadLimit1 > 0 || c.LoadLimit5 > 0 || c.LoadLimit15 > 0
}

// Deps are what a worker takes from its owner.
type Deps struct {
	// Logger receives the worker's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the worker's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Load returns the 1, 5 and 15 minute load averages; nil reads
	// /proc/loadavg ([SystemLoad]). It is only called when a load limit is
	// set.
	Load func() ([3]float64, error)
	// Credentials secure the connection to the bridge: mutual TLS in
	// production (credentials.NewTLS with a certs client config), insecure
	// credentials in tests. Required.
	Credentials credentials.TransportCredentials
	// DialOptions are added to the worker's own options (keepalive,
	// reconnect parameters); tests use them for an in-memory dialer.
	DialOptions []grpc.DialOption
	// Version is announced in the Hello.
	Version string
	// Renew, if set, keeps the worker's certificate fresh over the bridge
	// connection; see [RenewFunc].
	Renew RenewFunc
}
