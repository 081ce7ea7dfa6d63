package classicconf

import (
	"errors"
	"strings"
	"testing"
)

func TestSyntax(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		check func(t *testing.T, c Config)
	}{
		{"comments and blank lines", "# comment\n\n   # indented comment\n\t\ndebug=2\n", func(t *testing.T, c Config) {
			assertEqual(t, "Debug", c.Debug, 2)
		}},
		{"CRLF line ends", "debug=3\r\nlogfile=/tmp/x.log\r\n", func(t *testing.T, c Config) {
			assertEqual(t, "Debug", c.Debug, 3)
			assertEqual(t, "LogFile", c.LogFile, "/tmp/x.log")
		}},
		{"byte order mark", "\xef\xbb\xbfdebug=1\n", func(t *testing.T, c Config) {
			assertEqual(t, "Debug", c.Debug, 1)
		}},
		{"no final newline", "debug=4", func(t *testing.T, c Config) {
			assertEqual(t, "Debug", c.Debug, 4)
		}},
		{"keys are case-insensitive, keys and values trimmed", "  DEBUG =  2 \nEncryption\t=\tNo\nLogMode=SYSLOG\n", func(t *testing.T, c Config) {
			assertEqual(t, "Debug", c.Debug, 2)
			assertEqual(t, "Encryption", c.Encryption, false)
			assertEqual(t, "LogMode", c.LogMode, LogModeSyslog)
		}},
		{"value keeps further =", "key=a=b==\n", func(t *testing.T, c Config) {
			assertEqual(t, "Key", c.Key, "a=b==")
		}},
		{"later scalar wins", "debug=1\ndebug=2\n", func(t *testing.T, c Config) {
			assertEqual(t, "Debug", c.Debug, 2)
		}},
		{"inline # is kept with a warning", "logfile=/tmp/a.log # the log\n", func(t *testing.T, c Config) {
			assertEqual(t, "LogFile", c.LogFile, "/tmp/a.log # the log")
			if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], `test.conf:1: key "logfile": value contains "#"`) {
				t.Errorf("warnings = %q", c.Warnings)
			}
		}},
		{"queue_custom_variable is upper-cased", "queue_custom_variable=worker_Queue\n", func(t *testing.T, c Config) {
			assertEqual(t, "QueueCustomVariable", c.QueueCustomVariable, "WORKER_QUEUE")
		}},
		{"empty string value clears", "logfile=/x\nlogfile=\n", func(t *testing.T, c Config) {
			assertEqual(t, "LogFile", c.LogFile, "")
		}},
		{"templates expand escapes", `host_perfdata_template=a\tb\rc\nd\\te\x` + "\n", func(t *testing.T, c Config) {
			assertEqual(t, "HostPerfdataTemplate", c.HostPerfdataTemplate, "a\tb\rc\nd\\\te\\x")
		}},
		{"floats", "load_limit1=1.5\nload_limit5=2\nload_limit15=1e1\nload_cpu_multi=0.25\n", func(t *testing.T, c Config) {
			assertEqual(t, "LoadLimit1", c.LoadLimit1, 1.5)
			assertEqual(t, "LoadLimit5", c.LoadLimit5, 2.0)
			assertEqual(t, "LoadLimit15", c.LoadLimit15, 10.0)
			assertEqual(t, "LoadCPUMulti", c.LoadCPUMulti, 0.25)
		}},
		{"worker_name_in_result", "worker_name_in_result=yes\n", func(t *testing.T, c Config) {
			assertEqual(t, "WorkerNameInResult", c.WorkerNameInResult, WorkerNameOn)
		}},
		{"worker_name_in_result pre_perfdata", "worker_name_in_result=PRE_PERFDATA\n", func(t *testing.T, c Config) {
			assertEqual(t, "WorkerNameInResult", c.WorkerNameInResult, WorkerNamePrePerfdata)
		}},
		{"key and keyfile: last wins", "keyfile=/etc/k\nkey=secret\n", func(t *testing.T, c Config) {
			assertEqual(t, "Key", c.Key, "secret")
			assertEqual(t, "KeyFile", c.KeyFile, "")
		}},
		{"keyfile after key", "password=secret\npasswordfile=/etc/k\n", func(t *testing.T, c Config) {
			assertEqual(t, "Key", c.Key, "")
			assertEqual(t, "KeyFile", c.KeyFile, "/etc/k")
		}},
		{"d with a boolean is daemon", "d=yes\n", func(t *testing.T, c Config) {
			assertEqual(t, "Daemon", c.Daemon, true)
			assertEqual(t, "Delimiter", c.Delimiter, "\t")
		}},
		{"d with another value is the delimiter", "d=;\n", func(t *testing.T, c Config) {
			assertEqual(t, "Daemon", c.Daemon, false)
			assertEqual(t, "Delimiter", c.Delimiter, ";")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.text))
		})
	}
}

