package classicconf

import (
	"math"
	"slices"
	"strings"
	"time"
)

// option describes one configuration option and its aliases.
type option struct {
	name    string   // spelling of the specification's option table
	aliases []string // other accepted spellings
	// bare is the value implied by a bare --flag; empty means the option
	// needs a value.
	bare string
	// include marks config/configfile/include, which the parser handles.
	include bool
	// set parses v (already trimmed) into c. It changes c only on success
	// and returns warnings without location.
	set func(c *Config, v string) ([]string, error)
	// get returns the values as they would be written, one per line; nil
	// when there is nothing to write. Aliases with their own semantics
	// (d) have no get.
	get func(c *Config) []string
}

// optionIndex maps lower-case spellings to options.
type optionIndex map[string]*option

// newOptionIndex indexes the option table. Spellings with '-' are also
// indexed with '_' (see the package documentation).
func newOptionIndex() optionIndex {
	table := optionTable()
	idx := make(optionIndex, 3*len(table))
	for i := range table {
		o := &table[i]
		for _, n := range append([]string{o.name}, o.aliases...) {
			idx[n] = o
		}
	}
	for n, o := range idx {
		if u := strings.ReplaceAll(n, "-", "_"); u != n {
			if _, ok := idx[u]; !ok {
				idx[u] = o
			}
		}
	}
	return idx
}

// lookup finds the option for key (any case). The error suggests the other
// separator when only that spelling exists.
func (idx optionIndex) lookup(key string) (*option, error) {
	k := asciiLower(key)
	if o, ok := idx[k]; ok {
		return o, nil
	}
	for _, alt := range []string{strings.ReplaceAll(k, "_", "-"), strings.ReplaceAll(k, "-", "_")} {
		if o, ok := idx[alt]; ok && alt != k {
			return nil, &kindError{kind: ErrUnknownKey, msg: "unknown option (did you mean \"" + o.name + "\"?)"}
		}
	}
	return nil, ErrUnknownKey
}

