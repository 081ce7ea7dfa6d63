package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/credentials"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/internal/buildinfo"
	"github.com/gearbridge/gearbridge/internal/certwatch"
	"github.com/gearbridge/gearbridge/internal/config"
	"github.com/gearbridge/gearbridge/internal/enroll"
	"github.com/gearbridge/gearbridge/modgearman"
	"github.com/gearbridge/gearbridge/modgearman/classicconf"
	"github.com/gearbridge/gearbridge/worker"
)

// The worker's transports.
const (
	// transportBridge: jobs come from a bridge over mutual-TLS gRPC; the
	// worker never holds the Gearman key.
	transportBridge = "bridge"
	// transportGearman: jobs come straight from gearmand, as with a
	// classic worker, which needs the key.
	transportGearman = "gearman"
)

// defaultBridge is where a worker looks for the bridge when none is given:
// the bridge's default port on the same machine.
const defaultBridge = "localhost:4731"

// workerOptions is the worker's configuration as read from a YAML file,
// GEARBRIDGE_* variables and flags; keys are spelled like the flags. A
// classic mod_gearman_worker.conf is mapped onto it first. key and keyfile
// are one setting (oneof): a flag or variable giving either one replaces
// both of a file.
type workerOptions struct {
	Transport                 string        `mapstructure:"transport"`
	Servers                   []string      `mapstructure:"server"`
	DupServers                []string      `mapstructure:"dupserver"`
	DupResultsArePassive      bool          `mapstructure:"dup-results-are-passive"`
	Key                       string        `mapstructure:"key" oneof:"key"`
	KeyFile                   string        `mapstructure:"keyfile" oneof:"key"`
	Encryption                bool          `mapstructure:"encryption"`
	Bridge                    []string      `mapstructure:"bridge"`
	TLSCA                     string        `mapstructure:"tls-ca"`
	TLSCert                   string        `mapstructure:"tls-cert"`
	TLSKey                    string        `mapstructure:"tls-key"`
	Identifier                string        `mapstructure:"identifier"`
	Hosts                     bool          `mapstructure:"hosts"`
	Services                  bool          `mapstructure:"services"`
	EventHandler              bool          `mapstructure:"eventhandler"`
	Notifications             bool          `mapstructure:"notifications"`
	HostGroups                []string      `mapstructure:"hostgroups"`
	ServiceGroups             []string      `mapstructure:"servicegroups"`
	MaxWorkers                int           `mapstructure:"max-workers"`
	JobTimeout                time.Duration `mapstructure:"job-timeout"`
	MaxAge                    time.Duration `mapstructure:"max-age"`
	LoadLimit1                float64       `mapstructure:"load-limit1"`
	LoadLimit5                float64       `mapstructure:"load-limit5"`
	LoadLimit15               float64       `mapstructure:"load-limit15"`
	TimeoutReturn             int           `mapstructure:"timeout-return"`
	ShowErrorOutput           bool          `mapstructure:"show-error-output"`
	InternalCheckDummy        bool          `mapstructure:"internal-check-dummy"`
	InternalNegate            bool          `mapstructure:"internal-negate"`
	WorkerNameInResult        string        `mapstructure:"worker-name-in-result"`
	EmbeddedPerl              bool          `mapstructure:"embedded-perl"`
	EmbeddedPerlImplicitly    bool          `mapstructure:"embedded-perl-implicitly"`
	PerlCache                 bool          `mapstructure:"perl-cache"`
	Perl                      string        `mapstructure:"perl"`
	RestrictPath              []string      `mapstructure:"restrict-path"`
	RestrictCommandCharacters string        `mapstructure:"restrict-command-characters"`
	DrainTimeout              time.Duration `mapstructure:"drain-timeout"`
	ResultBatchWait           time.Duration `mapstructure:"result-batch-wait"`
	StateDir                  string        `mapstructure:"state-dir"`
	Renew                     bool          `mapstructure:"renew"`
	RenewInterval             time.Duration `mapstructure:"renew-check-interval"`
	MetricsListen             string        `mapstructure:"metrics-listen"`
	LogLevel                  string        `mapstructure:"log-level"`
	LogFormat                 string        `mapstructure:"log-format"`
	// LogFile, LogMode, PidFile and Daemon are the classic options of the
	// same names (logmode: automatic, file, stdout or syslog).
	LogFile string `mapstructure:"logfile"`
	LogMode string `mapstructure:"logmode"`
	PidFile string `mapstructure:"pidfile"`
	Daemon  bool   `mapstructure:"daemon"`

	// classicUnused is the start-up line naming the classic options set
	// that the worker does not act on, with the reasons.
	classicUnused string
}

