package classicconf

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestSampleFilesUseEveryOption makes sure the sample files document every
// option and alias of the table: each must appear as a key somewhere.
func TestSampleFilesUseEveryOption(t *testing.T) {
	used := map[string]bool{}
	err := filepath.WalkDir("testdata/good", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasSuffix(path, ".conf") && !strings.HasSuffix(path, ".cfg") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = trim(line)
			if line == "" || line[0] == '#' {
				continue
			}
			key, _, _ := strings.Cut(line, "=")
			used[asciiLower(trim(key))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range optionTable() {
		for _, name := range append([]string{o.name}, o.aliases...) {
			if !used[name] {
				t.Errorf("option %q does not appear in any sample file under testdata/good", name)
			}
		}
	}
}

func TestSampleNEB(t *testing.T) {
	got, err := ParseFile("testdata/good/mod_gearman_neb.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.LogFile = "/var/log/mod_gearman/mod_gearman_neb.log"
	want.Servers = []string{"localhost:4730", "gearmand2:4730"}
	want.Key = "should_be_changed"
	want.Hosts, want.Services, want.EventHandler = true, true, true
	want.QueueCustomVariable = "WORKER"
	want.Perfdata = true
	want.PerfdataQueues = []string{"perfdata", "nagflux"}
	want.HostPerfdataTemplate = "DATATYPE::HOSTPERFDATA\tTIMET::$TIMET$\tHOSTNAME::$HOSTNAME$\tHOSTPERFDATA::$HOSTPERFDATA$"
	want.ServicePerfdataTemplate = "DATATYPE::SERVICEPERFDATA\tTIMET::$TIMET$\tHOSTNAME::$HOSTNAME$\tSERVICEDESC::$SERVICEDESC$\tSERVICEPERFDATA::$SERVICEPERFDATA$"
	want.HostGroups = []string{"linux", "windows", "dmz"}
	want.ServiceGroups = []string{"databases", "web"}
	want.LocalHostGroups = []string{"core-routers", "firewalls"}
	want.LocalServiceGroups = []string{"backups", "maintenance"}
	want.Export = []ExportSpec{
		{Queue: "log_queue", Callbacks: []string{"NEBCALLBACK_LOG_DATA"}},
		{Queue: "events", Callbacks: []string{"NEBCALLBACK_TIMED_EVENT_DATA", "7"}},
	}
	want.SetByHand = ExplicitOptions{Hosts: true, Services: true, EventHandler: true, Notifications: true,
		Perfdata: true, HostGroups: true, ServiceGroups: true, Encryption: true}
	assertConfig(t, got, want)

	got.ApplyNEBDefaults()
	if err := got.Validate(RoleNEB); err != nil {
		t.Errorf("Validate(RoleNEB): %v", err)
	}
}

func TestSampleWorker(t *testing.T) {
	got, err := ParseFile("testdata/good/mod_gearman_worker.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Servers = []string{"gearmand1:4730", "gearmand2:4730"}
	want.GearmanConnectionTimeout = 3000
	want.Debug = 1
	want.LogMode = LogModeFile
	want.LogFile = "/var/log/mod_gearman/worker.log"
	want.KeyFile = "/etc/mod_gearman/secret.key" // given after passwordfile, so it wins
	want.Identifier = "worker-01"
	want.PidFile = "/run/mod_gearman/worker.pid"
	want.Hosts, want.Services, want.EventHandler, want.Notifications = true, true, true, true
	want.HostGroups = []string{"linux"}
	want.ServiceGroups = []string{"databases", "web"}
	want.DupServers = []string{"backup-site:4731"}
	want.DebugResult = true
	want.TimeoutReturn = 3 // set in the file; the default is 2
	want.MinWorker, want.MaxWorker, want.IdleTimeout = 5, 50, 30
	want.RestrictPath = []string{"/usr/lib/nagios/plugins/", "/opt/plugins/"}
	want.P1File = "/usr/share/mod_gearman/mod_gearman_p1.pl"
	want.NumResultWorker = 4
	want.PrometheusServer = "127.0.0.1:9050"
	want.InternalCheckPrometheus = false
	want.WorkerNameInResult = WorkerNamePrePerfdata
	want.SetByHand = ExplicitOptions{Hosts: true, Services: true, EventHandler: true, Notifications: true,
		HostGroups: true, ServiceGroups: true, Encryption: true}
	assertConfig(t, got, want)

	got.ApplyWorkerDefaults()
	if err := got.Validate(RoleWorker); err != nil {
		t.Errorf("Validate(RoleWorker): %v", err)
	}
}

// TestSampleDashed: a file may spell options as on the command line,
// --key=value or a bare --flag, as the classic parser allows.
func TestSampleDashed(t *testing.T) {
	got, err := ParseFile("testdata/good/dashed.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Servers = []string{"gearmand:4730"}
	want.KeyFile = "/etc/mod_gearman/secret.key"
	want.Identifier = "w1"
	want.Hosts, want.Services = true, true
	want.MaxWorker = 5
	want.JobTimeout = 30
	want.SetByHand = ExplicitOptions{Hosts: true, Services: true}
	assertConfig(t, got, want)
}

func TestSampleSendGearman(t *testing.T) {
	got, err := ParseFile("testdata/good/send_gearman.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Servers = []string{"localhost:4730"}
	want.DupServers = []string{"backup-site:4730"}
	want.Key = "should_be_changed"
	want.Timeout = 20
	want.Delimiter = ";"
	want.Host, want.Service = "web01", "HTTP"
	want.Message = "HTTP OK: 200 in 0.1 s"
	want.ReturnCode = 0
	want.Active = true
	want.StartTime, want.FinishTime, want.Latency = 1700000000.5, 1700000001.25, 0.25
	want.Retries, want.RetryInterval = 3, 1.5
	assertConfig(t, got, want)

	got.ApplySendGearmanDefaults()
	if !got.Encryption {
		t.Error("send_gearman with a key: encryption should be on")
	}
	if err := got.Validate(RoleSendGearman); err != nil {
		t.Errorf("Validate(RoleSendGearman): %v", err)
	}
}

// assertConfig compares field by field, so a failure names the field.
func assertConfig(t *testing.T, got, want Config) {
	t.Helper()
	if len(got.Warnings) != 0 {
		t.Errorf("unexpected warnings: %q", got.Warnings)
	}
	got.Warnings = nil
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		name := gv.Type().Field(i).Name
		assertEqual(t, name, gv.Field(i).Interface(), wv.Field(i).Interface())
	}
}