// optionTable lists every option of the specification's table (section 5.2)
// in its order. It returns a fresh slice on each call; nothing is shared.
func optionTable() []option {
	const minInt, maxInt = math.MinInt, math.MaxInt
	return []option{
		{name: "config", aliases: []string{"configfile", "include"}, include: true},
		intOption("debug", func(c *Config) *int { return &c.Debug }, 0, 5),
		enumOption("logmode", func(c *Config) *string { return &c.LogMode },
			LogModeAutomatic, LogModeFile, LogModeStdout, LogModeSyslog, LogModeCore),
		stringOption("logfile", func(c *Config) *string { return &c.LogFile }),
		serverOption("server", func(c *Config) *[]string { return &c.Servers }),
		serverOption("dupserver", func(c *Config) *[]string { return &c.DupServers }),
		marked(boolOption("encryption", func(c *Config) *bool { return &c.Encryption }),
			func(e *ExplicitOptions) *bool { return &e.Encryption }),
		{
			name: "key", aliases: []string{"password"},
			set: func(c *Config, v string) ([]string, error) {
				c.Key, c.KeyFile = v, ""
				return nil, nil
			},
			get: func(c *Config) []string { return []string{c.Key} },
		},
		{
			name: "keyfile", aliases: []string{"passwordfile"},
			set: func(c *Config, v string) ([]string, error) {
				c.KeyFile, c.Key = v, ""
				return nil, nil
			},
			get: func(c *Config) []string { return []string{c.KeyFile} },
		},
		boolOption("use_uniq_jobs", func(c *Config) *bool { return &c.UseUniqJobs }),
		intOption("gearman_connection_timeout", func(c *Config) *int { return &c.GearmanConnectionTimeout }, minInt, maxInt),
		intOption("log_stats_interval", func(c *Config) *int { return &c.LogStatsInterval }, 0, maxInt),
		marked(boolOption("hosts", func(c *Config) *bool { return &c.Hosts }),
			func(e *ExplicitOptions) *bool { return &e.Hosts }),
		marked(boolOption("services", func(c *Config) *bool { return &c.Services }),
			func(e *ExplicitOptions) *bool { return &e.Services }),
		marked(boolOption("eventhandler", func(c *Config) *bool { return &c.EventHandler }, "eventhandlers"),
			func(e *ExplicitOptions) *bool { return &e.EventHandler }),
		marked(boolOption("notifications", func(c *Config) *bool { return &c.Notifications }, "notification"),
			func(e *ExplicitOptions) *bool { return &e.Notifications }),
		marked(groupOption("hostgroups", func(c *Config) *[]string { return &c.HostGroups }, "hostgroup"),
			func(e *ExplicitOptions) *bool { return &e.HostGroups }),
		marked(groupOption("servicegroups", func(c *Config) *[]string { return &c.ServiceGroups }, "servicegroup"),
			func(e *ExplicitOptions) *bool { return &e.ServiceGroups }),
		groupOption("localhostgroups", func(c *Config) *[]string { return &c.LocalHostGroups }, "localhostgroup"),
		groupOption("localservicegroups", func(c *Config) *[]string { return &c.LocalServiceGroups }, "localservicegroup"),
		{
			name: "queue_custom_variable",
			set: func(c *Config, v string) ([]string, error) {
				c.QueueCustomVariable = asciiUpper(v)
				return nil, nil
			},
			get: func(c *Config) []string { return []string{c.QueueCustomVariable} },
		},
		boolOption("do_hostchecks", func(c *Config) *bool { return &c.DoHostChecks }),
		boolOption("route_eventhandler_like_checks", func(c *Config) *bool { return &c.RouteEventHandlerLikeChecks }),
		nonEmptyOption("result_queue", func(c *Config) *string { return &c.ResultQueue }),
		intOption("result_workers", func(c *Config) *int { return &c.ResultWorkers }, 0, maxInt),
		marked(perfdataOption(), func(e *ExplicitOptions) *bool { return &e.Perfdata }),
		boolOption("perfdata_send_all", func(c *Config) *bool { return &c.PerfdataSendAll }),
		intOption("perfdata_mode", func(c *Config) *int { return &c.PerfdataMode }, 1, 2),
		templateOption("host_perfdata_template", func(c *Config) *string { return &c.HostPerfdataTemplate }),
		templateOption("service_perfdata_template", func(c *Config) *string { return &c.ServicePerfdataTemplate }),
		boolOption("orphan_host_checks", func(c *Config) *bool { return &c.OrphanHostChecks }),
		boolOption("orphan_service_checks", func(c *Config) *bool { return &c.OrphanServiceChecks }),
		intOption("orphan_return", func(c *Config) *int { return &c.OrphanReturn }, 0, 3),
		durationOption("orphan_grace", func(c *Config) *time.Duration { return &c.OrphanGrace }),
		durationOption("gearmand_down_hold", func(c *Config) *time.Duration { return &c.GearmandDownHold }),
		boolOption("accept_clear_results", func(c *Config) *bool { return &c.AcceptClearResults }),
		intOption("latency_flatten_window", func(c *Config) *int { return &c.LatencyFlattenWindow }, minInt, maxInt),
		boolOption("internal_check_dummy", func(c *Config) *bool { return &c.InternalCheckDummy }),
		{
			name: "export",
			set: func(c *Config, v string) ([]string, error) {
				spec, err := parseExport(v)
				if err != nil {
					return nil, err
				}
				c.Export = append(slices.Clip(c.Export), spec)
				return nil, nil
			},
			get: func(c *Config) []string {
				var out []string
				for _, e := range c.Export {
					out = append(out, e.String())
				}
				return out
			},
		},

		boolOption("debug-result", func(c *Config) *bool { return &c.DebugResult }, "debug_result"),
		stringOption("identifier", func(c *Config) *string { return &c.Identifier }),
		stringOption("pidfile", func(c *Config) *string { return &c.PidFile }),
		boolOption("daemon", func(c *Config) *bool { return &c.Daemon }),
		{
			// d is daemon for the worker and delimiter for send_gearman.
			name: "d", bare: "yes",
			set: func(c *Config, v string) ([]string, error) {
				if b, err := parseBool(v); err == nil {
					c.Daemon = b
					return nil, nil
				}
				return setDelimiter(c, v)
			},
		},
		intOption("job_timeout", func(c *Config) *int { return &c.JobTimeout }, 0, maxInt),
		intOption("max-age", func(c *Config) *int { return &c.MaxAge }, 0, maxInt),
		intOption("min-worker", func(c *Config) *int { return &c.MinWorker }, 0, maxInt),
		intOption("max-worker", func(c *Config) *int { return &c.MaxWorker }, 1, maxInt),
		intOption("spawn-rate", func(c *Config) *int { return &c.SpawnRate }, 0, maxInt),
		intOption("idle-timeout", func(c *Config) *int { return &c.IdleTimeout }, 0, maxInt),
		intOption("max-jobs", func(c *Config) *int { return &c.MaxJobs }, 0, maxInt),
		boolOption("fork_on_exec", func(c *Config) *bool { return &c.ForkOnExec }),
		floatOption("load_limit1", func(c *Config) *float64 { return &c.LoadLimit1 }),
		floatOption("load_limit5", func(c *Config) *float64 { return &c.LoadLimit5 }),
		floatOption("load_limit15", func(c *Config) *float64 { return &c.LoadLimit15 }),
		boolOption("show_error_output", func(c *Config) *bool { return &c.ShowErrorOutput }),
		intOption("timeout_return", func(c *Config) *int { return &c.TimeoutReturn }, 0, 3),
		boolOption("dup_results_are_passive", func(c *Config) *bool { return &c.DupResultsArePassive }),
		boolOption("workaround_rc_25", func(c *Config) *bool { return &c.WorkaroundRC25 }),
		listOption("restrict_path", func(c *Config) *[]string { return &c.RestrictPath }, "path", splitListOK, "restrictpath"),
		stringOption("restrict_command_characters", func(c *Config) *string { return &c.RestrictCommandCharacters }),
		boolOption("enable_embedded_perl", func(c *Config) *bool { return &c.EnableEmbeddedPerl }),
		boolOption("use_embedded_perl_implicitly", func(c *Config) *bool { return &c.UseEmbeddedPerlImplicitly }),
		boolOption("use_perl_cache", func(c *Config) *bool { return &c.UsePerlCache }),
		stringOption("p1_file", func(c *Config) *string { return &c.P1File }),

		intOption("sink-rate", func(c *Config) *int { return &c.SinkRate }, 0, maxInt),
		intOption("backgrounding-threshold", func(c *Config) *int { return &c.BackgroundingThreshold }, 0, maxInt),
		floatOption("load_cpu_multi", func(c *Config) *float64 { return &c.LoadCPUMulti }),
		intOption("mem_limit", func(c *Config) *int { return &c.MemLimit }, 0, 100),
		intOption("num-result-worker", func(c *Config) *int { return &c.NumResultWorker }, 0, maxInt),
		intOption("dupserver_backlog_queue_size", func(c *Config) *int { return &c.DupserverBacklogQueueSize }, 0, maxInt),
		stringOption("prometheus_server", func(c *Config) *string { return &c.PrometheusServer }),
		boolOption("internal_negate", func(c *Config) *bool { return &c.InternalNegate }),
		boolOption("internal_check_nsc_web", func(c *Config) *bool { return &c.InternalCheckNSCWeb }),
		boolOption("internal_check_prometheus", func(c *Config) *bool { return &c.InternalCheckPrometheus }),
		{
			name: "worker_name_in_result", bare: WorkerNameOn,
			set: func(c *Config, v string) ([]string, error) {
				if b, err := parseBool(v); err == nil {
					c.WorkerNameInResult = WorkerNameOff
					if b {
						c.WorkerNameInResult = WorkerNameOn
					}
					return nil, nil
				}
				if asciiLower(v) != WorkerNamePrePerfdata {
					return nil, invalidf("value %q: want off, on or pre_perfdata", v)
				}
				c.WorkerNameInResult = WorkerNamePrePerfdata
				return nil, nil
			},
			get: func(c *Config) []string { return []string{c.WorkerNameInResult} },
		},

		intOption("timeout", func(c *Config) *int { return &c.Timeout }, 0, maxInt, "t"),
		{
			name: "delimiter",
			set:  setDelimiter,
			get:  func(c *Config) []string { return []string{c.Delimiter} },
		},
		stringOption("host", func(c *Config) *string { return &c.Host }),
		stringOption("service", func(c *Config) *string { return &c.Service }),
		stringOption("message", func(c *Config) *string { return &c.Message }, "m"),
		intOption("returncode", func(c *Config) *int { return &c.ReturnCode }, 0, 3, "r", "return_code"),
		boolOption("active", func(c *Config) *bool { return &c.Active }),
		floatOption("starttime", func(c *Config) *float64 { return &c.StartTime }),
		floatOption("finishtime", func(c *Config) *float64 { return &c.FinishTime }),
		floatOption("latency", func(c *Config) *float64 { return &c.Latency }),
		intOption("retries", func(c *Config) *int { return &c.Retries }, 0, maxInt),
		floatOption("retry-interval", func(c *Config) *float64 { return &c.RetryInterval }),
	}
}