// defaultWorkerOptions are the options before any file or flag.
func defaultWorkerOptions() workerOptions {
	d := worker.DefaultConfig()
	return workerOptions{
		Transport:            transportBridge,
		Encryption:           true,
		DupResultsArePassive: true,
		Bridge:               []string{defaultBridge},
		MaxWorkers:           d.Slots,
		JobTimeout:           d.JobTimeout,
		TimeoutReturn:        d.TimeoutReturn,
		ShowErrorOutput:      d.ShowErrorOutput,
		InternalCheckDummy:   d.InternalCheckDummy,
		InternalNegate:       d.InternalNegate,
		WorkerNameInResult:   d.WorkerNameInResult,
		PerlCache:            d.PerlCache,
		Perl:                 d.PerlInterpreter,
		DrainTimeout:         d.DrainTimeout,
		ResultBatchWait:      d.ResultBatchWait,
		LogLevel:             "info",
		LogFormat:            "text",
		LogMode:              classicconf.LogModeAutomatic,
	}
}

func newWorkerCmd(s streams, g *globals) *cobra.Command {
	d := defaultWorkerOptions()
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run checks from a bridge (or from gearmand directly)",
		Long: `Run Mod-Gearman checks for a bridge. The worker dials out to the bridge over
mutual TLS, so it needs no inbound port and never holds the Gearman key.

Queues are chosen as with mod_gearman_worker: --hosts, --services,
--eventhandler, --notifications, --hostgroups and --servicegroups. At least
one is required.

--config reads a YAML file with keys spelled like the flags, or a classic
mod_gearman_worker.conf (key=value or --key=value lines, whatever the file's
name: the content tells), of which the options that apply to a remote worker
are used. Flags override the file, also where the file spells a setting
differently: --key replaces keyfile= and --keyfile replaces key=.

--bridge takes a comma list of HOST[:PORT] (default port 4731): the worker
tries the bridges in turn.
SIGTERM and SIGINT drain the worker: running checks finish and their results
are delivered (bounded by --drain-timeout). SIGHUP reloads the TLS
certificate.

With --state-dir DIR (filled by gearbridge worker enroll) no --tls-* flags are
needed, and the worker renews its certificate over its connection to the
bridge when less than a third of its lifetime is left. With --renew, a worker
running from files of gearbridge certs issue (--tls-cert, --tls-key) renews
them the same way; their directory must be writable (the new files replace
the old ones by rename, and a lock file <cert>.lock sits beside them).

A certificate or CA with less than 30 days left is logged as a warning, daily;
--metrics-listen exports gearbridge_certificate_expiry_timestamp_seconds. A
worker whose certificate has expired does not start.

--transport=gearman makes it a drop-in classic worker on the central site:
it takes jobs straight from --server (default localhost:4730) with the
classic key (--key, --keyfile, --encryption, or server=, key= and keyfile=
of a classic mod_gearman_worker.conf), submits results to each job's result
queue before completing the job, and answers worker_<identifier> pings. It
needs no bridge and no certificates.

The classic workers' command-line forms are accepted as well: every option of
the classic table as --opt=value or --opt value (--max-worker=50,
--job_timeout=30 in seconds, --hosts=yes, --debug=1, -d, --pidfile=FILE,
--logfile=FILE, --logmode=file|stdout|syslog). They win over the file. SIGHUP
reopens the log file. Options set but not acted on are logged at start, each
with the reason.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringSlice("dupserver", nil, "with --transport=gearman: gearmand `HOST[:PORT]` that gets a copy of every check result, as a passive result (repeatable)")
	f.String("transport", transportBridge, "where jobs come from: bridge (over mutual-TLS gRPC) or gearman (straight from --server with the classic key, as a classic worker)")
	f.Bool("hosts", false, "run host checks (queue host)")
	f.Bool("services", false, "run service checks (queue service)")
	f.Bool("eventhandler", false, "run event handlers (queue eventhandler)")
	f.Bool("notifications", false, "run notifications (queue notification)")
	f.StringSlice("hostgroups", nil, "serve the queues hostgroup_`NAME` (comma list)")
	f.StringSlice("servicegroups", nil, "serve the queues servicegroup_`NAME` (comma list)")
	f.Int("max-workers", d.MaxWorkers, "plugins that may run at once")
	f.Duration("job-timeout", d.JobTimeout, "plugin timeout for jobs that carry none")
	f.Duration("max-age", 0, "answer jobs older than this with \"could not start check in time\" (0 = off)")
	f.Float64("load-limit1", 0, "take no new jobs while the 1 minute load is above this (0 = off)")
	f.Float64("load-limit5", 0, "take no new jobs while the 5 minute load is above this (0 = off)")
	f.Float64("load-limit15", 0, "take no new jobs while the 15 minute load is above this (0 = off)")
	f.Int("timeout-return", d.TimeoutReturn, "return code of timed-out plugins: 0 OK, 1 WARNING, 2 CRITICAL (the classic default), 3 UNKNOWN")
	f.Bool("show-error-output", d.ShowErrorOutput, "append stderr to the output of failing plugins")
	f.StringSlice("restrict-path", nil, "only run commands below these `DIR`s (comma list)")
	f.Bool("internal-check-dummy", d.InternalCheckDummy, "answer .../check_dummy STATE [TEXT] without starting a process")
	f.Bool("internal-negate", d.InternalNegate, "run .../negate [options] /path/plugin in process: the plugin runs, negate's state mapping is applied")
	f.String("worker-name-in-result", d.WorkerNameInResult, "add \"(worker: <identifier>)\" to plugin output: off, on (in front) or pre_perfdata (before the perfdata)")
	f.Bool("embedded-perl", false, "run Perl plugins marked \"# nagios: +epn\" in a persistent Perl server (compiled once, a fork per check)")
	f.Bool("embedded-perl-implicitly", false, "with --embedded-perl: also Perl plugins without a marker; \"# nagios: -epn\" still opts out")
	f.Bool("perl-cache", d.PerlCache, "with --embedded-perl: keep compiled plugins until their file changes (off: compile for every check)")
	f.String("perl", d.Perl, "with --embedded-perl: the Perl interpreter `PATH` that runs the Perl server")
	f.Duration("drain-timeout", d.DrainTimeout, "bound on finishing running checks at shutdown")
	f.Duration("result-batch-wait", d.ResultBatchWait, "hold a finished result up to this long for others to share its message to the bridge (0 = send at once)")
	f.String("state-dir", "", "state `DIR` from gearbridge worker enroll: certificate, key and CA, renewed automatically")
	f.Bool("renew", false, "renew the certificate of --tls-cert and --tls-key over the bridge connection, as an enrolled worker does (their directory must be writable)")
	f.Duration("renew-check-interval", enroll.DefaultRenewInterval, "with --state-dir or --renew: how often the certificate's remaining lifetime is checked")
	f.String("metrics-listen", "", "serve Prometheus metrics on `ADDR` (/metrics)")
	f.StringArray(classicOptionFlag, nil, "a classic option as `NAME=VALUE` (classic forms such as --max-worker=5 are turned into it)")
	_ = f.MarkHidden(classicOptionFlag)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts, notes, err := loadWorkerOptions(cmd.Flags(), g.configFile)
		if err != nil {
			return usageError(err)
		}
		opts.useStateDir()
		cfg, err := opts.workerConfig(os.Hostname)
		if err != nil {
			return usageError(err)
		}
		if opts.Daemon && !isDaemonChild() {
			pid, err := startDaemon(opts.LogFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.err, "gearbridge worker: running in the background as pid %d\n", pid)
			return nil
		}
		wlog, err := openWorkerLog(opts, s)
		if err != nil {
			return err
		}
		defer wlog.Close()
		log := wlog.Logger
		for _, n := range notes {
			log.Warn("config file", "note", n)
		}
		if opts.classicUnused != "" {
			log.Info("classic options accepted but not used", "options", opts.classicUnused)
		}
		removePid, err := writePidFile(opts.PidFile)
		if err != nil {
			return err
		}
		defer removePid()
		defer onSIGHUP(wlog.reopen)()
		return runWorker(cmd.Context(), opts, cfg, log)
	}
	cmd.AddCommand(newEnrollCmd(s, g, certs.RoleWorker))
	return cmd
}

// useStateDir points the TLS files that are not set explicitly at the
// state directory.
func (o *workerOptions) useStateDir() {
	if o.StateDir == "" {
		return
	}
	crt, key, ca := enroll.Paths(o.StateDir)
	o.TLSCert, o.TLSKey, o.TLSCA = cmp.Or(o.TLSCert, crt), cmp.Or(o.TLSKey, key), cmp.Or(o.TLSCA, ca)
}

// renews reports whether the worker renews its certificate itself: when
// it uses the certificate and key of its state directory.
func (o workerOptions) renews() bool {
	if o.StateDir == "" {
		return false
	}
	crt, key, _ := enroll.Paths(o.StateDir)
	return o.TLSCert == crt && o.TLSKey == key
}

// openTLS loads the worker's certificate and returns the renewal that
// keeps it fresh, if any: that of its state directory, or with --renew
// that of the files --tls-cert and --tls-key name.
func (o workerOptions) openTLS(log *slog.Logger) (*certs.Reloader, worker.RenewFunc, error) {
	rl, renew, err := o.loadTLS(log)
	if err != nil {
		return nil, nil, err
	}
	if err := o.checkNotExpired(rl.Leaf(), time.Now()); err != nil {
		return nil, nil, usageError(err)
	}
	return rl, renew, nil
}

// checkNotExpired refuses a certificate that has expired: the bridge
// refuses it, and no renewal can help any more, so retrying would only
// hide the problem. The error says how to get a new one.
func (o workerOptions) checkNotExpired(leaf *x509.Certificate, now time.Time) error {
	if now.Before(leaf.NotAfter) {
		return nil
	}
	role, name := certwatch.Labels(leaf)
	expired := fmt.Sprintf("certificate %s (%s %s) expired on %s", o.TLSCert, role, name, leaf.NotAfter.UTC().Format("2006-01-02 15:04 UTC"))
	if o.renews() {
		return fmt.Errorf(`%s; re-enroll with "gearbridge worker enroll --state-dir NEW_DIR --bridge HOST:PORT --token TOKEN --ca-fingerprint sha256:…" (a token from "gearbridge certs token --role %s --name %s") and run the worker with --state-dir NEW_DIR instead of %s`,
			expired, role, name, o.StateDir)
	}
	return fmt.Errorf(`%s; issue a new one with "gearbridge certs issue --role %s --name %s" on the CA host, or re-enroll with "gearbridge worker enroll"`,
		expired, role, name)
}

// loadTLS is openTLS without the expiry check.
func (o workerOptions) loadTLS(log *slog.Logger) (*certs.Reloader, worker.RenewFunc, error) {
	if o.renews() {
		rl, err := enroll.Open(o.StateDir, o.TLSCA)
		if err != nil {
			return nil, nil, usageError(fmt.Errorf("worker TLS: %w", err))
		}
		return rl, enroll.NewRenewer(o.StateDir, rl, log, o.RenewInterval).Run, nil
	}
	if !o.Renew {
		rl, err := certs.NewReloader(o.TLSCert, o.TLSKey, o.TLSCA)
		if err != nil {
			return nil, nil, usageError(fmt.Errorf("worker TLS: %w", err))
		}
		return rl, nil, nil
	}
	files := enroll.IssuedFiles(o.TLSCert, o.TLSKey, o.TLSCA)
	if err := files.CheckWritable(); err != nil {
		return nil, nil, usageError(fmt.Errorf("--renew: %w", err))
	}
	rl, err := enroll.OpenFiles(files)
	if err != nil {
		return nil, nil, usageError(fmt.Errorf("worker TLS: %w", err))
	}
	return rl, enroll.NewFilesRenewer(files, rl, log, o.RenewInterval).Run, nil
}

// newEnrollCmd is `gearbridge worker enroll` and, with role sender,
// `gearbridge send enroll`.
func newEnrollCmd(s streams, g *globals, role certs.Role) *cobra.Command {
	var token, fingerprint, stateDir string
	var timeout time.Duration
	parent := map[certs.Role]string{certs.RoleWorker: "worker", certs.RoleSender: "send"}[role]
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Get a " + string(role) + " certificate from the bridge with a one-time token",
		Long: `Enroll with a one-time token from gearbridge certs token. The key is generated
here and never leaves this machine; the bridge signs a certificate request for
the identity the token names. The bridge is trusted only if its CA matches
--ca-fingerprint. The key (0600), the certificate and the CA are written to
--state-dir, which must not hold a key yet. Afterwards run
gearbridge ` + parent + ` --bridge HOST:PORT --state-dir DIR ...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.bridge == "" || token == "" || fingerprint == "" || stateDir == "" {
				return usageError(errors.New(parent + " enroll: --bridge, --token, --ca-fingerprint and --state-dir are required"))
			}
			bridge, err := bridgeAddr(g.bridge)
			if err != nil {
				return usageError(err)
			}
			pair, err := enroll.Enroll(cmd.Context(), enroll.Options{
				Bridge: bridge, Token: token, CAFingerprint: fingerprint,
				StateDir: stateDir, Role: role, Timeout: timeout,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "enrolled as %s %q (serial %s, valid until %s); state in %s\n",
				pair.Role, pair.Name, certs.SerialOf(pair.Cert), pair.Cert.NotAfter.UTC().Format(time.RFC3339), stateDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&token, "token", "", "one-time enrollment `TOKEN`")
	f.StringVar(&fingerprint, "ca-fingerprint", "", "the CA's `sha256:HEX` fingerprint, from certs token")
	f.StringVar(&stateDir, "state-dir", "", "`DIR` for the key, certificate and CA")
	f.DurationVar(&timeout, "timeout", enroll.DefaultTimeout, "bound on the enrollment")
	return cmd
}

// loadWorkerOptions reads the defaults, the config file (classic or YAML),
// GEARBRIDGE_* variables, the flags that were set and the classic options
// of the command line, in that order. notes are warnings about the classic
// file for the log.
func loadWorkerOptions(fs *pflag.FlagSet, file string) (workerOptions, []string, error) {
	opts := defaultWorkerOptions()
	var notes []string
	var classic *classicconf.Config
	var classicSet []string // classic options set, by file or command line
	if isClassicConf(file) {
		cc, err := classicconf.ParseFile(file)
		if err != nil {
			return opts, nil, fmt.Errorf("classic config: %w", err)
		}
		notes = opts.applyClassic(cc)
		classic = &cc
		classicSet = classicconf.ChangedOptions(cc)
		file = "" // the flags and the environment still apply on top
	}
	if err := config.Load(&opts, file, fs); err != nil {
		return opts, nil, err
	}
	if opts.Transport == transportBridge && fs != nil && fs.Changed("dupserver") {
		return opts, nil, errors.New("--dupserver applies to --transport=gearman; with a bridge, the bridge's --dupserver decides about copies")
	}
	argsConf, given, err := classicArgs(fs)
	if err != nil {
		return opts, nil, err
	}
	notes = append(notes, argsConf.Warnings...)
	opts.applyClassicOptions(argsConf, given)
	classicSet = append(classicSet, given...)
	if classic != nil {
		if opts.Transport == transportGearman && !classic.SetByHand.AnyQueue() && len(opts.queues()) == 0 {
			// The classic worker's rule. Not for a remote worker: generic
			// queues would draw the central site's checks to it.
			opts.Hosts, opts.Services, opts.EventHandler, opts.Notifications = true, true, true, true
			notes = append(notes, "no queue option given: serving hosts, services, eventhandler and notifications, as the classic worker does")
		}
	}
	opts.classicUnused = opts.unusedClassicLine(classicSet)
	return opts, notes, nil
}

// isClassicConf reports whether file is a classic key=value file rather
// than YAML. The content decides (classicconf.Sniff), since classic files
// go by many names: .conf, .cfg, .conf.in, none at all. A directory is a
// classic include directory. Only a file without any option line (empty,
// or comments only) or one that cannot be read is judged by its name; the
// parser chosen then reports the read error.
func isClassicConf(file string) bool {
	if file == "" {
		return false
	}
	if info, err := os.Stat(file); err == nil && info.IsDir() {
		return true
	}
	if data, err := os.ReadFile(file); err == nil {
		if classic, found := classicconf.Sniff(data); found {
			return classic
		}
	}
	ext := strings.ToLower(filepath.Ext(file))
	return ext == ".conf" || ext == ".cfg"
}

// applyClassic maps the options of a mod_gearman_worker.conf that the
// worker acts on (see classicActions). It returns the file's warnings.
func (o *workerOptions) applyClassic(c classicconf.Config) []string {
	for _, act := range classicActions() {
		act(o, c)
	}
	return append([]string(nil), c.Warnings...)
}

// workerConfig turns the options into the package's Config and checks it.
func (o workerOptions) workerConfig(hostname func() (string, error)) (worker.Config, error) {
	cfg := worker.DefaultConfig()
	for _, b := range o.Bridge {
		for item := range strings.SplitSeq(b, ",") {
			if item = strings.TrimSpace(item); item != "" {
				addr, err := bridgeAddr(item)
				if err != nil {
					return cfg, err
				}
				cfg.Bridges = append(cfg.Bridges, addr)
			}
		}
	}
	cfg.Identifier = o.Identifier
	if cfg.Identifier == "" {
		h, err := hostname()
		if err != nil {
			return cfg, fmt.Errorf("identifier: not set and the host name is unknown: %w", err)
		}
		cfg.Identifier = h
	}
	cfg.Queues = o.queues()
	cfg.Slots = o.MaxWorkers
	cfg.JobTimeout = o.JobTimeout
	cfg.MaxAge = o.MaxAge
	cfg.LoadLimit1, cfg.LoadLimit5, cfg.LoadLimit15 = o.LoadLimit1, o.LoadLimit5, o.LoadLimit15
	cfg.TimeoutReturn = o.TimeoutReturn
	cfg.ShowErrorOutput = o.ShowErrorOutput
	cfg.InternalCheckDummy = o.InternalCheckDummy
	cfg.InternalNegate = o.InternalNegate
	cfg.WorkerNameInResult = o.WorkerNameInResult
	cfg.EmbeddedPerl = o.EmbeddedPerl
	cfg.EmbeddedPerlImplicitly = o.EmbeddedPerlImplicitly
	cfg.PerlCache = o.PerlCache
	cfg.PerlInterpreter = o.Perl
	if o.EmbeddedPerl {
		// Found now rather than at the first Perl plugin, which would
		// otherwise get the error as its result, check after check.
		if _, err := exec.LookPath(o.Perl); err != nil {
			return cfg, fmt.Errorf("embedded-perl: the Perl interpreter: %w (install perl or set --perl)", err)
		}
	}
	cfg.RestrictPath = o.RestrictPath
	cfg.RestrictCommandCharacters = o.RestrictCommandCharacters
	cfg.DrainTimeout = o.DrainTimeout
	cfg.ResultBatchWait = o.ResultBatchWait
	switch o.Transport {
	case transportBridge:
	case transportGearman:
		return cfg, nil // NewGearman checks cfg without bridges
	default:
		return cfg, fmt.Errorf("transport: %q: want bridge or gearman", o.Transport)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("worker config: %w", err)
	}
	if o.TLSCA == "" || o.TLSCert == "" || o.TLSKey == "" {
		return cfg, errors.New("worker: --tls-ca, --tls-cert and --tls-key are required (see gearbridge certs issue), or --state-dir (see gearbridge worker enroll)")
	}
	return cfg, nil
}

// queues lists the Gearman queues the options ask for, in the classic order.
func (o workerOptions) queues() []string {
	var q []string
	add := func(name string) {
		for _, have := range q {
			if have == name {
				return
			}
		}
		q = append(q, name)
	}
	if o.Hosts {
		add("host")
	}
	if o.Services {
		add("service")
	}
	if o.EventHandler {
		add("eventhandler")
	}
	if o.Notifications {
		add("notification")
	}
	for _, g := range o.HostGroups {
		if g = strings.TrimSpace(g); g != "" {
			add("hostgroup_" + g)
		}
	}
	for _, g := range o.ServiceGroups {
		if g = strings.TrimSpace(g); g != "" {
			add("servicegroup_" + g)
		}
	}
	return q
}

// gearmanOptions are the gearmand servers and the codec of
// --transport=gearman.
func (o workerOptions) gearmanOptions() (worker.GearmanOptions, error) {
	servers, err := normalizeServers(o.Servers)
	if err != nil {
		return worker.GearmanOptions{}, err
	}
	if len(servers) == 0 {
		servers = []string{"localhost:4730"}
	}
	key, err := resolveKey(o.Key, o.KeyFile)
	if err != nil {
		return worker.GearmanOptions{}, err
	}
	if o.Encryption && key == "" {
		return worker.GearmanOptions{}, errors.New("--transport=gearman: encryption is on but no key is given (--key, --keyfile or --encryption=no)")
	}
	codec, err := modgearman.NewCodec(key, o.Encryption)
	if err != nil {
		return worker.GearmanOptions{}, err
	}
	dups, err := normalizeServers(o.DupServers)
	if err != nil {
		return worker.GearmanOptions{}, err
	}
	return worker.GearmanOptions{Servers: servers, DupServers: dups, DupResultsActive: !o.DupResultsArePassive, Codec: codec}, nil
}

// runGearmanWorker runs a --transport=gearman worker until ctx ends and it
// has drained.
func runGearmanWorker(ctx context.Context, opts workerOptions, cfg worker.Config, log *slog.Logger, reg *prometheus.Registry, ready *readiness) error {
	g, err := opts.gearmanOptions()
	if err != nil {
		return usageError(err)
	}
	w, err := worker.NewGearman(cfg, g, worker.Deps{Logger: log, Registerer: reg, Version: buildinfo.Get().Version})
	if err != nil {
		return usageError(err)
	}
	ready.set(w.Ready)
	return w.Run(ctx)
}

// runWorker runs the worker until ctx ends and it has drained.
func runWorker(ctx context.Context, opts workerOptions, cfg worker.Config, log *slog.Logger) error {
	return runWorkerWith(ctx, opts, cfg, log, processRegistry())
}

// runWorkerWith is runWorker with the registry its metrics go to.
func runWorkerWith(ctx context.Context, opts workerOptions, cfg worker.Config, log *slog.Logger, reg *prometheus.Registry) error {
	ready := &readiness{}
	if opts.MetricsListen != "" {
		stop, err := serveMetrics(opts.MetricsListen, reg, ready)
		if err != nil {
			return err
		}
		defer stop()
	}
	if opts.Transport == transportGearman {
		return runGearmanWorker(ctx, opts, cfg, log, reg, ready)
	}
	tlsReloader, renew, err := opts.openTLS(log)
	if err != nil {
		return err
	}
	if opts.Identifier == "" {
		// A remote worker is named after its certificate, not its host:
		// the bridge refuses another name unless the authorization rules
		// list it for the certificate's identity.
		if _, name, err := certs.IdentityOf(tlsReloader.Leaf()); err == nil {
			cfg.Identifier = name
		}
	}
	defer certwatch.Start(ctx, certwatch.Reloaded(tlsReloader), log, reg)()
	w, err := worker.New(cfg, worker.Deps{
		Renew:      renew,
		Logger:     log,
		Registerer: reg,
		// The server name comes from each bridge address.
		Credentials: credentials.NewTLS(tlsReloader.ClientConfig("")),
		Version:     buildinfo.Get().Version,
	})
	if err != nil {
		return usageError(err)
	}
	ready.set(w.Ready)

	// SIGHUP reloads the certificate, for example after a renewal; new
	// connections use it.
	defer onSIGHUP(func() {
		if err := tlsReloader.Reload(); err != nil {
			log.Error("reload TLS material; keeping the old one", "err", err)
		} else {
			log.Info("reloaded TLS material")
		}
	})()
	if err := w.Run(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	return nil
}
