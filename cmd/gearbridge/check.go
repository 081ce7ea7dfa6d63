package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/buildinfo"
)

// Monitoring plugin states.
const (
	stateOK = iota
	stateWarning
	stateCritical
	stateUnknown
)

var stateNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// pluginExit ends a plugin-style command with a state as exit code; the
// text is already on stdout, so nothing more is printed.
type pluginExit int

func (p pluginExit) Error() string { return "" }

// checkOptions are check_gearman's flags (wire contract §6.3).
type checkOptions struct {
	hosts        []string
	timeout      int // seconds, as check_gearman's -t
	jobsWarn     int
	jobsCrit     int
	workersWarn  int
	workersCrit  int
	queue        string
	noWorkerCrit bool
	send         string
	expect       string
	background   bool
	unique       string
	verbose      int // -v: debug lines on stderr, -vv: trace lines too
	version      bool
	// -w and -c: job counts for the queue checks, times left for the
	// certificate checks.
	warn, crit   threshold
	cert         string // --cert FILE
	stateFile    string // --state-file FILE (--bridge)
	output       string // --output text|json
	certOfServer bool   // --cert-of-server
}

// checkBackgroundReply is what check_gearman prints for a background job
// that gearmand accepted, misspelt as in the classic tool so that scripts
// matching its output keep working.
const checkBackgroundReply = "sending background job succeded"

