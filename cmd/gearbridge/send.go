package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/internal/buildinfo"
	"github.com/gearbridge/gearbridge/internal/certwatch"
	"github.com/gearbridge/gearbridge/internal/enroll"
	"github.com/gearbridge/gearbridge/internal/sendbench"
	"github.com/gearbridge/gearbridge/modgearman"
	"github.com/gearbridge/gearbridge/modgearman/classicconf"
	"github.com/gearbridge/gearbridge/sender"
)

// exitUnknown is send_gearman's exit code for every failure (Nagios
// UNKNOWN): bad usage, no connection, stdin timeout, refused results. The
// send command follows it instead of the usual exit 2 for usage errors, so
// that scripts written for send_gearman keep working.
const exitUnknown = 3

// sendFlags are the options of `gearbridge send` beyond the global ones.
type sendFlags struct {
	dupservers  []string
	host        string
	service     string
	message     string
	returnCode  string
	resultQueue string
	timeout     string
	delimiter   string
	active      bool
	startTime   string
	finishTime  string
	latency     string
	debug       int
	version     bool
	retries     int
	retryEvery  float64

	multi         bool
	spool         string
	noSpool       bool
	stateDir      string
	spoolMaxBytes int64
	spoolMaxAge   time.Duration
	batchSize     int
	daemon        bool
	socket        string
	drainInterval time.Duration
	renewInterval time.Duration
	metricsListen string
}

// defaultStateDir is where the sender keeps its spool and socket:
// /var/lib/gearbridge for root (the packaged daemon), otherwise the XDG
// state directory ($XDG_STATE_HOME or ~/.local/state) so that a plain user
// running send from cron needs no privileges.
func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/gearbridge"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "gearbridge")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "gearbridge")
	}
	return filepath.Join(os.TempDir(), "gearbridge-"+strconv.Itoa(os.Geteuid()))
}

