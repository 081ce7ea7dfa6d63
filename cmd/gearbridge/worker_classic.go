package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gearbridge/gearbridge/modgearman/classicconf"
)

// classicOptionFlag is the hidden flag that carries the classic options of
// a worker command line, as name=value, to the classic parser (see
// classicWorkerArgs). Cobra keeps them in order.
const classicOptionFlag = "classic-option"

// classicWorkerArgs rewrites the arguments of `gearbridge worker` so that
// every command-line form of the classic workers is accepted: --opt=value,
// --opt value, -d, a bare --flag for booleans and every option of the
// classic table, in any of its spellings. Each argument that is not a
// gearbridge flag, or whose value only a classic option accepts
// (--job-timeout=30: plain seconds, --hosts=yes), is handed on as
// --classic-option=name=value and parsed by classicconf, the parser of the
// classic files, so that file and command line mean the same. Other
// commands' arguments are returned unchanged.
func classicWorkerArgs(root *cobra.Command, args []string) ([]string, error) {
	cmd, rest, err := root.Find(args)
	if err != nil || cmd.Name() != "worker" || cmd.Parent() != root {
		return args, nil
	}
	cmd.InheritedFlags() // merges the persistent flags into cmd.Flags()
	translated, err := translateWorkerArgs(rest, cmd.Flags())
	if err != nil {
		return nil, usageError(err)
	}
	return append([]string{"worker"}, translated...), nil
}

// translateWorkerArgs is classicWorkerArgs for the arguments after the
// command name; fs holds the command's flags.
func translateWorkerArgs(args []string, fs *pflag.FlagSet) ([]string, error) {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...), nil
		}
		if len(a) < 2 || a[0] != '-' || a == "-h" || a == "--help" {
			out = append(out, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "--") && len(name) == 1 && name != "d" {
			out = append(out, a) // a shorthand of a gearbridge flag
			continue
		}
		classic, needsValue, cerr := classicconf.OptionName(name)
		f := fs.Lookup(name)
		if cerr != nil || name == "config" {
			// Not a classic option, or --config, which reads a file of
			// either syntax: cobra's.
			out = append(out, a)
			continue
		}
		if f != nil && !hasValue && f.NoOptDefVal != "" {
			out = append(out, a) // a bare boolean means the same to both
			continue
		}
		if !hasValue && (needsValue || (f != nil && f.NoOptDefVal == "")) {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("option --%s needs a value", name)
			}
			i++
			value, hasValue = args[i], true
		}
		if f != nil && flagAccepts(f, value) {
			out = append(out, "--"+name+"="+value)
			continue
		}
		if hasValue {
			out = append(out, "--"+classicOptionFlag+"="+classic+"="+value)
		} else {
			out = append(out, "--"+classicOptionFlag+"="+classic)
		}
	}
	return out, nil
}

// flagAccepts reports whether the gearbridge flag f takes v as its own
// value. Where it does not (a duration without unit, yes/no for a
// boolean), the classic option of the same name reads it.
func flagAccepts(f *pflag.Flag, v string) bool {
	var err error
	switch f.Value.Type() {
	case "bool":
		_, err = strconv.ParseBool(v)
	case "duration":
		_, err = time.ParseDuration(v)
	case "int":
		_, err = strconv.Atoi(v)
	case "float64":
		_, err = strconv.ParseFloat(v, 64)
	}
	return err == nil
}

// classicArgs parses the classic options of the command line (see
// classicWorkerArgs). given lists their names, in the spelling of the
// option table.
func classicArgs(fs *pflag.FlagSet) (cc classicconf.Config, given []string, err error) {
	p := classicconf.NewParser()
	if fs == nil || fs.Lookup(classicOptionFlag) == nil {
		return p.Config(), nil, nil
	}
	args, err := fs.GetStringArray(classicOptionFlag)
	if err != nil {
		return cc, nil, err
	}
	if err := p.ParseArgs(args); err != nil {
		return cc, nil, fmt.Errorf("classic option: %w", err)
	}
	for _, a := range args {
		k, _, _ := strings.Cut(a, "=")
		name, _, err := classicconf.OptionName(k)
		if err != nil {
			return cc, nil, err
		}
		if name == "d" {
			name = "daemon"
		}
		given = append(given, name)
	}
	return p.Config(), given, nil
}