func newCheckCmd(s streams, g *globals) *cobra.Command {
	o := checkOptions{warn: threshold{raw: "10"}, crit: threshold{raw: "100"}}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Monitor gearmand queues and workers (like check_gearman), and certificate expiry",
		Long: `Monitor gearmand like check_gearman: without -s it checks the queues of one
server against thresholds (0 disables a threshold); with -s and -q it sends a
test job to a queue (e.g. worker_<id> or check_results) and checks the answer.

Certificates: --cert FILE checks when the certificate in FILE (the first one,
for a chain) expires; --cert-of-server --bridge HOST[:PORT] checks the
certificate a running bridge serves (default port 4731), and with --tls-ca
also verifies it as a worker would. -w and -c are then the time left for
WARNING and CRITICAL, in days (30d), hours (12h) or minutes (90m); a plain
number is days. The defaults are 30d and 7d. An expired certificate is
CRITICAL, an unreadable one UNKNOWN:

  gearbridge check --cert /etc/gearbridge/site-a.crt -w 30d -c 7d
  check_gearman OK - certificate site-a (worker) expires in 84 days (2027-02-26 10:00 UTC)|expiry_days=84;30;7

Bridge: --bridge HOST[:PORT] with an admin certificate (--tls-ca, --tls-cert,
--tls-key) checks a running bridge through its admin API. CRITICAL when jobs
failed to decode since the last run (the NEB and the bridge do not share the
key), when no gearmand is reachable (WARNING when only some are), when invalid
jobs plus refused results since the last run reach -c (WARNING: -w), when one
identity holds -C sessions (WARNING: -W), and with -x when no worker session
is attached. The totals of the last run are kept in --state-file:

  gearbridge check --bridge bridge.example.com --tls-ca ca.crt --tls-cert admin.crt --tls-key admin.key
  check_gearman OK - bridge bridge.example.com:4731 v1.2.0: 3 session(s) of 2 identities, gearmand 1/1 reachable, no job failed to decode since the last run.|sessions=3;;;0 ...

--output json prints the outcome as one JSON object (state, exit_code,
output, perfdata, and for --bridge the details).

Exit codes follow the monitoring-plugin convention: 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN (also for usage errors and -V).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return checkUsage(s.out, cmd, fmt.Sprintf("unexpected argument %q", args[0]))
			}
			return nil
		},
	}
	var bridgeReport *bridgeCheckReport
	check := func(cmd *cobra.Command, s streams) error {
		if o.version {
			// check_gearman prints its version and exits UNKNOWN.
			fmt.Fprintf(s.out, "check_gearman: version %s running on %s\n\n", buildinfo.Get().Version, buildinfo.Get())
			return pluginExit(stateUnknown)
		}
		if o.cert != "" || o.certOfServer {
			return runCertCheck(cmd, s.out, g, o)
		}
		var err error
		if o.jobsWarn, err = o.warn.count("-w"); err != nil {
			return checkUsage(s.out, cmd, err.Error())
		}
		if o.jobsCrit, err = o.crit.count("-c"); err != nil {
			return checkUsage(s.out, cmd, err.Error())
		}
		if g.bridge != "" {
			var state int
			state, bridgeReport, err = runBridgeCheck(cmd, s.out, g, o)
			if err != nil || state == stateOK {
				return err
			}
			return pluginExit(state)
		}
		hosts := append(append([]string(nil), o.hosts...), g.servers...)
		servers, err := normalizeServers(hosts)
		if err != nil {
			return checkUsage(s.out, cmd, err.Error())
		}
		if len(servers) == 0 {
			return checkUsage(s.out, cmd, "no hostname given")
		}
		if o.send != "" && o.queue == "" {
			return checkUsage(s.out, cmd, "need queue (-q) when sending job")
		}
		if o.timeout <= 0 {
			return checkUsage(s.out, cmd, "timeout (-t) must be at least 1 second")
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(o.timeout)*time.Second)
		defer cancel()
		var state int
		if o.send != "" {
			state = checkWorker(ctx, s.out, s.err, servers, o)
		} else {
			state = checkServer(ctx, s.out, s.err, servers[len(servers)-1], o)
		}
		if state == stateOK {
			return nil
		}
		return pluginExit(state)
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		switch o.output {
		case "text":
			return check(cmd, s)
		case "json":
			var buf bytes.Buffer
			err := check(cmd, streams{in: s.in, out: &buf, err: s.err})
			return checkJSON(s.out, buf.String(), err, bridgeReport)
		}
		return checkUsage(s.out, cmd, fmt.Sprintf("--output %q: want text or json", o.output))
	}
	// Like check_gearman, every usage error is UNKNOWN with the usage on
	// stdout, where a monitoring core shows it.
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return checkUsage(s.out, cmd, err.Error())
	})
	f := cmd.Flags()
	f.StringSliceVarP(&o.hosts, "host", "H", nil, "gearmand `HOST[:PORT]` (repeatable; server mode uses the last)")
	f.IntVarP(&o.timeout, "timeout", "t", 10, "give up after this many seconds (CRITICAL)")
	f.VarP(&o.warn, "jobs-warning", "w", "waiting jobs for WARNING; with --bridge invalid jobs plus refused results since the last run; with --cert or --cert-of-server the time left for WARNING (30d there)")
	f.VarP(&o.crit, "jobs-critical", "c", "waiting jobs for CRITICAL; with --bridge invalid jobs plus refused results since the last run; with --cert or --cert-of-server the time left for CRITICAL (7d there)")
	f.IntVarP(&o.workersWarn, "workers-warning", "W", 25, "workers for WARNING; with --bridge the sessions of one identity")
	f.IntVarP(&o.workersCrit, "workers-critical", "C", 50, "workers for CRITICAL; with --bridge the sessions of one identity")
	f.StringVarP(&o.queue, "queue", "q", "", "only this queue (server mode), or the queue to send to (-s)")
	f.BoolVarP(&o.noWorkerCrit, "no-worker-critical", "x", false, "CRITICAL when the queue has no worker; with --bridge when no worker session is attached")
	f.StringVarP(&o.send, "send", "s", "", "send this text as a test job to -q")
	f.StringVarP(&o.expect, "expect", "e", "", "with -s: the answer must contain this text")
	f.BoolVarP(&o.background, "background", "a", false, "with -s: send as a background job (ignores -e)")
	f.StringVarP(&o.unique, "unique", "u", "check", "with -s: unique id of the test job")
	f.CountVarP(&o.verbose, "verbose", "v", "write what happens to stderr (-vv: more)")
	f.BoolVarP(&o.version, "version", "V", false, "print the version and exit UNKNOWN")
	f.StringVar(&o.cert, "cert", "", "check when the certificate in `FILE` expires")
	f.StringVar(&o.stateFile, "state-file", "", "with --bridge: `FILE` keeping the bridge's totals between runs (default <state-dir>/check-bridge-<addr>.json)")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text (the plugin line) or json")
	f.BoolVar(&o.certOfServer, "cert-of-server", false, "check when the certificate the bridge at --bridge HOST[:PORT] serves expires (verified with --tls-ca if given)")
	return cmd
}

// queueFlags are the flags of the queue and worker checks, which the
// certificate checks do not take.
var queueFlags = []string{"host", "server", "workers-warning", "workers-critical", "queue", "no-worker-critical",
	"send", "expect", "background", "unique"}

// runCertCheck is check --cert FILE or --cert-of-server --bridge ADDR.
func runCertCheck(cmd *cobra.Command, out io.Writer, g *globals, o checkOptions) error {
	fs := cmd.Flags()
	var addr string
	switch {
	case o.cert != "" && o.certOfServer:
		return checkUsage(out, cmd, "--cert FILE and --cert-of-server exclude each other")
	case o.certOfServer && g.bridge == "":
		return checkUsage(out, cmd, "--cert-of-server needs --bridge HOST[:PORT]")
	case o.certOfServer:
		a, err := bridgeAddr(g.bridge)
		if err != nil {
			return checkUsage(out, cmd, err.Error())
		}
		addr = a
	}
	for _, name := range queueFlags {
		if fs.Changed(name) {
			return checkUsage(out, cmd, "--cert and --cert-of-server take only -w, -c, -t and --tls-ca")
		}
	}
	if !fs.Changed("jobs-warning") {
		o.warn.raw = defaultCertWarn
	}
	if !fs.Changed("jobs-critical") {
		o.crit.raw = defaultCertCrit
	}
	warn, err := o.warn.timeLeft("-w")
	if err != nil {
		return checkUsage(out, cmd, err.Error())
	}
	crit, err := o.crit.timeLeft("-c")
	if err != nil {
		return checkUsage(out, cmd, err.Error())
	}
	if crit > warn {
		return checkUsage(out, cmd, fmt.Sprintf("-c (%s) must not be more than -w (%s)", o.crit.raw, o.warn.raw))
	}
	if o.timeout <= 0 {
		return checkUsage(out, cmd, "timeout (-t) must be at least 1 second")
	}
	cc := certCheck{warn: warn, crit: crit}
	var state int
	if addr == "" {
		state = checkCertFile(out, o.cert, cc, time.Now())
	} else {
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(o.timeout)*time.Second)
		defer cancel()
		state = checkCertOfServer(ctx, out, addr, g.tlsCA, cc, time.Now())
	}
	if state == stateOK {
		return nil
	}
	return pluginExit(state)
}

// bridgeOnlyExcluded are the flags of the queue and worker checks that
// the bridge check does not take.
var bridgeOnlyExcluded = []string{"host", "server", "queue", "send", "expect", "background", "unique"}

// runBridgeCheck is check --bridge ADDR with an admin certificate.
func runBridgeCheck(cmd *cobra.Command, out io.Writer, g *globals, o checkOptions) (int, *bridgeCheckReport, error) {
	for _, name := range bridgeOnlyExcluded {
		if cmd.Flags().Changed(name) {
			return 0, nil, checkUsage(out, cmd, "--bridge takes -w, -c, -W, -C, -x, -t, --state-file and the --tls-* flags (or --cert-of-server)")
		}
	}
	if o.timeout <= 0 {
		return 0, nil, checkUsage(out, cmd, "timeout (-t) must be at least 1 second")
	}
	admin, closeAdmin, err := dialAdmin(g)
	if err != nil {
		return 0, nil, checkUsage(out, cmd, err.Error()+", or --cert-of-server")
	}
	defer closeAdmin()
	addr, _ := bridgeAddr(g.bridge)
	stateFile := o.stateFile
	if stateFile == "" {
		stateFile = defaultBridgeStateFile(addr)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(o.timeout)*time.Second)
	defer cancel()
	state, rep := checkBridge(ctx, out, admin, addr, stateFile, o, time.Now())
	return state, rep, nil
}

// checkJSON prints the outcome of a check as one JSON object: the state,
// the exit code, the plugin line split at "|", and the bridge check's
// details.
func checkJSON(out io.Writer, text string, err error, bridge *bridgeCheckReport) error {
	code := stateOK
	var pe pluginExit
	switch {
	case errors.As(err, &pe):
		code = int(pe)
	case err != nil:
		return err
	}
	line, perf, _ := strings.Cut(strings.TrimRight(text, "\n"), "|")
	v := struct {
		State    string             `json:"state"`
		Code     int                `json:"exit_code"`
		Output   string             `json:"output"`
		Perfdata string             `json:"perfdata,omitempty"`
		Bridge   *bridgeCheckReport `json:"bridge,omitempty"`
	}{stateNames[min(code, stateUnknown)], code, strings.TrimSpace(line), strings.TrimSpace(perf), bridge}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if werr := enc.Encode(v); werr != nil {
		return werr
	}
	return err
}

// checkUsage prints a usage error the way check_gearman does ("Error - …",
// a blank line, the usage) and ends the command UNKNOWN.
func checkUsage(out io.Writer, cmd *cobra.Command, msg string) error {
	fmt.Fprintf(out, "Error - %s\n\n%s", msg, cmd.UsageString())
	return pluginExit(stateUnknown)
}

// checkTimeout is check_gearman's text when -t runs out, in either mode: it
// names the (last) server, and has no plugin name or state.
func checkTimeout(out io.Writer, server string) int {
	fmt.Fprintf(out, "timeout while waiting for %s\n", server)
	return stateCritical
}

// isTimeout reports whether err comes from the -t deadline, through the
// context or through a connection's deadline that was set from it.
func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

// checkServer applies the queue rules of check_gearman to one server's
// status.
func checkServer(ctx context.Context, out, errOut io.Writer, server string, o checkOptions) int {
	adm := gearman.NewAdmin(server, gearman.AdminOptions{})
	defer adm.Close()
	if o.verbose >= 2 {
		fmt.Fprintf(errOut, "sending 'status' and 'version' to %s\n", server)
	}
	st, err := adm.Status(ctx)
	var version string
	if err == nil {
		version, err = adm.Version(ctx)
	}
	if err != nil {
		if isTimeout(err) {
			return checkTimeout(out, server)
		}
		fmt.Fprintf(out, "check_gearman CRITICAL - %s\n", adminErrorText(server, err))
		return stateCritical
	}
	if o.verbose >= 1 {
		for i, q := range st {
			fmt.Fprintf(errOut, "%d: name:%-20s worker:%-5d waiting:%-5d running:%-5d\n", i+1, q.Name, q.Workers, q.Waiting(), q.Running)
		}
	}
	if o.verbose >= 2 {
		fmt.Fprintf(errOut, "extracted version: '%s'\n", version)
	}
	state, line := serverReport(st, version, o)
	fmt.Fprint(out, line)
	return state
}

// serverReport is check_gearman's line for a server's queues: the messages
// of the queues that break a rule, or the totals when none does, then "|"
// and the perfdata of the checked queues. Unlike the classic tool, the
// worst state of all queues wins, not the last queue's.
func serverReport(st []gearman.FunctionStatus, version string, o checkOptions) (int, string) {
	st = append([]gearman.FunctionStatus(nil), st...)
	sort.Slice(st, func(i, j int) bool { return st[i].Name < st[j].Name })
	state, running, waiting := stateOK, 0, 0
	var msgs, perf strings.Builder
	listed, found := false, false
	for _, q := range st {
		if q.Name == "dummy" && q.Total == 0 {
			continue
		}
		listed = true
		if o.queue != "" && q.Name != o.queue {
			continue
		}
		found = true
		w := q.Waiting()
		running += q.Running
		waiting += w
		s, msg := queueState(q, w, o)
		state = max(state, s)
		msgs.WriteString(msg)
		// Every queue's perfdata ends in a space, as in check_gearman.
		fmt.Fprintf(&perf, "'%s_waiting'=%d;%d;%d;0 '%s_running'=%d '%s_worker'=%d;%d;%d;0 ",
			q.Name, w, o.jobsWarn, o.jobsCrit, q.Name, q.Running, q.Name, q.Workers, o.workersWarn, o.workersCrit)
	}
	if o.queue != "" && !found {
		state = max(state, stateWarning)
		fmt.Fprintf(&msgs, "Queue %s not found", o.queue)
	}
	var b strings.Builder
	if state == stateOK {
		fmt.Fprintf(&b, "check_gearman OK - %d job%s running and %d job%s waiting. Version: %s",
			running, plural(running), waiting, plural(waiting), version)
	} else {
		fmt.Fprintf(&b, "check_gearman %s - ", stateNames[state])
	}
	b.WriteString(msgs.String())
	// check_gearman writes the "|" whenever the server has a queue at all,
	// even if none of them is checked.
	if listed {
		b.WriteString("|")
		b.WriteString(perf.String())
	}
	b.WriteString("\n")
	return state, b.String()
}

// queueState is the first matching rule of check_gearman for one queue. A
// message ends in ". " so that the next one, or the "|", follows a space.
func queueState(q gearman.FunctionStatus, waiting int, o checkOptions) (int, string) {
	switch {
	case waiting > 0 && q.Workers == 0:
		return stateCritical, fmt.Sprintf("Queue %s has %d job%s without any worker. ", q.Name, waiting, plural(waiting))
	case o.jobsCrit > 0 && waiting >= o.jobsCrit:
		return stateCritical, fmt.Sprintf("Queue %s has %d waiting job%s. ", q.Name, waiting, plural(waiting))
	case o.workersCrit > 0 && q.Workers >= o.workersCrit:
		return stateCritical, fmt.Sprintf("Queue %s has %d worker. ", q.Name, q.Workers)
	case o.noWorkerCrit && q.Workers == 0:
		return stateCritical, fmt.Sprintf("Queue %s has no worker. ", q.Name)
	case o.jobsWarn > 0 && waiting >= o.jobsWarn:
		return stateWarning, fmt.Sprintf("Queue %s has %d waiting job%s. ", q.Name, waiting, plural(waiting))
	case o.workersWarn > 0 && q.Workers >= o.workersWarn:
		return stateWarning, fmt.Sprintf("Queue %s has %d worker. ", q.Name, q.Workers)
	}
	return stateOK, ""
}

// plural is the "s" of "1 job" and "2 jobs".
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// adminErrorText words a failed status request like check_gearman does
// where it can: its texts for a failed name lookup or connect come from
// getaddrinfo and strerror.
func adminErrorText(server string, err error) string {
	host, port, _ := net.SplitHostPort(server)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return "Name or service not known"
		}
		return dnsErr.Err
	}
	var opErr *net.OpError
	var errno syscall.Errno
	if errors.As(err, &opErr) && opErr.Op == "dial" && errors.As(err, &errno) {
		return fmt.Sprintf("failed to connect to address %s and port %s: %s", host, port, upperFirst(errno.Error()))
	}
	return fmt.Sprintf("error reading from %s - %v", server, err)
}

// upperFirst turns Go's errno texts ("connection refused") into the C
// library's ("Connection refused").
func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// checkWorker sends the test job of check_gearman -s.
func checkWorker(ctx context.Context, out, errOut io.Writer, servers []string, o checkOptions) int {
	c := gearman.NewClient(servers, gearman.ClientOptions{WaitForReady: true})
	defer c.Close()
	var reply string
	var err error
	if o.background {
		if _, err = c.Submit(ctx, o.queue, o.unique, []byte(o.send), gearman.PriorityHigh, true); err == nil {
			reply = checkBackgroundReply
		}
	} else {
		var b []byte
		if b, err = c.Do(ctx, o.queue, o.unique, []byte(o.send), gearman.PriorityHigh); err == nil {
			reply = replyText(b)
		}
	}
	if o.verbose >= 1 {
		code := ""
		if err != nil {
			code = err.Error()
		}
		fmt.Fprintf(errOut, "code:   %s\nresult: %s\n", code, reply)
	}
	if err != nil {
		if isTimeout(err) {
			return checkTimeout(out, servers[len(servers)-1])
		}
		fmt.Fprintf(out, "check_gearman CRITICAL - job failed: %v\n", err)
		return stateCritical
	}
	state, text := workerReport(reply, o)
	fmt.Fprint(out, text)
	return state
}

// replyText is a worker's reply as C reads it: up to the first NUL. Classic
// workers send their whole 64 KiB reply buffer, and only the text before the
// first NUL was ever written; what follows is whatever the heap held.
func replyText(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// workerReport is check_gearman's output for a worker's reply: the -e
// verdict, or a reply "<digit>:<text>" printed as text with the digit as
// exit code (the NEB's check_results answer "0:OK - …"), or the reply as
// an OK.
func workerReport(reply string, o checkOptions) (int, string) {
	if !o.background && o.expect != "" {
		if strings.Contains(reply, o.expect) {
			return stateOK, fmt.Sprintf("check_gearman OK - send worker '%s' response: '%s'\n", o.send, reply)
		}
		return stateCritical, fmt.Sprintf("check_gearman CRITICAL - send worker: '%s' response: '%s', expected '%s'\n", o.send, reply, o.expect)
	}
	// The C tool takes any character before the colon as a number; only a
	// digit makes sense as an exit code.
	if len(reply) > 1 && reply[1] == ':' && reply[0] >= '0' && reply[0] <= '9' {
		return int(reply[0] - '0'), reply[2:] + "\n"
	}
	return stateOK, fmt.Sprintf("check_gearman OK - %s\n", reply)
}