func newSendCmd(s streams, g *globals) *cobra.Command {
	var f sendFlags
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Send passive results (send_gearman compatible)",
		Long: `Send passive check results, as classic send_gearman and send_multi do.

With --bridge (and --tls-ca, --tls-cert, --tls-key) results go over mutual-TLS
gRPC to the bridge; with --server they are submitted straight to gearmand,
encrypted with --key/--keyfile. Encryption is on unless --encryption=no, so
without a key send refuses to run (exit 3) rather than send results in clear
that an encrypting core drops. With --multi (send_multi) it is on exactly when
a key is given, as classic send_multi.

Input modes (as send_gearman):
  --host and --message       one result, stdin is not read
  --host without --message   stdin (until EOF, at most --timeout seconds) is the output
  no --host                  one result per stdin line:
                               host<D>service<D>rc<D>output  or  host<D>rc<D>output
  --multi --host             check_multi XML on stdin, one result per child (send_multi)

Results that cannot be delivered are written durably to the spool (default
<state-dir>/spool for a one-shot --bridge run and for every --daemon; a
one-shot --server run spools only with --spool) and the command exits 0
saying so. A one-shot run creates the spool directory only when it has to
spool something. The next run delivers the spool
first, in order; --daemon delivers it continuously and also takes lines on
a Unix socket (--socket) and on stdin. A full spool is refused (exit 3).

Exit codes follow send_gearman: 0 success (delivered or spooled), 3 (UNKNOWN)
for usage errors, unreachable receivers without spool, refused results and
stdin timeouts.`,
		Args: cobra.NoArgs,
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		fmt.Fprintf(s.out, "send_gearman UNKNOWN: %v\n", err)
		return pluginExit(exitUnknown)
	})
	fl := cmd.Flags()
	fl.StringSliceVar(&f.dupservers, "dupserver", nil, "also send a copy of every result to these gearmand `HOST[:PORT]` (Gearman mode)")
	fl.StringVar(&f.host, "host", "", "host name of the result")
	fl.StringVar(&f.service, "service", "", "service description (empty: host result)")
	fl.StringVarP(&f.message, "message", "m", "", "plugin output")
	fl.VarP(classicNumber(&f.returnCode, "0", "int"), "returncode", "r", "return code 0..3")
	fl.StringVar(&f.resultQueue, "result_queue", "check_results", "result queue (Gearman mode)")
	fl.VarP(classicNumber(&f.timeout, "10", "int"), "timeout", "t", "seconds to wait for stdin and for gearmand/bridge")
	fl.StringVarP(&f.delimiter, "delimiter", "d", "\t", "field separator characters of stdin lines")
	fl.BoolVar(&f.active, "active", false, "send an active result (type=active)")
	fl.Var(classicNumber(&f.startTime, "", "float"), "starttime", "start time (unix seconds; default now)")
	fl.Var(classicNumber(&f.finishTime, "", "float"), "finishtime", "finish time (unix seconds; default now)")
	fl.Var(classicNumber(&f.latency, "", "float"), "latency", "latency in seconds")
	fl.IntVar(&f.debug, "debug", 0, "classic debug level (>0 logs at debug level)")
	fl.BoolVarP(&f.version, "version", "V", false, "print the version and exit")
	fl.IntVar(&f.retries, "retries", 0, "Gearman mode: try a failed submit this many more times (with --bridge the spool keeps what fails)")
	fl.Float64Var(&f.retryEvery, "retry-interval", 1, "Gearman mode: seconds between --retries")
	fl.BoolVar(&f.multi, "multi", false, "send_multi mode: read check_multi XML from stdin")
	fl.StringVar(&f.spool, "spool", "", "spool `DIR` for undeliverable results (default <state-dir>/spool with --bridge or --daemon)")
	fl.BoolVar(&f.noSpool, "no-spool", false, "never spool; fail when the receiver is unreachable")
	fl.StringVar(&f.stateDir, "state-dir", defaultStateDir(), "state `DIR`: spool, socket, and the certificate from `send enroll` (renewed automatically)")
	fl.Int64Var(&f.spoolMaxBytes, "spool-max-bytes", sender.DefaultSpoolMaxBytes, "spool size limit; when full, results are refused")
	fl.DurationVar(&f.spoolMaxAge, "spool-max-age", sender.DefaultSpoolMaxAge, "older spooled results are moved to <spool>/dead/ (never deleted)")
	fl.IntVar(&f.batchSize, "batch-size", sender.DefaultBatchSize, "results per gRPC call")
	fl.BoolVar(&f.daemon, "daemon", false, "run continuously: deliver the spool, take lines on --socket and stdin")
	fl.StringVar(&f.socket, "socket", "", "Unix socket `PATH` of --daemon (default <state-dir>/send.sock)")
	fl.DurationVar(&f.drainInterval, "drain-interval", 5*time.Second, "--daemon: pause between spool delivery attempts")
	fl.DurationVar(&f.renewInterval, "renew-check-interval", enroll.DefaultRenewInterval, "--daemon with an enrolled --state-dir: how often the certificate's remaining lifetime is checked")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", "--daemon: serve Prometheus metrics on `ADDR`")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		prog := "send_gearman"
		if f.multi {
			prog = "send_multi"
		}
		if f.version {
			_, err := fmt.Fprintf(s.out, "%s: %s\n", prog, buildinfo.Get())
			return err
		}
		err := runSend(cmd, s, g, &f)
		if err == nil {
			return nil
		}
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		// send_gearman prints its error on stdout, once; the exit code
		// says the rest.
		fmt.Fprintf(s.out, "%s UNKNOWN: %v\n", prog, err)
		return pluginExit(exitUnknown)
	}
	cmd.AddCommand(newEnrollCmd(s, g, certs.RoleSender))
	return cmd
}

// classicValue is a send flag whose value the classic parser checks (see
// classicFlags): it keeps the text as given, and names its classic type
// so that the help shows a number where send_gearman takes one.
type classicValue struct {
	p   *string
	typ string
}

func classicNumber(p *string, def, typ string) *classicValue {
	*p = def
	return &classicValue{p: p, typ: typ}
}

func (v *classicValue) String() string     { return *v.p }
func (v *classicValue) Set(s string) error { *v.p = s; return nil }
func (v *classicValue) Type() string       { return v.typ }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// sendSetup is the resolved configuration of one send run.
type sendSetup struct {
	cfg     classicconf.Config
	key     string
	timeout time.Duration
	start   time.Time
	finish  time.Time
	latency time.Duration
	message bool // a message was given (mode 1)
	// resultQueueSet: --result_queue was given on the command line.
	resultQueueSet bool
	// renewal is set when the certificate is the enrolled one of the
	// state directory, which the sender renews itself.
	renewal *sendRenewal
	// tls is the client certificate in --bridge mode, watched for expiry
	// by the daemon.
	tls *certs.Reloader
}

