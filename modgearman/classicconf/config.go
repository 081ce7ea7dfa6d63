package classicconf

import (
	"fmt"
	"slices"
	"time"
)

// Log modes accepted by the logmode option.
const (
	LogModeAutomatic = "automatic" // file if logfile is set, else core (NEB) or stdout
	LogModeFile      = "file"
	LogModeStdout    = "stdout"
	LogModeSyslog    = "syslog"
	LogModeCore      = "core" // NEB only: through the core's logger
)

// Values of the worker_name_in_result option.
const (
	WorkerNameOff         = "off"
	WorkerNameOn          = "on"           // prefix the output with "(worker: <id>) "
	WorkerNamePrePerfdata = "pre_perfdata" // insert the worker name before the perfdata pipe
)

// Default perfdata templates of the NEB (fields separated by TAB).
const (
	DefaultHostPerfdataTemplate = "DATATYPE::HOSTPERFDATA\tTIMET::$TIMET$\tHOSTNAME::$HOSTNAME$\t" +
		"HOSTPERFDATA::$HOSTPERFDATA$\tHOSTCHECKCOMMAND::$HOSTCHECKCOMMAND$\t" +
		"HOSTSTATE::$HOSTSTATE$\tHOSTSTATETYPE::$HOSTSTATETYPE$"
	DefaultServicePerfdataTemplate = "DATATYPE::SERVICEPERFDATA\tTIMET::$TIMET$\tHOSTNAME::$HOSTNAME$\t" +
		"SERVICEDESC::$SERVICEDESC$\tSERVICEPERFDATA::$SERVICEPERFDATA$\t" +
		"SERVICECHECKCOMMAND::$SERVICECHECKCOMMAND$\tHOSTSTATE::$HOSTSTATE$\t" +
		"HOSTSTATETYPE::$HOSTSTATETYPE$\tSERVICESTATE::$SERVICESTATE$\tSERVICESTATETYPE::$SERVICESTATETYPE$"
)

// DefaultPort is the gearmand port used when a server has none.
const DefaultPort = 4730

// MaxGroupNameLen is the longest accepted host or service group name (bytes).
const MaxGroupNameLen = 50