func setDelimiter(c *Config, v string) ([]string, error) {
	if v == "" {
		return nil, invalidf("empty delimiter")
	}
	c.Delimiter = v
	return nil, nil
}

// marked makes o record in Config.SetByHand that it was given.
func marked(o option, flag func(*ExplicitOptions) *bool) option {
	set := o.set
	o.set = func(c *Config, v string) ([]string, error) {
		w, err := set(c, v)
		if err == nil {
			*flag(&c.SetByHand) = true
		}
		return w, err
	}
	return o
}

func boolOption(name string, f func(*Config) *bool, aliases ...string) option {
	return option{
		name: name, aliases: aliases, bare: "yes",
		set: func(c *Config, v string) ([]string, error) {
			b, err := parseBool(v)
			if err != nil {
				return nil, err
			}
			*f(c) = b
			return nil, nil
		},
		get: func(c *Config) []string { return []string{formatBool(*f(c))} },
	}
}

func intOption(name string, f func(*Config) *int, lo, hi int, aliases ...string) option {
	return option{
		name: name, aliases: aliases,
		set: func(c *Config, v string) ([]string, error) {
			n, err := parseInt(v, lo, hi)
			if err != nil {
				return nil, err
			}
			*f(c) = n
			return nil, nil
		},
		get: func(c *Config) []string { return []string{itoa(*f(c))} },
	}
}