// classicActions maps each classic option the worker acts on to what it
// does with it; a file applies them all, a command line those it names.
func classicActions() map[string]func(o *workerOptions, c classicconf.Config) {
	keys := func(o *workerOptions, c classicconf.Config) {
		o.Key, o.KeyFile = c.Key, c.KeyFile // one setting, as in the file
	}
	return map[string]func(o *workerOptions, c classicconf.Config){
		"hosts":         func(o *workerOptions, c classicconf.Config) { o.Hosts = c.Hosts },
		"services":      func(o *workerOptions, c classicconf.Config) { o.Services = c.Services },
		"eventhandler":  func(o *workerOptions, c classicconf.Config) { o.EventHandler = c.EventHandler },
		"notifications": func(o *workerOptions, c classicconf.Config) { o.Notifications = c.Notifications },
		"hostgroups":    func(o *workerOptions, c classicconf.Config) { o.HostGroups = c.HostGroups },
		"servicegroups": func(o *workerOptions, c classicconf.Config) { o.ServiceGroups = c.ServiceGroups },
		"max-worker":    func(o *workerOptions, c classicconf.Config) { o.MaxWorkers = c.MaxWorker },
		"job_timeout": func(o *workerOptions, c classicconf.Config) {
			o.JobTimeout = time.Duration(c.JobTimeout) * time.Second
		},
		"max-age":        func(o *workerOptions, c classicconf.Config) { o.MaxAge = time.Duration(c.MaxAge) * time.Second },
		"load_limit1":    func(o *workerOptions, c classicconf.Config) { o.LoadLimit1 = c.LoadLimit1 },
		"load_limit5":    func(o *workerOptions, c classicconf.Config) { o.LoadLimit5 = c.LoadLimit5 },
		"load_limit15":   func(o *workerOptions, c classicconf.Config) { o.LoadLimit15 = c.LoadLimit15 },
		"timeout_return": func(o *workerOptions, c classicconf.Config) { o.TimeoutReturn = c.TimeoutReturn },
		"show_error_output": func(o *workerOptions, c classicconf.Config) {
			o.ShowErrorOutput = c.ShowErrorOutput
		},
		"internal_check_dummy": func(o *workerOptions, c classicconf.Config) {
			o.InternalCheckDummy = c.InternalCheckDummy
		},
		"internal_negate": func(o *workerOptions, c classicconf.Config) { o.InternalNegate = c.InternalNegate },
		"worker_name_in_result": func(o *workerOptions, c classicconf.Config) {
			o.WorkerNameInResult = c.WorkerNameInResult
		},
		"enable_embedded_perl": func(o *workerOptions, c classicconf.Config) { o.EmbeddedPerl = c.EnableEmbeddedPerl },
		"use_embedded_perl_implicitly": func(o *workerOptions, c classicconf.Config) {
			o.EmbeddedPerlImplicitly = c.UseEmbeddedPerlImplicitly
		},
		"use_perl_cache": func(o *workerOptions, c classicconf.Config) { o.PerlCache = c.UsePerlCache },
		"restrict_path":  func(o *workerOptions, c classicconf.Config) { o.RestrictPath = c.RestrictPath },
		"restrict_command_characters": func(o *workerOptions, c classicconf.Config) {
			o.RestrictCommandCharacters = c.RestrictCommandCharacters
		},
		"identifier": func(o *workerOptions, c classicconf.Config) {
			if c.Identifier != "" {
				o.Identifier = c.Identifier
			}
		},
		"prometheus_server": func(o *workerOptions, c classicconf.Config) {
			if c.PrometheusServer != "" {
				o.MetricsListen = c.PrometheusServer
			}
		},
		// slog has no trace levels: debug 2 to 5 log as much as 1.
		"debug": func(o *workerOptions, c classicconf.Config) {
			o.LogLevel = "info"
			if c.Debug > 0 {
				o.LogLevel = "debug"
			}
		},
		"logfile":   func(o *workerOptions, c classicconf.Config) { o.LogFile = c.LogFile },
		"logmode":   func(o *workerOptions, c classicconf.Config) { o.LogMode = c.LogMode },
		"pidfile":   func(o *workerOptions, c classicconf.Config) { o.PidFile = c.PidFile },
		"daemon":    func(o *workerOptions, c classicconf.Config) { o.Daemon = c.Daemon },
		"server":    func(o *workerOptions, c classicconf.Config) { o.Servers = c.Servers },
		"dupserver": func(o *workerOptions, c classicconf.Config) { o.DupServers = c.DupServers },
		"dup_results_are_passive": func(o *workerOptions, c classicconf.Config) {
			o.DupResultsArePassive = c.DupResultsArePassive
		},
		"key":        keys,
		"keyfile":    keys,
		"encryption": func(o *workerOptions, c classicconf.Config) { o.Encryption = c.Encryption },
	}
}

