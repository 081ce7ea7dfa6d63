package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/modgearman/classicconf"
)

// parseClassicWorker parses a classic worker command line (transport
// gearman, as mod_gearman_worker has it) without running anything.
func parseClassicWorker(t *testing.T, args ...string) workerOptions {
	t.Helper()
	opts, _, _, err := parseWorkerFlags(t, append([]string{"--transport=gearman"}, args...)...)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return opts
}

// TestWorkerClassicFlagForms runs the worker's flag parsing over the
// command-line forms of the C worker and of mod-gearman-worker-go.
func TestWorkerClassicFlagForms(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(*workerOptions)
	}{
		{"max-worker=", []string{"--max-worker=50"}, func(o *workerOptions) { o.MaxWorkers = 50 }},
		{"max-worker value", []string{"--max-worker", "50"}, func(o *workerOptions) { o.MaxWorkers = 50 }},
		{"max_worker", []string{"--max_worker=50"}, func(o *workerOptions) { o.MaxWorkers = 50 }},
		{"single dash", []string{"-max-worker=50"}, func(o *workerOptions) { o.MaxWorkers = 50 }},
		{"max-workers flag", []string{"--max-workers", "7"}, func(o *workerOptions) { o.MaxWorkers = 7 }},
		{"job_timeout seconds", []string{"--job_timeout=30"}, func(o *workerOptions) { o.JobTimeout = 30 * time.Second }},
		{"job-timeout seconds", []string{"--job-timeout=30"}, func(o *workerOptions) { o.JobTimeout = 30 * time.Second }},
		{"job-timeout value", []string{"--job-timeout", "30"}, func(o *workerOptions) { o.JobTimeout = 30 * time.Second }},
		{"job-timeout duration", []string{"--job-timeout=45s"}, func(o *workerOptions) { o.JobTimeout = 45 * time.Second }},
		{"max-age seconds", []string{"--max-age=600"}, func(o *workerOptions) { o.MaxAge = 10 * time.Minute }},
		{"max-age duration", []string{"--max-age", "5m"}, func(o *workerOptions) { o.MaxAge = 5 * time.Minute }},
		{"debug 0", []string{"--debug=0"}, func(o *workerOptions) {}},
		{"debug 1", []string{"--debug=1"}, func(o *workerOptions) { o.LogLevel = "debug" }},
		{"debug value", []string{"--debug", "2"}, func(o *workerOptions) { o.LogLevel = "debug" }},
		{"-d", []string{"-d"}, func(o *workerOptions) { o.Daemon = true }},
		{"--daemon", []string{"--daemon"}, func(o *workerOptions) { o.Daemon = true }},
		{"--daemon=no", []string{"--daemon=no"}, func(o *workerOptions) {}},
		{"pidfile=", []string{"--pidfile=/run/w.pid"}, func(o *workerOptions) { o.PidFile = "/run/w.pid" }},
		{"pidfile value", []string{"--pidfile", "/run/w.pid"}, func(o *workerOptions) { o.PidFile = "/run/w.pid" }},
		{"logfile and logmode", []string{"--logfile=/var/log/w.log", "--logmode", "file"}, func(o *workerOptions) {
			o.LogFile, o.LogMode = "/var/log/w.log", classicconf.LogModeFile
		}},
		{"logmode upper case", []string{"--logmode=SYSLOG"}, func(o *workerOptions) { o.LogMode = classicconf.LogModeSyslog }},
		{"bare hosts", []string{"--hosts"}, func(o *workerOptions) { o.Hosts = true }},
		{"hosts=yes", []string{"--hosts=yes"}, func(o *workerOptions) { o.Hosts = true }},
		{"hosts=on", []string{"--hosts=on"}, func(o *workerOptions) { o.Hosts = true }},
		{"hosts=true", []string{"--hosts=true"}, func(o *workerOptions) { o.Hosts = true }},
		{"hosts=no", []string{"--hosts=no", "--services"}, func(o *workerOptions) { o.Services = true }},
		{"eventhandlers alias", []string{"--eventhandlers"}, func(o *workerOptions) { o.EventHandler = true }},
		{"notification=yes", []string{"--notification=yes"}, func(o *workerOptions) { o.Notifications = true }},
		{"hostgroup alias", []string{"--hostgroup=a,b", "--hostgroup", "c"}, func(o *workerOptions) { o.HostGroups = []string{"a", "b", "c"} }},
		{"servicegroups flag", []string{"--servicegroups", "x"}, func(o *workerOptions) { o.ServiceGroups = []string{"x"} }},
		{"load_limit1", []string{"--load_limit1=4", "--load-limit5", "6"}, func(o *workerOptions) { o.LoadLimit1, o.LoadLimit5 = 4, 6 }},
		{"timeout_return", []string{"--timeout_return=3"}, func(o *workerOptions) { o.TimeoutReturn = 3 }},
		{"show-error-output=no", []string{"--show-error-output=no"}, func(o *workerOptions) { o.ShowErrorOutput = false }},
		{"show_error_output=off", []string{"--show_error_output=off"}, func(o *workerOptions) { o.ShowErrorOutput = false }},
		{"internal_check_dummy", []string{"--internal_check_dummy=no"}, func(o *workerOptions) { o.InternalCheckDummy = false }},
		{"restrict_path", []string{"--restrict_path=/usr/lib/nagios", "--restrict_command_characters=$"}, func(o *workerOptions) {
			o.RestrictPath, o.RestrictCommandCharacters = []string{"/usr/lib/nagios"}, "$"
		}},
		{"identifier value", []string{"--identifier", "w1"}, func(o *workerOptions) { o.Identifier = "w1" }},
		{"prometheus_server", []string{"--prometheus_server=:9100"}, func(o *workerOptions) { o.MetricsListen = ":9100" }},
		{"server forms", []string{"--server=gm1:4730", "--server", "gm2"}, func(o *workerOptions) { o.Servers = []string{"gm1:4730", "gm2"} }},
		{"dupserver", []string{"--dupserver=dup:4730"}, func(o *workerOptions) { o.DupServers = []string{"dup:4730"} }},
		{"key", []string{"--key=secret"}, func(o *workerOptions) { o.Key = "secret" }},
		{"password alias", []string{"--password=secret"}, func(o *workerOptions) { o.Key = "secret" }},
		{"keyfile", []string{"--keyfile", "/etc/k"}, func(o *workerOptions) { o.KeyFile = "/etc/k" }},
		{"encryption=no", []string{"--encryption=no"}, func(o *workerOptions) { o.Encryption = false }},
		{"encryption=off", []string{"--encryption=off"}, func(o *workerOptions) { o.Encryption = false }},
	}
	base := parseClassicWorker(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseClassicWorker(t, tt.args...)
			want := base
			tt.want(&want)
			got.classicUnused, want.classicUnused = "", ""
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%q\n got %+v\nwant %+v", tt.args, got, want)
			}
		})
	}
}