// durationOption accepts a non-negative duration: whole seconds ("10") or
// a Go duration ("2s", "1500ms").
func durationOption(name string, f func(*Config) *time.Duration) option {
	return option{
		name: name,
		set: func(c *Config, v string) ([]string, error) {
			d, err := parseDuration(v)
			if err != nil {
				return nil, err
			}
			*f(c) = d
			return nil, nil
		},
		get: func(c *Config) []string { return []string{f(c).String()} },
	}
}

// floatOption accepts non-negative decimal numbers: every float option is a
// load, a factor, a time stamp or a duration.
func floatOption(name string, f func(*Config) *float64, aliases ...string) option {
	return option{
		name: name, aliases: aliases,
		set: func(c *Config, v string) ([]string, error) {
			x, err := parseFloat(v, 0)
			if err != nil {
				return nil, err
			}
			*f(c) = x
			return nil, nil
		},
		get: func(c *Config) []string { return []string{formatFloat(*f(c))} },
	}
}

func stringOption(name string, f func(*Config) *string, aliases ...string) option {
	return option{
		name: name, aliases: aliases,
		set: func(c *Config, v string) ([]string, error) {
			*f(c) = v
			return nil, nil
		},
		get: func(c *Config) []string { return []string{*f(c)} },
	}
}