// applyClassicOptions applies the named classic options of c.
func (o *workerOptions) applyClassicOptions(c classicconf.Config, names []string) {
	actions := classicActions()
	for _, n := range names {
		if act, ok := actions[n]; ok {
			act(o, c)
		}
	}
}

// unusedClassicReason says why the worker does not act on the classic
// option name, or returns "" when it does.
func (o workerOptions) unusedClassicReason(name string) string {
	if o.Transport == transportBridge {
		switch name {
		case "server", "dupserver", "dup_results_are_passive":
			return "a remote worker talks to --bridge, and the bridge to gearmand and its dupservers (or use --transport=gearman)"
		case "key", "keyfile", "encryption":
			return "the bridge decrypts jobs, a remote worker never needs the key"
		}
	}
	if _, ok := classicActions()[name]; ok {
		return ""
	}
	switch name {
	case "min-worker", "spawn-rate", "idle-timeout", "sink-rate":
		return "goroutines, not processes: all max-worker slots are ready at once and cost nothing while idle"
	case "max-jobs":
		return "goroutines, not processes: there is no worker process to recycle"
	case "fork_on_exec":
		return "every plugin runs in a process of its own anyway"
	case "workaround_rc_25":
		return "rc 25 came from duplicate executions at the C worker's max-jobs restarts, which do not happen here, and exit codes above 3 are always mapped"
	case "debug-result":
		return "results carry the worker name in error texts, and with worker_name_in_result"
	case "p1_file":
		return "not needed: the embedded Perl server is built into gearbridge"
	case "gearman_connection_timeout":
		return "connections are retried with backoff"
	case "load_cpu_multi":
		return "no default load limits: set load_limit1, load_limit5 or load_limit15"
	case "mem_limit", "backgrounding-threshold", "num-result-worker", "dupserver_backlog_queue_size":
		return "not supported by this worker"
	case "internal_check_nsc_web", "internal_check_prometheus":
		return "no built-in plugins besides check_dummy and negate: commands run as they are"
	case "timeout", "delimiter", "host", "service", "message", "returncode", "active",
		"starttime", "finishtime", "latency", "retries", "retry-interval", "result_queue":
		return "an option of send_gearman"
	}
	return "an option of the NEB module"
}

// unusedClassicLine lists the classic options in names that the worker
// accepts but does not act on, each with the reason, for one log line.
func (o workerOptions) unusedClassicLine(names []string) string {
	var parts []string
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		// A reason holds no "; ", which separates the options.
		if r := o.unusedClassicReason(n); r != "" {
			parts = append(parts, n+": "+r)
		}
	}
	return strings.Join(parts, "; ")
}

// errLogModeCore: the core's log exists only inside the core.
var errLogModeCore = errors.New("logmode=core: only the NEB module can log through the core (use automatic, file, stdout or syslog)")