func TestBooleans(t *testing.T) {
	for _, v := range []string{"yes", "YES", "on", "On", "true", "TRUE", "1"} {
		c := mustParse(t, "use_uniq_jobs=no\nuse_uniq_jobs="+v)
		assertEqual(t, "use_uniq_jobs="+v, c.UseUniqJobs, true)
	}
	for _, v := range []string{"no", "No", "off", "OFF", "false", "False", "0"} {
		c := mustParse(t, "use_uniq_jobs="+v)
		assertEqual(t, "use_uniq_jobs="+v, c.UseUniqJobs, false)
	}
	for _, v := range []string{"", "2", "y", "n", "enabled", "-1", "yes please"} {
		if _, err := parseString(t, "use_uniq_jobs="+v); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("use_uniq_jobs=%q: err = %v, want ErrInvalidValue", v, err)
		}
	}
}

func TestServers(t *testing.T) {
	tests := []struct {
		text     string
		want     []string
		warnings int
	}{
		{"server=:4730", []string{"0.0.0.0:4730"}, 0},
		{"server=localhost:4730,localhost:4730,:4730,host:4730,", []string{"localhost:4730", "0.0.0.0:4730", "host:4730"}, 1},
		{"server=hostname", []string{"hostname:4730"}, 0},
		{"server=hostname:", []string{"hostname:4730"}, 0},
		{"server=a\nserver=b:1\nserver=a:4730", []string{"a:4730", "b:1"}, 1},
		{"server= a , ,b ", []string{"a:4730", "b:4730"}, 0},
		{"server=", nil, 0},
		{"server=10.0.0.1:65535", []string{"10.0.0.1:65535"}, 0},
	}
	for _, tt := range tests {
		c := mustParse(t, tt.text)
		assertEqual(t, tt.text, c.Servers, tt.want)
		if len(c.Warnings) != tt.warnings {
			t.Errorf("%q: warnings %q, want %d", tt.text, c.Warnings, tt.warnings)
		}
	}
	for _, v := range []string{"h:0", "h:65536", "h:port", "h:-1", "h:1:2", "[::1]", "a/b", "h h"} {
		if _, err := parseString(t, "dupserver="+v); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("dupserver=%q: err = %v, want ErrInvalidValue", v, err)
		}
	}
}

func TestLists(t *testing.T) {
	c := mustParse(t, "hostgroups=a,b\nhostgroup=c,,a\nhostgroups=\nservicegroups=\nrestrict_path=/a,/b\nrestrictpath=/c\n")
	assertEqual(t, "HostGroups", c.HostGroups, []string{"a", "b", "c"})
	assertEqual(t, "ServiceGroups", c.ServiceGroups, []string(nil))
	assertEqual(t, "RestrictPath", c.RestrictPath, []string{"/a", "/b", "/c"})
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `duplicate group "a"`) {
		t.Errorf("warnings = %q", c.Warnings)
	}
	// An empty value still counts as "set by hand", as the key appeared.
	assertEqual(t, "SetByHand", c.SetByHand, ExplicitOptions{HostGroups: true, ServiceGroups: true})

	name50 := strings.Repeat("g", 50)
	c = mustParse(t, "localservicegroups="+name50)
	assertEqual(t, "LocalServiceGroups", c.LocalServiceGroups, []string{name50})
	if _, err := parseString(t, "localservicegroup="+name50+"x"); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("51-character group: err = %v", err)
	}
}

func TestPerfdata(t *testing.T) {
	tests := []struct {
		text   string
		on     bool
		queues []string
	}{
		{"perfdata=yes", true, []string{"perfdata"}},
		{"perfdata=no", false, nil},
		{"perfdata=q1, q2", true, []string{"q1", "q2"}},
		{"perfdata=q1\nperfdata=yes\nperfdata=q2,q1", true, []string{"q1", "perfdata", "q2"}},
		{"perfdata=q1\nperfdata=off", false, nil},
		{"perfdata=", false, nil},
		{"perfdata=,", false, nil},
	}
	for _, tt := range tests {
		c := mustParse(t, tt.text)
		assertEqual(t, tt.text+" Perfdata", c.Perfdata, tt.on)
		assertEqual(t, tt.text+" PerfdataQueues", c.PerfdataQueues, tt.queues)
		assertEqual(t, tt.text+" SetByHand.Perfdata", c.SetByHand.Perfdata, true)
	}
}