func nonEmptyOption(name string, f func(*Config) *string) option {
	o := stringOption(name, f)
	o.set = func(c *Config, v string) ([]string, error) {
		if v == "" {
			return nil, invalidf("empty value")
		}
		*f(c) = v
		return nil, nil
	}
	return o
}

// enumOption accepts one of values in any case and stores it lower-case.
func enumOption(name string, f func(*Config) *string, values ...string) option {
	o := stringOption(name, f)
	o.set = func(c *Config, v string) ([]string, error) {
		l := asciiLower(v)
		if !containsString(values, l) {
			return nil, invalidf("value %q: want one of %s", v, strings.Join(values, ", "))
		}
		*f(c) = l
		return nil, nil
	}
	return o
}

// templateOption expands \t, \r and \n; get escapes them again.
func templateOption(name string, f func(*Config) *string) option {
	return option{
		name: name,
		set: func(c *Config, v string) ([]string, error) {
			*f(c) = expandEscapes(v)
			return nil, nil
		},
		get: func(c *Config) []string { return []string{escapeControls(*f(c))} },
	}
}

func splitListOK(v string) ([]string, error) { return splitList(v), nil }

// listOption accumulates comma lists; what names an entry in warnings.
func listOption(name string, f func(*Config) *[]string, what string, parse func(string) ([]string, error), aliases ...string) option {
	return option{
		name: name, aliases: aliases,
		set: func(c *Config, v string) ([]string, error) {
			entries, err := parse(v)
			if err != nil {
				return nil, err
			}
			var w []string
			*f(c), w = appendUnique(*f(c), entries, what)
			return w, nil
		},
		get: func(c *Config) []string {
			if len(*f(c)) == 0 {
				return nil
			}
			return []string{strings.Join(*f(c), ",")}
		},
	}
}

func serverOption(name string, f func(*Config) *[]string) option {
	return listOption(name, f, "server", parseServers)
}

func groupOption(name string, f func(*Config) *[]string, aliases ...string) option {
	return listOption(name, f, "group", parseGroups, aliases...)
}

// perfdataOption: yes adds the queue "perfdata", no disables perfdata and
// clears the queue list, any other value is a comma list of queues. Queue
// names that read as booleans are rejected, since they could not be told
// apart from the switch.
func perfdataOption() option {
	return option{
		name: "perfdata", bare: "yes",
		set: func(c *Config, v string) ([]string, error) {
			if b, err := parseBool(v); err == nil {
				if !b {
					c.Perfdata, c.PerfdataQueues = false, nil
					return nil, nil
				}
				c.Perfdata = true
				if !containsString(c.PerfdataQueues, "perfdata") {
					c.PerfdataQueues = append(slices.Clip(c.PerfdataQueues), "perfdata")
				}
				return nil, nil
			}
			queues := splitList(v)
			for _, q := range queues {
				if isBoolWord(q) {
					return nil, invalidf("value %q: queue name %q reads as a boolean", v, q)
				}
			}
			if len(queues) == 0 {
				return nil, nil
			}
			var w []string
			c.Perfdata = true
			c.PerfdataQueues, w = appendUnique(c.PerfdataQueues, queues, "perfdata queue")
			return w, nil
		},
		get: func(c *Config) []string {
			switch {
			case !c.Perfdata:
				return []string{"no"}
			case len(c.PerfdataQueues) == 0:
				return []string{"yes"}
			}
			return []string{strings.Join(c.PerfdataQueues, ",")}
		},
	}
}