// sendRenewal renews an enrolled sender's certificate over its connection
// to the bridge when less than a third of the lifetime is left. A one-shot
// run checks after the bridge took its results, so a sender run from cron
// renews as long as it runs at least once per third of the lifetime;
// `send --daemon` checks every --renew-check-interval.
type sendRenewal struct {
	renewer *enroll.Renewer
	conn    grpc.ClientConnInterface
	log     *slog.Logger
}

// check renews if due. A failure is logged, not returned: the results are
// delivered already, and the next run tries again.
func (r *sendRenewal) check(ctx context.Context) {
	if r == nil {
		return
	}
	if _, err := r.renewer.Check(ctx, r.conn); err != nil {
		r.log.Warn("certificate renewal failed; the next run tries again", "err", err)
	}
}

// run checks until ctx ends.
func (r *sendRenewal) run(ctx context.Context) {
	if r != nil {
		r.renewer.Run(ctx, r.conn)
	}
}

// classicFlags lists the send flags whose values go through the classic
// parser, so that they are checked the same way as in a config file (the
// flag names are the classic option names).
func classicFlags() []string {
	return []string{
		"server", "dupserver", "encryption", "key", "keyfile", "result_queue",
		"timeout", "returncode", "active", "starttime", "finishtime", "latency",
	}
}

func resolveSend(cmd *cobra.Command, g *globals, f *sendFlags) (*sendSetup, error) {
	cfg := classicconf.Defaults()
	if g.configFile != "" {
		var err error
		if cfg, err = classicconf.ParseFile(g.configFile); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	flags := cmd.Flags()
	for _, name := range classicFlags() {
		fl := flags.Lookup(name)
		if fl == nil || !fl.Changed {
			continue
		}
		val := fl.Value.String()
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			val = strings.Join(sv.GetSlice(), ",")
		}
		if err := cfg.Set(name, val); err != nil {
			return nil, fmt.Errorf("--%s: %w", name, err)
		}
	}
	// Taken verbatim: the classic parser trims values, which would change
	// a message or eat a TAB delimiter.
	if flags.Changed("host") {
		cfg.Host = f.host
	}
	if flags.Changed("service") {
		cfg.Service = f.service
	}
	st := &sendSetup{message: cfg.Message != "", resultQueueSet: flags.Changed("result_queue")}
	if flags.Changed("message") {
		cfg.Message, st.message = f.message, true
	}
	if flags.Changed("delimiter") {
		if f.delimiter == "" {
			return nil, errors.New("--delimiter: empty")
		}
		cfg.Delimiter = f.delimiter
	}
	if f.multi {
		// Classic send_multi never encrypted by default; with a key given
		// gearbridge encrypts (the receiver surely has it).
		cfg.ApplySendGearmanDefaults()
	}
	// send keeps encryption on unless --encryption=no says otherwise, and
	// refuses to run without a key (sendTransport): a result sent in clear
	// to a core that expects encrypted ones is dropped there in silence.
	st.cfg = cfg
	key, err := cfg.ResolveKey(os.ReadFile)
	if err != nil {
		return nil, err
	}
	st.key = key
	st.timeout = time.Duration(cfg.Timeout) * time.Second
	if st.timeout <= 0 {
		st.timeout = 10 * time.Second
	}
	now := time.Now()
	st.start, st.finish = unixTime(cfg.StartTime, now), unixTime(cfg.FinishTime, now)
	st.latency = time.Duration(cfg.Latency * float64(time.Second))
	return st, nil
}

func unixTime(sec float64, def time.Time) time.Time {
	if sec <= 0 {
		return def
	}
	whole, frac := math.Modf(sec)
	return time.Unix(int64(whole), int64(math.Round(frac*1e6))*1000)
}