func TestExport(t *testing.T) {
	c := mustParse(t, "export=q1:0:NEBCALLBACK_LOG_DATA\nexport= q2 : -1 : 7, NEBCALLBACK_PROCESS_DATA ,\n")
	assertEqual(t, "Export", c.Export, []ExportSpec{
		{Queue: "q1", ReturnCode: 0, Callbacks: []string{"NEBCALLBACK_LOG_DATA"}},
		{Queue: "q2", ReturnCode: -1, Callbacks: []string{"7", "NEBCALLBACK_PROCESS_DATA"}},
	})
	assertEqual(t, "String", c.Export[1].String(), "q2:-1:7,NEBCALLBACK_PROCESS_DATA")
	for _, v := range []string{"", "q", "q:0", "q:0:", ":0:1", "q:x:1", "q:0:nebcallback_log_data", "q:0:NEBCALLBACK_", "q:0:1a", "q:0:NEBCALLBACK_LOG-DATA"} {
		if _, err := parseString(t, "export="+v); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("export=%q: err = %v, want ErrInvalidValue", v, err)
		}
	}
}

func TestRanges(t *testing.T) {
	good := []string{"debug=0", "debug=5", "orphan_return=0", "orphan_return=3", "timeout_return=0",
		"perfdata_mode=2", "gearman_connection_timeout=-1", "latency_flatten_window=-5", "mem_limit=100",
		"max-worker=1", "min-worker=0", "returncode=3", "r=0", "starttime=0", "retry-interval=0.5"}
	for _, line := range good {
		if _, err := parseString(t, line); err != nil {
			t.Errorf("%s: %v", line, err)
		}
	}
	bad := []string{"debug=6", "debug=-1", "orphan_return=4", "timeout_return=-1", "perfdata_mode=0",
		"log_stats_interval=-1", "mem_limit=101", "max-worker=0", "max-age=-1", "returncode=-1",
		"starttime=-1", "latency=Inf", "load_limit1=0x10", "load_limit5=1_0", "debug=1.0", "debug=", "job_timeout=99999999999999999999"}
	for _, line := range bad {
		if _, err := parseString(t, line); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%s: err = %v, want ErrInvalidValue", line, err)
		}
	}
}

// TestAliases checks that every alias sets the same field as its option.
func TestAliases(t *testing.T) {
	tests := []struct{ alias, name, value string }{
		{"password", "key", "s3cret"},
		{"passwordfile", "keyfile", "/etc/k"},
		{"eventhandlers", "eventhandler", "yes"},
		{"notification", "notifications", "yes"},
		{"hostgroup", "hostgroups", "a,b"},
		{"servicegroup", "servicegroups", "a,b"},
		{"localhostgroup", "localhostgroups", "a,b"},
		{"localservicegroup", "localservicegroups", "a,b"},
		{"debug_result", "debug-result", "yes"},
		{"d", "daemon", "yes"},
		{"restrictpath", "restrict_path", "/usr/lib"},
		{"m", "message", "all fine"},
		{"r", "returncode", "2"},
		{"return_code", "returncode", "2"},
		{"t", "timeout", "30"},
		// The '_' spelling of options the table spells with '-'.
		{"max_age", "max-age", "5"},
		{"min_worker", "min-worker", "5"},
		{"max_worker", "max-worker", "5"},
		{"spawn_rate", "spawn-rate", "5"},
		{"idle_timeout", "idle-timeout", "5"},
		{"max_jobs", "max-jobs", "5"},
		{"sink_rate", "sink-rate", "5"},
		{"backgrounding_threshold", "backgrounding-threshold", "5"},
		{"num_result_worker", "num-result-worker", "5"},
		{"retry_interval", "retry-interval", "5"},
	}
	for _, tt := range tests {
		t.Run(tt.alias, func(t *testing.T) {
			a := mustParse(t, tt.alias+"="+tt.value)
			n := mustParse(t, tt.name+"="+tt.value)
			if a.SetByHand != n.SetByHand {
				t.Errorf("SetByHand differs: %+v vs %+v", a.SetByHand, n.SetByHand)
			}
			assertEqual(t, tt.alias+" vs "+tt.name, comparable(a), comparable(n))
			assertEqual(t, "changes something", format(n) != "", true)
		})
	}
	// Options spelled with '_' are not accepted with '-'.
	for _, k := range []string{"job-timeout", "result-queue", "use-uniq-jobs", "load-limit1"} {
		if _, err := parseString(t, k+"=1"); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "did you mean") {
			t.Errorf("%s: err = %v, want ErrUnknownKey with a hint", k, err)
		}
	}
}