// Config holds every option of the classic NEB module, worker and tools.
// Durations keep the classic units, named in each field's comment. Options
// of another role are parsed and kept but have no meaning for the reader.
type Config struct {
	// Common options (all roles).

	Debug      int      // debug: 0..5
	LogMode    string   // logmode: one of the LogMode constants
	LogFile    string   // logfile
	Servers    []string // server: normalized "host:port"
	DupServers []string // dupserver: normalized "host:port"
	Encryption bool     // encryption
	// Key is the shared secret (key, password). Setting it clears KeyFile.
	Key string
	// KeyFile names a file holding the secret (keyfile, passwordfile).
	// Setting it clears Key. Read it with [Config.ResolveKey].
	KeyFile string

	// NEB options.

	UseUniqJobs              bool // use_uniq_jobs
	GearmanConnectionTimeout int  // gearman_connection_timeout in ms; <= 0 means none
	LogStatsInterval         int  // log_stats_interval in s; 0 = off

	// Queue options (NEB and worker).

	Hosts         bool     // hosts
	Services      bool     // services
	EventHandler  bool     // eventhandler, eventhandlers
	Notifications bool     // notifications, notification
	HostGroups    []string // hostgroups, hostgroup
	ServiceGroups []string // servicegroups, servicegroup
	// SetByHand records which options with role-dependent auto-defaults
	// appeared in any source (even with an empty value).
	SetByHand ExplicitOptions

	LocalHostGroups             []string // localhostgroups, localhostgroup
	LocalServiceGroups          []string // localservicegroups, localservicegroup
	QueueCustomVariable         string   // queue_custom_variable, upper-cased
	DoHostChecks                bool     // do_hostchecks
	RouteEventHandlerLikeChecks bool     // route_eventhandler_like_checks
	ResultQueue                 string   // result_queue (NEB and tools)
	ResultWorkers               int      // result_workers: result threads, 0 = none

	// Perfdata enables perfdata jobs (perfdata). Value yes adds the queue
	// "perfdata", any other non-boolean value is a comma list of queue names
	// added to PerfdataQueues; no disables and clears the list.
	Perfdata                bool
	PerfdataQueues          []string
	PerfdataSendAll         bool   // perfdata_send_all
	PerfdataMode            int    // perfdata_mode: 1 overwrite, 2 append
	HostPerfdataTemplate    string // host_perfdata_template, \t \r \n expanded
	ServicePerfdataTemplate string // service_perfdata_template, \t \r \n expanded

	OrphanHostChecks    bool // orphan_host_checks
	OrphanServiceChecks bool // orphan_service_checks
	OrphanReturn        int  // orphan_return: 0..3
	// OrphanGrace (orphan_grace, gearbridge) is how long after a submitted
	// check's timeout the NEB waits for its result before it answers with
	// the orphan result itself.
	OrphanGrace time.Duration
	// GearmandDownHold (gearmand_down_hold, gearbridge) is how long the NEB
	// keeps checks in its queue while gearmand is unreachable before it
	// gives them back to the core's scheduler.
	GearmandDownHold     time.Duration
	AcceptClearResults   bool         // accept_clear_results
	LatencyFlattenWindow int          // latency_flatten_window in s; <= 0 off
	InternalCheckDummy   bool         // internal_check_dummy (NEB and worker)
	Export               []ExportSpec // export, one per occurrence

	// Worker options.

	DebugResult bool // debug-result, debug_result
	// Identifier names the worker (identifier). Empty means the host name,
	// which the caller fills in; Defaults does no I/O.
	Identifier  string
	PidFile     string  // pidfile
	Daemon      bool    // daemon, d
	JobTimeout  int     // job_timeout in s
	MaxAge      int     // max-age in s; 0 = off
	MinWorker   int     // min-worker
	MaxWorker   int     // max-worker
	SpawnRate   int     // spawn-rate: workers started per second
	IdleTimeout int     // idle-timeout in s
	MaxJobs     int     // max-jobs (C worker only)
	ForkOnExec  bool    // fork_on_exec (C worker only)
	LoadLimit1  float64 // load_limit1; 0 = off
	LoadLimit5  float64 // load_limit5; 0 = off
	LoadLimit15 float64 // load_limit15; 0 = off

	ShowErrorOutput           bool     // show_error_output
	TimeoutReturn             int      // timeout_return: 0..3
	DupResultsArePassive      bool     // dup_results_are_passive
	WorkaroundRC25            bool     // workaround_rc_25 (C worker only)
	RestrictPath              []string // restrict_path, restrictpath
	RestrictCommandCharacters string   // restrict_command_characters
	EnableEmbeddedPerl        bool     // enable_embedded_perl
	UseEmbeddedPerlImplicitly bool     // use_embedded_perl_implicitly
	UsePerlCache              bool     // use_perl_cache
	P1File                    string   // p1_file; empty = built-in location

	// Options of the Go worker (C ignores them).

	SinkRate                  int     // sink-rate: idle workers stopped per second
	BackgroundingThreshold    int     // backgrounding-threshold in s
	LoadCPUMulti              float64 // load_cpu_multi
	MemLimit                  int     // mem_limit in percent, 0..100
	NumResultWorker           int     // num-result-worker; 0 = automatic
	DupserverBacklogQueueSize int     // dupserver_backlog_queue_size
	PrometheusServer          string  // prometheus_server: listen address
	InternalNegate            bool    // internal_negate
	InternalCheckNSCWeb       bool    // internal_check_nsc_web
	InternalCheckPrometheus   bool    // internal_check_prometheus
	WorkerNameInResult        string  // worker_name_in_result: WorkerName constants

	// Tool options (send_gearman, send_multi).

	Timeout       int     // timeout, t: stdin wait in s
	Delimiter     string  // delimiter (or d with a non-boolean value)
	Host          string  // host
	Service       string  // service
	Message       string  // message, m
	ReturnCode    int     // returncode, r, return_code: 0..3
	Active        bool    // active
	StartTime     float64 // starttime: unix time
	FinishTime    float64 // finishtime: unix time
	Latency       float64 // latency in s
	Retries       int     // retries
	RetryInterval float64 // retry-interval in s

	// Warnings collects non-fatal findings ("file:line: ..."), such as an
	// inline '#' or a duplicate server. Log them at start-up.
	Warnings []string
}

// ExplicitOptions records whether options whose default depends on the role
// were given in any source.
type ExplicitOptions struct {
	Hosts         bool
	Services      bool
	EventHandler  bool
	Notifications bool
	Perfdata      bool
	HostGroups    bool
	ServiceGroups bool
	Encryption    bool
}

// AnyQueue reports whether any queue option was set by hand (hosts,
// services, eventhandler, notifications, perfdata, hostgroups,
// servicegroups).
func (e ExplicitOptions) AnyQueue() bool {
	return e.Hosts || e.Services || e.EventHandler || e.Notifications ||
		e.Perfdata || e.HostGroups || e.ServiceGroups
}

// ExportSpec is one export= option: NEB callbacks whose data is sent as JSON
// to Queue, answering the core with ReturnCode.
type ExportSpec struct {
	Queue      string
	ReturnCode int
	// Callbacks are callback numbers or NEBCALLBACK_* names, as written.
	Callbacks []string
}

// String formats the spec as written in the configuration.
func (e ExportSpec) String() string {
	s := fmt.Sprintf("%s:%d:", e.Queue, e.ReturnCode)
	for i, cb := range e.Callbacks {
		if i > 0 {
			s += ","
		}
		s += cb
	}
	return s
}