func runSend(cmd *cobra.Command, s streams, g *globals, f *sendFlags) error {
	st, err := resolveSend(cmd, g, f)
	if err != nil {
		return err
	}
	level := g.logLevel
	if !cmd.Flags().Changed("log-level") && !f.daemon {
		// A one-shot send runs from scripts and cron: only problems go to
		// stderr unless asked otherwise.
		level = "warn"
	}
	if f.debug > 0 {
		level = "debug"
	}
	log, err := (&globals{logLevel: level, logFormat: g.logFormat}).logger(s.err)
	if err != nil {
		return err
	}
	// The Gearman client warns about each failed connect; a one-shot run
	// without --retries reports the outcome itself, once, so the client
	// only logs errors unless a level was asked for. With --retries each
	// retry is still said, as progress.
	transportLog := log
	if level == "warn" && f.retries == 0 {
		if transportLog, err = (&globals{logLevel: "error", logFormat: g.logFormat}).logger(s.err); err != nil {
			return err
		}
	}
	for _, w := range st.cfg.Warnings {
		log.Warn("config", "warning", w)
	}
	ctx := cmd.Context()
	reg := processRegistry()
	metrics := sender.NewMetrics(reg)

	transport, spoolDefault, err := sendTransport(g, f, st, log, transportLog, metrics)
	if err != nil {
		return err
	}
	defer transport.Close()

	spoolDir := f.spool
	if spoolDir == "" && (spoolDefault || f.daemon) {
		spoolDir = filepath.Join(f.stateDir, "spool")
	}
	if f.noSpool {
		spoolDir = ""
	}
	var spool *sender.Spool
	if spoolDir != "" {
		if spool, err = sender.OpenSpool(sender.SpoolConfig{
			Dir: spoolDir, MaxBytes: f.spoolMaxBytes, MaxAge: f.spoolMaxAge, DrainBatch: f.batchSize,
			Logger: log, Metrics: metrics,
			// A one-shot run leaves no trace unless it has to spool.
			Lazy: !f.daemon,
		}); err != nil {
			return err
		}
		reg.MustRegister(spool.Collector())
	}
	snd, err := sender.New(sender.Config{Transport: transport, Spool: spool, Logger: log, Metrics: metrics})
	if err != nil {
		return err
	}
	complete := func(r sender.Result) sender.Result {
		r.Start, r.Finish, r.Latency, r.Active = st.start, st.finish, st.latency, st.cfg.Active
		return r
	}

	if f.daemon {
		if spool == nil {
			return errors.New("--daemon needs a spool (--no-spool is not possible)")
		}
		if gt, ok := transport.(*sender.GearmanTransport); ok {
			// Straight to gearmand: its reachability, as the bridge
			// exports it.
			stop, err := gt.StartProbe(ctx, reg, 0)
			if err != nil {
				return err
			}
			defer stop()
		}
		return runSendDaemon(ctx, s, f, st, snd, log, reg)
	}

	results, lineErrs, err := readSendInput(ctx, s.in, f, st, complete)
	if err != nil {
		return err
	}
	rep, submitErr := snd.Submit(ctx, results)
	if rep.Accepted > 0 {
		st.renewal.check(ctx)
	}
	return reportSend(s.out, f, st, spool, results, lineErrs, rep, submitErr)
}

// sendTransport builds the gRPC or Gearman transport; spoolDefault says
// whether the spool is on by default (gRPC). gmLog is the Gearman
// client's logger.
func sendTransport(g *globals, f *sendFlags, st *sendSetup, log, gmLog *slog.Logger, metrics *sender.Metrics) (sender.Transport, bool, error) {
	if g.bridge != "" {
		if st.resultQueueSet {
			return nil, false, errors.New("--result_queue applies to --server (Gearman) mode; with --bridge the bridge's --result-queue decides")
		}
		if len(f.dupservers) > 0 {
			return nil, false, errors.New("--dupserver applies to --server (Gearman) mode; with --bridge the bridge's configuration decides about copies")
		}
		var rl *certs.Reloader
		var err error
		enrolled := false
		switch crt, _, _ := enroll.Paths(f.stateDir); {
		case g.tlsCA != "" && g.tlsCert != "" && g.tlsKey != "":
			rl, err = certs.NewReloader(g.tlsCert, g.tlsKey, g.tlsCA)
		case g.tlsCA == "" && g.tlsCert == "" && g.tlsKey == "" && fileExists(crt):
			// Enrolled with `gearbridge send enroll`: the state directory
			// holds the certificate, and the sender renews it.
			rl, err = enroll.Open(f.stateDir, "")
			enrolled = true
		default:
			return nil, false, errors.New("--bridge needs --tls-ca, --tls-cert and --tls-key, or a --state-dir enrolled with `gearbridge send enroll`")
		}
		if err != nil {
			return nil, false, fmt.Errorf("TLS: %w", err)
		}
		st.tls = rl
		addr, err := bridgeAddr(g.bridge)
		if err != nil {
			return nil, false, err
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(rl.ClientConfig(""))))
		if err != nil {
			return nil, false, fmt.Errorf("bridge %s: %w", addr, err)
		}
		if enrolled {
			st.renewal = &sendRenewal{renewer: enroll.NewRenewer(f.stateDir, rl, log, f.renewInterval), conn: conn, log: log}
		}
		return sender.NewGRPCTransport(conn, sender.GRPCConfig{BatchSize: f.batchSize, Timeout: st.timeout}), true, nil
	}
	if f.retries < 0 || f.retryEvery < 0 {
		return nil, false, fmt.Errorf("--retries %d / --retry-interval %g: must not be negative", f.retries, f.retryEvery)
	}
	servers, err := normalizeServers(st.cfg.Servers)
	if err != nil {
		return nil, false, err
	}
	if len(servers) == 0 {
		return nil, false, errors.New("no server given (--server HOST[:PORT] for gearmand, or --bridge)")
	}
	dups, err := normalizeServers(st.cfg.DupServers)
	if err != nil {
		return nil, false, err
	}
	if st.cfg.Encryption && st.key == "" {
		return nil, false, errors.New("encryption is on but no key is given (--key, --keyfile or --encryption=no)")
	}
	codec, err := modgearman.NewCodec(st.key, st.cfg.Encryption)
	if err != nil {
		return nil, false, err
	}
	t, err := sender.NewGearmanTransport(sender.GearmanConfig{
		Servers: servers, DupServers: dups, ResultQueue: st.cfg.ResultQueue, Codec: codec,
		Timeout: st.timeout, Retries: f.retries, RetryInterval: time.Duration(f.retryEvery * float64(time.Second)),
		Metrics: metrics, Logger: gmLog,
	})
	return t, false, err
}

