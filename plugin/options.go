package plugin

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Kind is the type of job a command belongs to. It only selects the text of
// timeout results.
type Kind int

const (
	// KindOther is any job that is not a host or service check (event
	// handlers, notifications). Its timeout text is
	// "(Check Timed Out On Worker: <id>)".
	KindOther Kind = iota
	// KindHost is a host check: "(Host Check Timed Out On Worker: <id>)".
	KindHost
	// KindService is a service check: "(Service Check Timed Out On Worker: <id>)".
	KindService
)

// KindOf is the kind of a job by its classic type= value ("host",
// "service", "eventhandler", "notification").
func KindOf(jobType string) Kind {
	switch jobType {
	case "host":
		return KindHost
	case "service":
		return KindService
	}
	return KindOther
}

// Defaults used by [DefaultOptions] and for zero fields of [Options].
const (
	// DefaultTimeout is the Mod-Gearman job_timeout default: jobs that carry
	// no timeout of their own get 60 seconds.
	DefaultTimeout = 60 * time.Second

	// DefaultTimeoutReturn is the classic timeout_return default,
	// CRITICAL, as the C worker and the shipped config files have it
	// (mod-gearman-worker-go uses 3, UNKNOWN).
	DefaultTimeoutReturn = 2

	// DefaultMaxOutput caps captured stdout plus stderr. Check results travel
	// as one Gearman job and are handed to the core as one string; 10 MiB is
	// far above any sane plugin output and still keeps a runaway plugin from
	// exhausting the worker's memory.
	DefaultMaxOutput = 10 << 20

	// DefaultKillGrace is the time between SIGTERM and SIGKILL, and the time
	// Run waits for output pipes held open by leftover processes. One second
	// is the interval the C worker used between its signals: long enough
	// for a plugin to remove temporary files and print partial output, short
	// enough that a timed-out check still reports promptly.
	DefaultKillGrace = time.Second

	// DefaultRestrictCommandCharacters are the characters a command may not
	// contain when [Options.RestrictPath] is set (the C worker's default for
	// restrict_command_characters).
	DefaultRestrictCommandCharacters = "$&();<>`\"'|"
)

// Options control how [Run] executes a plugin. Start from [DefaultOptions]:
// the zero value is usable, but its boolean and TimeoutReturn fields are
// zero too (timeouts would report OK), which is rarely wanted.
type Options struct {
	// Identifier names this worker in result texts ("(worker: <id>)").
	Identifier string

	// Timeout is how long the plugin may run before its process group is
	// killed. Zero means DefaultTimeout.
	Timeout time.Duration

	// TimeoutReturn is the return code (0..3) reported for timed-out plugins.
	TimeoutReturn int

	// Kind selects the timeout text.
	Kind Kind

	// MaxOutput caps the captured bytes of stdout and stderr together.
	// Zero means DefaultMaxOutput.
	MaxOutput int

	// ShowErrorOutput appends stderr to the output when the plugin's exit
	// code is not 0 (see the package documentation).
	ShowErrorOutput bool

	// Env holds extra "NAME=value" entries added to the worker's own
	// environment. NAME=value words in the command line override them.
	Env []string

	// KillGrace is the time between SIGTERM and SIGKILL. Zero means
	// DefaultKillGrace.
	KillGrace time.Duration

	// RestrictPath, when not empty, lists the only directories commands may
	// be started from. Entries must be absolute.
	RestrictPath []string

	// RestrictCommandCharacters are the characters forbidden in commands
	// when RestrictPath is set. Empty means
	// DefaultRestrictCommandCharacters: a restricted worker always forbids
	// some characters, since without them the path check is moot.
	RestrictCommandCharacters string

	// InternalCheckDummy answers check_dummy command lines without
	// starting a process (see [InternalDummy]).
	InternalCheckDummy bool

	// InternalNegate runs command lines of the form ".../negate [options]
	// /path/plugin ..." in process: the plugin runs as usual and negate's
	// state mapping is applied to its result (see the package
	// documentation).
	InternalNegate bool

	// WorkerNameInResult adds "(worker: <Identifier>)" to the output of
	// plugins that ran and exited with 0..3: WorkerNameOn puts it in front,
	// WorkerNamePrePerfdata before the first perfdata pipe sign (or at the
	// end). Empty or WorkerNameOff adds nothing.
	WorkerNameInResult string

	// Perl, when not nil, runs Perl plugins that ask for it in the embedded
	// Perl server (see [Perl]). The server is shared by every run that
	// names it.
	Perl *Perl
}

// Values of [Options.WorkerNameInResult], as the classic option
// worker_name_in_result spells them.
const (
	WorkerNameOff         = "off"
	WorkerNameOn          = "on"
	WorkerNamePrePerfdata = "pre_perfdata"
)

// DefaultOptions returns the options of a worker configured with the
// Mod-Gearman defaults: 60 s timeout, timeout_return 2 (CRITICAL),
// show_error_output and internal_check_dummy on.
func DefaultOptions() Options {
	return Options{
		Timeout:            DefaultTimeout,
		TimeoutReturn:      DefaultTimeoutReturn,
		MaxOutput:          DefaultMaxOutput,
		ShowErrorOutput:    true,
		KillGrace:          DefaultKillGrace,
		InternalCheckDummy: true,
	}
}

// Validate reports the first field that holds a value Run cannot use. It
// does not change o; zero values that have a default are valid.
func (o Options) Validate() error {
	switch {
	case o.Timeout < 0:
		return fmt.Errorf("plugin timeout %v: must not be negative", o.Timeout)
	case o.TimeoutReturn < 0 || o.TimeoutReturn > 3:
		return fmt.Errorf("timeout_return %d: must be 0..3", o.TimeoutReturn)
	case o.Kind < KindOther || o.Kind > KindService:
		return fmt.Errorf("plugin kind %d: unknown", o.Kind)
	case o.MaxOutput < 0:
		return fmt.Errorf("plugin max output %d: must not be negative", o.MaxOutput)
	case o.KillGrace < 0:
		return fmt.Errorf("plugin kill grace %v: must not be negative", o.KillGrace)
	}
	switch o.WorkerNameInResult {
	case "", WorkerNameOff, WorkerNameOn, WorkerNamePrePerfdata:
	default:
		return fmt.Errorf("worker_name_in_result %q: want off, on or pre_perfdata", o.WorkerNameInResult)
	}
	for _, p := range o.RestrictPath {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("restrict_path %q: must be an absolute path", p)
		}
	}
	return nil
}

// withDefaults fills zero fields that have a default.
func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxOutput == 0 {
		o.MaxOutput = DefaultMaxOutput
	}
	if o.KillGrace == 0 {
		o.KillGrace = DefaultKillGrace
	}
	if o.RestrictCommandCharacters == "" {
		o.RestrictCommandCharacters = DefaultRestrictCommandCharacters
	}
	return o
}

// errTimedOut is the cause of the run context when the plugin's own timeout
// expires, as opposed to the caller cancelling.
var errTimedOut = errors.New("plugin timed out")