// Defaults returns the compiled-in defaults of classic Mod-Gearman (C), with
// the compatibility recommendations where C and Go differ, and the Go worker
// defaults for options only Go knows.
func Defaults() Config {
	return Config{
		LogMode:                  LogModeAutomatic,
		Encryption:               true,
		UseUniqJobs:              true,
		GearmanConnectionTimeout: 5000,
		LogStatsInterval:         60,
		DoHostChecks:             true,
		ResultQueue:              "check_results",
		ResultWorkers:            1,
		PerfdataMode:             1,
		HostPerfdataTemplate:     DefaultHostPerfdataTemplate,
		ServicePerfdataTemplate:  DefaultServicePerfdataTemplate,
		OrphanHostChecks:         true,
		OrphanServiceChecks:      true,
		OrphanReturn:             2,
		// Ten seconds cover a worker's own timeout handling and the
		// result's way back through gearmand under load.
		OrphanGrace: 10 * time.Second,
		// A gearmand restart takes a few seconds; thirty cover it without
		// holding a check past a typical check interval.
		GearmandDownHold:     30 * time.Second,
		LatencyFlattenWindow: 30,
		InternalCheckDummy:   true,

		JobTimeout:      60,
		MinWorker:       1,
		MaxWorker:       20,
		SpawnRate:       1,
		IdleTimeout:     10,
		MaxJobs:         1000,
		ShowErrorOutput: true,
		// 2 (CRITICAL), as the C worker and the shipped config files; the
		// Go worker (mod-gearman-worker-go) uses 3 (UNKNOWN).
		TimeoutReturn:             2,
		DupResultsArePassive:      true,
		RestrictCommandCharacters: "$&();<>`\"'|",
		// C enables ePN only when compiled in; gearbridge has no embedded
		// Perl, which is the "not compiled" case.
		EnableEmbeddedPerl: false,
		UsePerlCache:       true,

		SinkRate:                  1,
		BackgroundingThreshold:    30,
		LoadCPUMulti:              2.5,
		MemLimit:                  70,
		DupserverBacklogQueueSize: 1000,
		InternalNegate:            true,
		InternalCheckNSCWeb:       true,
		InternalCheckPrometheus:   true,
		WorkerNameInResult:        WorkerNameOff,

		Timeout:       10,
		Delimiter:     "\t",
		RetryInterval: 1,
	}
}

// ApplyNEBDefaults applies the NEB's "queues set by hand" rule: when none of
// hosts, services, eventhandler, notifications, perfdata, hostgroups and
// servicegroups was given, host checks, service checks and event handlers
// are distributed (notifications are not).
func (c *Config) ApplyNEBDefaults() {
	if c.SetByHand.AnyQueue() {
		return
	}
	c.Hosts, c.Services, c.EventHandler = true, true, true
}

// ApplyWorkerDefaults applies the classic worker's rules: when no queue
// option was given, it serves hosts, services, event handlers and
// notifications; and min-worker is capped to max-worker (with a warning).
func (c *Config) ApplyWorkerDefaults() {
	if !c.SetByHand.AnyQueue() {
		c.Hosts, c.Services, c.EventHandler, c.Notifications = true, true, true, true
	}
	if c.MinWorker > c.MaxWorker {
		c.Warnings = append(c.Warnings, fmt.Sprintf("min-worker %d is above max-worker %d; using %d", c.MinWorker, c.MaxWorker, c.MaxWorker))
		c.MinWorker = c.MaxWorker
	}
}

// ApplySendGearmanDefaults applies send_gearman's encryption rule: unless
// encryption was given, it is on exactly when a key or keyfile is set.
func (c *Config) ApplySendGearmanDefaults() {
	if !c.SetByHand.Encryption {
		c.Encryption = c.Key != "" || c.KeyFile != ""
	}
}

// clone returns a deep copy, so that a failed parse never touches the
// original.
func (c Config) clone() Config {
	c.Servers = slices.Clone(c.Servers)
	c.DupServers = slices.Clone(c.DupServers)
	c.HostGroups = slices.Clone(c.HostGroups)
	c.ServiceGroups = slices.Clone(c.ServiceGroups)
	c.LocalHostGroups = slices.Clone(c.LocalHostGroups)
	c.LocalServiceGroups = slices.Clone(c.LocalServiceGroups)
	c.PerfdataQueues = slices.Clone(c.PerfdataQueues)
	c.RestrictPath = slices.Clone(c.RestrictPath)
	c.Warnings = slices.Clone(c.Warnings)
	if c.Export != nil {
		ex := make([]ExportSpec, len(c.Export))
		for i, e := range c.Export {
			e.Callbacks = slices.Clone(e.Callbacks)
			ex[i] = e
		}
		c.Export = ex
	}
	return c
}