// readSendInput builds the results of one run from flags and stdin.
func readSendInput(ctx context.Context, in io.Reader, f *sendFlags, st *sendSetup, complete func(sender.Result) sender.Result) ([]sender.Result, []string, error) {
	cfg := st.cfg
	switch {
	case f.multi:
		if cfg.Host == "" {
			return nil, nil, errors.New("--multi needs --host")
		}
		data, err := readAllTimeout(ctx, in, st.timeout)
		if err != nil {
			return nil, nil, err
		}
		now := time.Now()
		results, err := sender.ParseMulti(data, cfg.Host, now)
		if err != nil {
			return nil, nil, err
		}
		for i := range results {
			results[i].Active = cfg.Active
		}
		return results, nil, nil
	case cfg.Host != "" && st.message:
		return []sender.Result{complete(sender.Result{Host: cfg.Host, Service: cfg.Service, ReturnCode: cfg.ReturnCode, Output: cfg.Message})}, nil, nil
	case cfg.Host != "":
		data, err := readAllTimeout(ctx, in, st.timeout)
		if err != nil {
			return nil, nil, err
		}
		out := strings.TrimRight(string(data), "\r\n")
		return []sender.Result{complete(sender.Result{Host: cfg.Host, Service: cfg.Service, ReturnCode: cfg.ReturnCode, Output: out})}, nil, nil
	}
	data, err := readAllTimeout(ctx, in, st.timeout)
	if err != nil {
		return nil, nil, err
	}
	var results []sender.Result
	var lineErrs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimRight(line, "\r") == "" {
			continue
		}
		r, err := sender.ParseLine(line, cfg.Delimiter)
		if err != nil {
			lineErrs = append(lineErrs, fmt.Sprintf("line %d: %v", n, err))
			continue
		}
		results = append(results, complete(r))
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read stdin: %w", err)
	}
	return results, lineErrs, nil
}