// classicTestValues holds a value other than the default for every
// classic option.
var classicTestValues = map[string]string{
	"debug": "1", "logmode": "stdout", "logfile": "/var/log/w.log", "server": "gm:4730",
	"dupserver": "dup:4730", "encryption": "no", "key": "secret", "keyfile": "/etc/key",
	"use_uniq_jobs": "no", "gearman_connection_timeout": "100", "log_stats_interval": "5",
	"hosts": "yes", "services": "yes", "eventhandler": "yes", "notifications": "yes",
	"hostgroups": "a", "servicegroups": "b", "localhostgroups": "c", "localservicegroups": "d",
	"queue_custom_variable": "WORKER", "do_hostchecks": "no", "route_eventhandler_like_checks": "yes",
	"result_queue": "rq", "result_workers": "2", "perfdata": "yes", "perfdata_send_all": "yes",
	"perfdata_mode": "2", "host_perfdata_template": "x", "service_perfdata_template": "y",
	"orphan_host_checks": "no", "orphan_service_checks": "no", "orphan_return": "3", "orphan_grace": "5", "gearmand_down_hold": "10s",
	"accept_clear_results": "yes", "latency_flatten_window": "0", "internal_check_dummy": "no",
	"export": "q:0:5", "debug-result": "yes", "identifier": "w1", "pidfile": "/run/w.pid",
	"daemon": "yes", "job_timeout": "30", "max-age": "600", "min-worker": "5", "max-worker": "50",
	"spawn-rate": "3", "idle-timeout": "30", "max-jobs": "500", "fork_on_exec": "yes",
	"load_limit1": "4", "load_limit5": "5", "load_limit15": "6", "show_error_output": "no",
	"timeout_return": "3", "dup_results_are_passive": "no", "workaround_rc_25": "yes",
	"restrict_path": "/usr/lib", "restrict_command_characters": "$", "enable_embedded_perl": "yes",
	"use_embedded_perl_implicitly": "yes", "use_perl_cache": "no", "p1_file": "/x.pl",
	"sink-rate": "2", "backgrounding-threshold": "10", "load_cpu_multi": "1.5", "mem_limit": "50",
	"num-result-worker": "4", "dupserver_backlog_queue_size": "10", "prometheus_server": ":9100",
	"internal_negate": "no", "internal_check_nsc_web": "no", "internal_check_prometheus": "no",
	"worker_name_in_result": "on", "timeout": "5", "delimiter": ",", "host": "h", "service": "s",
	"message": "m", "returncode": "1", "active": "yes", "starttime": "1", "finishtime": "2",
	"latency": "1", "retries": "2", "retry-interval": "2",
}

