package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gearbridge/gearbridge/internal/logging"
)

// Exit codes. Only this package decides them.
const (
	exitOK      = 0
	exitFailure = 1
	// exitUsage is returned for bad flags, bad configuration and commands
	// that are not available yet.
	exitUsage = 2
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// streams are the standard files of one invocation, injected for tests.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// globals are the flags shared by every command, so that operators and
// scripts can rely on the same names everywhere.
type globals struct {
	servers    []string
	key        string
	keyFile    string
	encryption string
	bridge     string
	listen     string
	tlsCA      string
	tlsCert    string
	tlsKey     string
	configFile string
	identifier string
	logLevel   string
	logFormat  string
}

// logger builds the logger the flags ask for.
func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	log, err := logging.New(w, g.logLevel, g.logFormat)
	if err != nil {
		return nil, usageError(err)
	}
	return log, nil
}

// run executes one command line and returns the process exit code. argv0
// selects a compatibility personality: invoked as send_gearman, the binary
// behaves as `gearbridge send`, invoked as mod_gearman_worker as
// `gearbridge worker --transport=gearman`.
func run(ctx context.Context, argv0 string, args []string, in io.Reader, out, errOut io.Writer) int {
	switch filepath.Base(argv0) {
	case "send_gearman":
		args = append([]string{"send"}, args...)
	case "mod_gearman_worker":
		// The classic worker takes its jobs from gearmand.
		args = append([]string{"worker", "--transport=" + transportGearman}, args...)
	}
	s := streams{in: in, out: out, err: errOut}
	root := newRootCmd(s)
	args, err := classicWorkerArgs(root, args)
	if err == nil {
		root.SetArgs(args)
		root.SetIn(in)
		root.SetOut(out)
		root.SetErr(errOut)
		err = root.ExecuteContext(ctx)
	}
	if err == nil {
		return exitOK
	}
	var pe pluginExit
	if errors.As(err, &pe) {
		return int(pe) // a plugin-style command printed its state already
	}
	fmt.Fprintf(errOut, "gearbridge: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsageErr(err) {
		return exitUsage
	}
	return exitFailure
}

func newRootCmd(s streams) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "gearbridge",
		Short: "Mod-Gearman with a modern transport",
		Long: `gearbridge spreads the active checks of Naemon and Nagios across workers
through Gearman queues, compatible byte for byte with classic Mod-Gearman.
Remote workers and passive-result senders talk mutual-TLS gRPC to a bridge,
which translates to and from the Gearman queues.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	pf := root.PersistentFlags()
	pf.StringSliceVar(&g.servers, "server", nil, "gearmand `HOST[:PORT]` (repeatable or a comma list; default port 4730)")
	pf.StringVar(&g.key, "key", "", "classic Mod-Gearman payload key (first 32 bytes are used)")
	pf.StringVar(&g.keyFile, "keyfile", "", "read the payload key from the first line of `FILE`")
	pf.StringVar(&g.encryption, "encryption", "yes", "encrypt payloads with the key: yes|no")
	pf.StringVar(&g.bridge, "bridge", "", "bridge address `HOST:PORT`")
	pf.StringVar(&g.listen, "listen", "", "listen address `ADDR`")
	pf.StringVar(&g.tlsCA, "tls-ca", "", "CA certificate `FILE` that peers are verified against")
	pf.StringVar(&g.tlsCert, "tls-cert", "", "own certificate `FILE`")
	pf.StringVar(&g.tlsKey, "tls-key", "", "own private key `FILE`")
	pf.StringVar(&g.configFile, "config", "", "configuration `FILE`")
	pf.StringVar(&g.identifier, "identifier", "", "name of this instance (default: a remote worker's certificate identity, otherwise the host name)")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug|info|warn|error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text|json")

	root.AddCommand(
		newVersionCmd(s),
		newBenchCmd(s, g),
		newBridgeCmd(s, g),
		newWorkerCmd(s, g),
		newSendCmd(s, g),
		newCertsCmd(s),
		newTopCmd(s, g),
		newCheckCmd(s, g),
		newConfigCmd(s, g),
		newManCmd(s),
	)
	// One spelling per flag: the classic tools write result_queue, ours
	// result-queue; both work on every command.
	root.SetGlobalNormalizationFunc(dashedFlagName)
	enableCompletion(root)
	fitHelp(root)
	return root
}

// dashedFlagName makes "_" and "-" the same in flag names, so that every
// classic spelling (--result_queue, --job_timeout) reaches the flag of the
// same name (--result-queue, --job-timeout). The help shows the dashed one.
func dashedFlagName(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
}

// isUsageErr reports errors cobra returns for a bad command line.
func isUsageErr(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires ", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