func TestBrokerArgs(t *testing.T) {
	c, err := ParseBrokerArgs("config=testdata/good/mod_gearman_neb.conf  server=extra:4731 encryption=no --perfdata_mode=2 orphan_host_checks")
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "Servers", c.Servers, []string{"localhost:4730", "gearmand2:4730", "extra:4731"})
	assertEqual(t, "Encryption", c.Encryption, false)
	assertEqual(t, "PerfdataMode", c.PerfdataMode, 2)
	assertEqual(t, "OrphanHostChecks", c.OrphanHostChecks, true)
	assertEqual(t, "HostGroups from the included directory", c.HostGroups, []string{"linux", "windows", "dmz"})

	_, err = ParseBrokerArgs("server=a  debug=1 hosts=maybe")
	var e *Error
	if !errors.As(err, &e) || e.File != SourceBrokerLine || e.Line != 3 || e.Key != "hosts" {
		t.Fatalf("err = %#v, want broker line argument 3, key hosts", err)
	}
	assertEqual(t, "message", err.Error(), `broker line:3: key "hosts": value "maybe" is not a boolean (want yes/on/true/1 or no/off/false/0)`)
}

func TestArgs(t *testing.T) {
	c, err := ParseArgs([]string{"--server=gm1", "-r=2", "--active", "-d=;", "--m=some text", "host=web", "-t=5", "--HOSTS", "--config=testdata/good/send_gearman.conf"})
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "Servers", c.Servers, []string{"gm1:4730", "localhost:4730"})
	// The file came last, so its scalars win.
	assertEqual(t, "ReturnCode", c.ReturnCode, 0)
	assertEqual(t, "Active", c.Active, true)
	assertEqual(t, "Hosts", c.Hosts, true)

	c, err = ParseArgs([]string{"-d", "--debug-result", "--max_age=7", "--r=3", "--message=a b  c"})
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "Daemon", c.Daemon, true)
	assertEqual(t, "DebugResult", c.DebugResult, true)
	assertEqual(t, "MaxAge", c.MaxAge, 7)
	assertEqual(t, "ReturnCode", c.ReturnCode, 3)
	assertEqual(t, "Message", c.Message, "a b  c")

	bad := []struct {
		args []string
		line int
		key  string
		kind error
	}{
		{[]string{"--debug"}, 1, "debug", ErrSyntax},
		{[]string{"--hosts", "-r", "0"}, 2, "r", ErrSyntax},
		{[]string{"--help"}, 1, "help", ErrUnknownKey},
		{[]string{"testcmd"}, 1, "testcmd", ErrUnknownKey},
		{[]string{"--active", "--"}, 2, "", ErrSyntax},
		{[]string{""}, 1, "", ErrSyntax},
		{[]string{"--config"}, 1, "config", ErrSyntax},
		{[]string{"-r=4"}, 1, "r", ErrInvalidValue},
		{[]string{"--config=testdata/bad/out_of_range.conf"}, 4, "orphan_return", ErrInvalidValue},
	}
	for _, tt := range bad {
		_, err := ParseArgs(tt.args)
		var e *Error
		if !errors.As(err, &e) || e.Line != tt.line || e.Key != tt.key || !errors.Is(err, tt.kind) {
			t.Errorf("%q: err = %v, want line %d key %q kind %v", tt.args, err, tt.line, tt.key, tt.kind)
		}
	}
}

// TestParserMerge follows a NEB start: the file named on the broker line,
// then the broker line, then overrides. Scalars are replaced, lists grow.
func TestParserMerge(t *testing.T) {
	p := NewParser()
	if err := p.ParseFile("testdata/good/mod_gearman_neb.conf"); err != nil {
		t.Fatal(err)
	}
	if err := p.ParseBrokerArgs("debug=2 hostgroups=extra"); err != nil {
		t.Fatal(err)
	}
	if err := p.ParseArgs([]string{"--debug=3", "--server=gm9"}); err != nil {
		t.Fatal(err)
	}
	c := p.Config()
	assertEqual(t, "Debug", c.Debug, 3)
	assertEqual(t, "HostGroups", c.HostGroups, []string{"linux", "windows", "dmz", "extra"})
	assertEqual(t, "Servers", c.Servers, []string{"localhost:4730", "gearmand2:4730", "gm9:4730"})
}