// TestWorkerClassicEveryOption gives each classic option on the command
// line: the worker either acts on it (the options change) or lists it,
// alone, in the start-up line of options it does not use.
func TestWorkerClassicEveryOption(t *testing.T) {
	base := parseClassicWorker(t)
	actions := classicActions()
	for _, name := range classicconf.OptionNames() {
		t.Run(name, func(t *testing.T) {
			v, ok := classicTestValues[name]
			if !ok {
				t.Fatalf("no test value for %s", name)
			}
			got := parseClassicWorker(t, "--"+name+"="+v)
			unused := got.classicUnused
			got.classicUnused = ""
			changed := !reflect.DeepEqual(got, base)
			if _, acted := actions[name]; acted {
				if !changed || unused != "" {
					t.Errorf("--%s=%s: options changed %v, unused %q; want acted on", name, v, changed, unused)
				}
				return
			}
			if changed || !strings.HasPrefix(unused, name+": ") || strings.Contains(unused, ";") {
				t.Errorf("--%s=%s: options changed %v, unused %q; want only this option listed", name, v, changed, unused)
			}
		})
	}
}

// TestWorkerClassicUnusedLine: the start-up line lists exactly the options
// set, by file or command line, that are not acted on, and with the
// bridge transport also those only the gearman transport uses.
func TestWorkerClassicUnusedLine(t *testing.T) {
	file := t.TempDir() + "/worker.conf"
	writeTestFile(t, file, "services=yes\nspawn-rate=3\nmax-worker=20\nmax-jobs=1000\nidle-timeout=30\nkey=k\n")
	opts, _, _, err := parseWorkerFlags(t, append([]string{"--config", file, "--min-worker=5", "--workaround_rc_25=on", "--max-worker=9"}, tlsFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for part := range strings.SplitSeq(opts.classicUnused, "; ") {
		n, _, _ := strings.Cut(part, ": ")
		names = append(names, n)
	}
	// max-worker and max-jobs are at their defaults or acted on.
	want := []string{"key", "spawn-rate", "idle-timeout", "min-worker", "workaround_rc_25"}
	if !slices.Equal(names, want) {
		t.Errorf("unused options %q (line %q), want %q", names, opts.classicUnused, want)
	}
	if !strings.Contains(opts.classicUnused, "spawn-rate: goroutines, not processes") {
		t.Errorf("line %q gives no reason for spawn-rate", opts.classicUnused)
	}
}

func TestWorkerClassicFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing value", []string{"worker", "--services", "--max-worker"}, "--max-worker needs a value"},
		{"bad value", []string{"worker", "--services", "--max-worker=lots"}, "max-worker"},
		{"unknown", []string{"worker", "--services", "--max-wroker=3"}, "unknown flag"},
		{"logmode core", []string{"worker", "--transport=gearman", "--services", "--encryption=no", "--logmode=core"}, "logmode=core"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "gearbridge", tt.args...)
			if code != exitUsage || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut, exitUsage, tt.want)
			}
		})
	}
}

// TestWorkerDupResultsArePassive: the classic option decides whether the
// gearman transport's dupserver copies are passive (the default) or keep
// their type; a remote worker lists it as not its business.
func TestWorkerDupResultsArePassive(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		active bool
	}{
		{nil, false},
		{[]string{"--dup_results_are_passive=yes"}, false},
		{[]string{"--dup_results_are_passive=no"}, true},
		{[]string{"-dup_results_are_passive=off"}, true},
	} {
		o := parseClassicWorker(t, append([]string{"--encryption=no", "--services"}, tt.args...)...)
		g, err := o.gearmanOptions()
		if err != nil {
			t.Fatal(err)
		}
		if g.DupResultsActive != tt.active {
			t.Errorf("%q: DupResultsActive %v, want %v", tt.args, g.DupResultsActive, tt.active)
		}
	}
	opts, _, _, err := parseWorkerFlags(t, append([]string{"--services", "--dup_results_are_passive=no"}, tlsFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(opts.classicUnused, "dup_results_are_passive: a remote worker talks to --bridge") {
		t.Errorf("bridge transport: unused line %q", opts.classicUnused)
	}
}

// TestWorkerEmbeddedPerlNeedsPerl: --embedded-perl with an interpreter that
// does not exist is a usage error at start, not an error result per check.
func TestWorkerEmbeddedPerlNeedsPerl(t *testing.T) {
	code, _, errOut := runCmd(t, "gearbridge", "worker", "--transport=gearman", "--services", "--encryption=no",
		"--embedded-perl", "--perl", "/nonexistent/perl")
	if code != exitUsage || !strings.Contains(errOut, "embedded-perl: the Perl interpreter") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