// readAllTimeout reads r to EOF, giving up after timeout with
// send_gearman's message. A reader that never returns keeps one goroutine
// blocked until the process exits (stdin cannot be interrupted portably).
func readAllTimeout(ctx context.Context, r io.Reader, timeout time.Duration) ([]byte, error) {
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		b, err := io.ReadAll(r)
		ch <- res{b, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case x := <-ch:
		if x.err != nil {
			return nil, fmt.Errorf("read stdin: %w", x.err)
		}
		return x.b, nil
	case <-t.C:
		return nil, fmt.Errorf("got no input after %d seconds! Either send plugin output to stdin or use --message=...", int(timeout.Seconds()))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// reportSend prints the outcome in send_gearman's words and picks the exit
// code.
func reportSend(out io.Writer, f *sendFlags, st *sendSetup, spool *sender.Spool, results []sender.Result, lineErrs []string, rep sender.Report, submitErr error) error {
	var problems []string
	problems = append(problems, lineErrs...)
	for _, r := range rep.Refused {
		problems = append(problems, fmt.Sprintf("result for %s refused: %s", describe(r.Result), r.Reason))
	}
	if rep.FromSpool.Delivered > 0 {
		fmt.Fprintf(out, "%d spooled result(s) delivered first.\n", rep.FromSpool.Delivered)
	}
	if rep.Spooled > 0 {
		fmt.Fprintf(out, "%d result(s) spooled in %s (receiver unreachable); they will be delivered by the next run or by gearbridge send --daemon.\n", rep.Spooled, spool.Dir())
	}
	// The classic sentences count what the receiver took; what waits in
	// the spool is said apart, so that a script reading them is not told
	// that results reached the core when they did not.
	later := ""
	if rep.Spooled > 0 {
		later = fmt.Sprintf(", %d spooled for later delivery", rep.Spooled)
	}
	switch {
	case f.multi:
		if rep.Accepted+rep.Spooled > 0 && submitErr == nil && len(problems) == 0 {
			fmt.Fprintf(out, "send_multi OK: %d check_multi child check(s) submitted%s\n", rep.Accepted, later)
		}
	case st.cfg.Host == "":
		fmt.Fprintf(out, "%d data packet(s) sent to host successfully%s.\n", rep.Accepted, later)
	}
	if submitErr != nil {
		problems = append(problems, "failed to send result! "+submitErr.Error())
	}
	if len(problems) == 0 {
		if f.multi && len(results) == 0 {
			return sender.ErrMultiNoChildren
		}
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

func describe(r sender.Result) string {
	if r.Service == "" {
		return r.Host
	}
	return r.Host + "/" + r.Service
}

// runSendDaemon runs `send --daemon` until ctx ends.
func runSendDaemon(ctx context.Context, s streams, f *sendFlags, st *sendSetup, snd *sender.Sender, log *slog.Logger, reg *prometheus.Registry) error {
	socket := f.socket
	if socket == "" {
		socket = filepath.Join(f.stateDir, "send.sock")
	}
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return fmt.Errorf("socket dir: %w", err)
	}
	ready := &readiness{}
	if f.metricsListen != "" {
		stop, err := serveMetrics(f.metricsListen, reg, ready)
		if err != nil {
			return err
		}
		defer stop()
	}
	if st.tls != nil {
		defer certwatch.Start(ctx, certwatch.Reloaded(st.tls), log, reg)()
	}
	d, err := sender.NewDaemon(sender.DaemonConfig{
		Sender: snd, Socket: socket, Stdin: s.in, Delimiter: st.cfg.Delimiter,
		Complete: func(r sender.Result) sender.Result {
			now := time.Now()
			r.Start, r.Finish, r.Latency, r.Active = now, now, st.latency, st.cfg.Active
			return r
		},
		DrainInterval: f.drainInterval, BatchSize: f.batchSize, Logger: log,
	})
	if err != nil {
		return err
	}
	// Ready once its socket takes results; delivery problems show in the
	// spool gauges, not here, since results are safe in the spool.
	ready.set(func() error { return nil })
	log.Info("send daemon started", "socket", socket)
	renewCtx, stopRenewal := context.WithCancel(ctx)
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		st.renewal.run(renewCtx)
	}()
	err = d.Run(ctx)
	stopRenewal()
	<-renewDone
	log.Info("send daemon stopped")
	return err
}

// newBenchSendCmd is `gearbridge bench send`.
func newBenchSendCmd(s streams, g *globals) *cobra.Command {
	o := sendbench.Options{Results: 20000, BatchSize: 1000, Parallel: 4}
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Passive results/s over gRPC batches through a bridge and over direct Gearman",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, log, err := benchTarget(s, g)
			if err != nil {
				return err
			}
			o.Server, o.Logger = server, log
			if err := o.Validate(); err != nil {
				return usageError(err)
			}
			return sendbench.Run(cmd.Context(), o, s.out)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Results, "results", o.Results, "results per phase")
	f.IntVar(&o.BatchSize, "batch-size", o.BatchSize, "results per SubmitResults call")
	f.IntVar(&o.Parallel, "parallel", o.Parallel, "gRPC batches in flight (direct Gearman: 16x as many submits)")
	f.StringVar(&o.Bin, "bin", "", "gearbridge binary that runs the bridge (default: this one)")
	return cmd
}