// TestParserAtomic checks that a failing source leaves no trace, even when
// lines before the error were fine.
func TestParserAtomic(t *testing.T) {
	p := &Parser{FS: noFS{}}
	if err := p.Parse(strings.NewReader("server=a\ndebug=1\nhostgroups=g1"), "first.conf"); err != nil {
		t.Fatal(err)
	}
	before := p.Config()
	err := p.Parse(strings.NewReader("server=b\ndebug=2\nhostgroups=g2\nperfdata=yes\nserver=a,a\nnope=1"), "second.conf")
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
	assertEqual(t, "config after failed source", p.Config(), before)

	var zero Parser
	assertEqual(t, "zero Parser starts from Defaults", zero.Config(), Defaults())
}

func TestConfigSet(t *testing.T) {
	c := Defaults()
	if err := c.Set(" Server ", "a,b:1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("hosts", "on"); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "Servers", c.Servers, []string{"a:4730", "b:1"})
	assertEqual(t, "SetByHand.Hosts", c.SetByHand.Hosts, true)

	before := c.clone()
	for _, kv := range [][2]string{{"server", "c,d:x"}, {"config", "/etc/x.conf"}, {"nope", "1"}, {"", "1"}, {"orphan_return", "9"}} {
		err := c.Set(kv[0], kv[1])
		var e *Error
		if !errors.As(err, &e) || e.Key != kv[0] || e.File != "" {
			t.Errorf("Set(%q, %q) = %v, want *Error for the key", kv[0], kv[1], err)
		}
	}
	assertEqual(t, "config after failed Set", c, before)

	if err := c.Set("server", "a"); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "warnings", c.Warnings, []string{`key "server": duplicate server "a:4730" ignored`})
}

// TestNoSharedArrays guards against two copies of a Config sharing the
// array behind a list.
func TestNoSharedArrays(t *testing.T) {
	base := mustParse(t, "server=a,b,c\nserver=d")
	a, b := base, base
	if err := a.Set("server", "x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Set("server", "y"); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "a.Servers", a.Servers, []string{"a:4730", "b:4730", "c:4730", "d:4730", "x:4730"})
	assertEqual(t, "b.Servers", b.Servers, []string{"a:4730", "b:4730", "c:4730", "d:4730", "y:4730"})
	assertEqual(t, "base.Servers", base.Servers, []string{"a:4730", "b:4730", "c:4730", "d:4730"})
}

func TestRoleDefaults(t *testing.T) {
	t.Run("NEB without queue options", func(t *testing.T) {
		c := mustParse(t, "server=a")
		c.ApplyNEBDefaults()
		assertEqual(t, "hosts/services/eventhandler/notifications",
			[]bool{c.Hosts, c.Services, c.EventHandler, c.Notifications}, []bool{true, true, true, false})
	})
	t.Run("worker without queue options", func(t *testing.T) {
		c := mustParse(t, "server=a")
		c.ApplyWorkerDefaults()
		assertEqual(t, "hosts/services/eventhandler/notifications",
			[]bool{c.Hosts, c.Services, c.EventHandler, c.Notifications}, []bool{true, true, true, true})
	})
	for _, set := range []string{"hosts=no", "services=yes", "eventhandlers=no", "notification=yes", "perfdata=yes", "hostgroup=g", "servicegroups="} {
		t.Run("queues set by hand: "+set, func(t *testing.T) {
			c := mustParse(t, set)
			want := []bool{c.Hosts, c.Services, c.EventHandler, c.Notifications}
			c.ApplyNEBDefaults()
			c.ApplyWorkerDefaults()
			assertEqual(t, "queue options unchanged", []bool{c.Hosts, c.Services, c.EventHandler, c.Notifications}, want)
		})
	}
	t.Run("worker caps min-worker", func(t *testing.T) {
		c := mustParse(t, "min-worker=30\nmax-worker=10\nhosts=yes")
		c.ApplyWorkerDefaults()
		assertEqual(t, "MinWorker", c.MinWorker, 10)
		assertEqual(t, "warnings", len(c.Warnings), 1)
	})
	t.Run("send_gearman encryption follows the key", func(t *testing.T) {
		for _, tt := range []struct {
			text string
			want bool
		}{{"", false}, {"key=x", true}, {"keyfile=/k", true}, {"encryption=yes", true}, {"key=x\nencryption=no", false}} {
			c := mustParse(t, tt.text)
			c.ApplySendGearmanDefaults()
			assertEqual(t, tt.text, c.Encryption, tt.want)
		}
	})
}
