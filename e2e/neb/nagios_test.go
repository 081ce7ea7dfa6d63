package nebe2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/internal/nagios"
	"github.com/gearbridge/gearbridge/modgearman"
	"github.com/gearbridge/gearbridge/plugin"
)

// installNagios returns the nagios4 binary unpacked by scripts/install-nagios.sh.
func installNagios(t *testing.T) string {
	t.Helper()
	p, err := nagios.Find(context.Background(), filepath.Join(repoRoot(), "scripts", "install-nagios.sh"))
	if err != nil {
		msg := "SKIP: " + err.Error()
		if os.Geteuid() == 0 {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

const nagiosCheck = `#!/bin/sh
# usage: check_e2e ID RC
echo "E2E $1 rc=$2 runner=$E2E_RUNNER|v=$2"
exit "$2"
`

const nagiosHandler = `#!/bin/sh
echo "$1 $2 runner=$E2E_RUNNER" >> "$(dirname "$0")/handlers.log"
`

type e2eService struct {
	host, name, extra string
	rc                int
	queue             string // expected queue; "" = run by the core
	output            string // expected output prefix
}

// Worker modes of the end-to-end test.
const (
	modePlain  = "plain"  // a Gearman worker inside the test
	modeBridge = "bridge" // gearbridge bridge + remote gearbridge worker
)

func e2eServices(mode string) []e2eService {
	custom := "custom_q"
	if mode == modeBridge {
		custom = "hostgroup_custom" // what a remote worker can serve
	}
	var s []e2eService
	for i := 1; i <= 15; i++ {
		s = append(s, e2eService{host: "h1", name: fmt.Sprintf("s%02d", i), queue: "service"})
	}
	s[4].rc, s[4].extra = 2, "event_handler handler_e2e\n  event_handler_enabled 1"
	s = append(s,
		e2eService{host: "h1", name: "s16", extra: "servicegroups sg", queue: "servicegroup_sg"},
		e2eService{host: "h1", name: "s17", extra: "servicegroups sg", queue: "servicegroup_sg"},
		e2eService{host: "h1", name: "s18", extra: "_WORKER " + custom, queue: custom},
		e2eService{host: "h1", name: "s19", extra: "servicegroups localsg"},
		e2eService{host: "h1", name: "s20", output: "OK: internal"},
		e2eService{host: "h2", name: "s21", queue: "hostgroup_hg"},
	)
	for i := range s {
		if s[i].output != "" {
			continue
		}
		s[i].output = fmt.Sprintf("E2E %s rc=%d runner=", s[i].name, s[i].rc)
		switch {
		case s[i].queue == "":
		case mode == modePlain:
			s[i].output = "[via " + s[i].queue + "] " + s[i].output
		default:
			s[i].output += "remote"
		}
	}
	return s
}

func writeNagiosConfig(t *testing.T, mode, dir, module, addr string) string {
	t.Helper()
	check, handler := filepath.Join(dir, "check_e2e"), filepath.Join(dir, "handler_e2e")
	must(t, os.WriteFile(check, []byte(nagiosCheck), 0o755))
	must(t, os.WriteFile(handler, []byte(nagiosHandler), 0o755))

	var obj strings.Builder
	obj.WriteString(nagios.QuietObjects("admin"))
	fmt.Fprintf(&obj, `define command {
  command_name check_e2e
  command_line %s $ARG1$ $ARG2$
}
define command {
  command_name check_dummy
  command_line /usr/lib/nagios/plugins/check_dummy $ARG1$ $ARG2$
}
define command {
  command_name handler_e2e
  command_line %s $SERVICEDESC$ $SERVICESTATE$
}
define hostgroup {
  hostgroup_name hg
}
define servicegroup {
  servicegroup_name sg
}
define servicegroup {
  servicegroup_name localsg
}
define host {
  host_name h1
  address 127.0.0.1
  check_command check_e2e!h1!0
  check_interval 2
  retry_interval 1
  max_check_attempts 1
  check_period 24x7
  contacts admin
  notification_period 24x7
}
define host {
  host_name h2
  address 127.0.0.1
  hostgroups hg
  check_command check_e2e!h2!0
  check_interval 2
  retry_interval 1
  max_check_attempts 1
  check_period 24x7
  contacts admin
  notification_period 24x7
}
`, check, handler)
	for _, s := range e2eServices(mode) {
		cmd := fmt.Sprintf("check_e2e!%s!%d", s.name, s.rc)
		if s.name == "s20" {
			cmd = "check_dummy!0!internal"
		}
		fmt.Fprintf(&obj, `define service {
  host_name %s
  service_description %s
  check_command %s
  check_interval 2
  retry_interval 1
  max_check_attempts 1
  check_period 24x7
  notification_period 24x7
  contacts admin
  %s
}
`, s.host, s.name, cmd, s.extra)
	}
	must(t, os.WriteFile(filepath.Join(dir, "objects.cfg"), []byte(obj.String()), 0o644))

	// A classic mod_gearman_neb.conf, read unchanged through config=.
	neb := fmt.Sprintf(`# classic NEB configuration
server=%s
key=%s
encryption=yes
services=yes
eventhandler=yes
hostgroups=hg
servicegroups=sg
localservicegroups=localsg
queue_custom_variable=WORKER
result_queue=check_results
result_workers=2
perfdata=yes
perfdata_mode=1
log_stats_interval=5
`, addr, key)
	must(t, os.WriteFile(filepath.Join(dir, "mod_gearman_neb.conf"), []byte(neb), 0o644))

	path, err := nagios.WriteMainConfig(dir, module, "config="+filepath.Join(dir, "mod_gearman_neb.conf"),
		"check_external_commands=1",
		"log_event_handlers=1",
		"service_interleave_factor=1",
		"enable_event_handlers=1",
		"execute_service_checks=1",
		"execute_host_checks=1",
		"check_for_orphaned_services=1",
		"check_for_orphaned_hosts=1",
		"process_performance_data=1")
	must(t, err)
	return path
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// startWorker is a plain Gearman-side worker: it runs the job's command
// with package plugin and sends a classic result, tagging the output with
// the queue it came from.
func startWorker(t *testing.T, addr string, extraQueues ...string) {
	t.Helper()
	codec, _ := modgearman.NewCodec(key, true)
	client := gearman.NewClient([]string{addr}, gearman.ClientOptions{WaitForReady: true})
	queues := append([]string{"service", "servicegroup_sg", "custom_q", "hostgroup_hg", "eventhandler"}, extraQueues...)
	w := gearman.NewWorker([]string{addr}, queues, func(ctx context.Context, job *gearman.Job) ([]byte, error) {
		plain, err := codec.Decode(job.Data)
		if err != nil {
			return nil, err
		}
		j, err := modgearman.ParseJob(plain)
		if err != nil {
			return nil, err
		}
		res := plugin.Run(ctx, j.CommandLine, plugin.DefaultOptions())
		if j.Type == modgearman.JobEventHandler {
			return nil, nil
		}
		r := modgearman.Result{Type: modgearman.ResultActive, HostName: j.HostName, ServiceDescription: j.ServiceDescription,
			CoreStartTime: j.CoreTime, StartTime: res.StartTime, FinishTime: res.FinishTime, ReturnCode: res.ReturnCode,
			ExitedOK: true, Source: "e2e worker", Output: "[via " + job.Function + "] " + res.Output}
		// Like the Go worker, retry sending the result while gearmand is
		// away; a lost result leaves the check executing until the core's
		// orphan detection gives up on it.
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for {
			_, err = client.Submit(sctx, j.ResultQueue, "", codec.Encode(r.Marshal()), gearman.PriorityNormal, true)
			if err == nil || sctx.Err() != nil {
				return nil, err
			}
			time.Sleep(200 * time.Millisecond)
		}
	}, gearman.WorkerOptions{Connections: 2, InFlight: 4})
	t.Cleanup(func() { _ = w.Close(); _ = client.Close() })
}

// gearmandAddr names the gearmand whose queues a failing waitStatus shows.
var gearmandAddr string

// gearadmin returns gearmand's queue and worker tables, for failure logs.
func gearadmin(addr string) string {
	host, port, _ := strings.Cut(addr, ":")
	var b strings.Builder
	for _, what := range []string{"--status", "--workers"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, "gearadmin", what, "-h", host, "-p", port).CombinedOutput()
		cancel()
		fmt.Fprintf(&b, "gearadmin %s (%v):\n%s", what, err, out)
	}
	return b.String()
}

// waitStatus waits until every service satisfies ok, or fails listing the
// ones that do not.
func waitStatus(t *testing.T, mode, path string, timeout time.Duration, ok func(s e2eService, st nagios.Status) bool) map[string]nagios.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := nagios.ReadStatus(path)
		var bad []string
		for _, s := range e2eServices(mode) {
			if o := st[s.host+"/"+s.name]; !ok(s, o) {
				bad = append(bad, fmt.Sprintf("%s/%s=%q@%d", s.host, s.name, o.Output, o.LastCheck))
			}
		}
		if len(bad) == 0 {
			return st
		}
		if time.Now().After(deadline) {
			if gearmandAddr != "" {
				t.Logf("gearmand at the failure:\n%s", gearadmin(gearmandAddr))
			}
			t.Fatalf("status.dat after %v: not as expected: %s", timeout, strings.Join(bad, ", "))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestNagiosEndToEnd runs the real Nagios 4.4.6 with the module, 2 hosts
// and 21 services (event handler, hostgroup, servicegroup, custom-variable
// and local routes, internal check_dummy, perfdata), with checks executed
// (plain) by a Gearman worker inside the test and (bridge) by the gearbridge
// bridge and a remote gearbridge worker. Faults: SIGHUP mid-run, gearmand
// stopped for 10 s, and (bridge) the bridge killed.
func TestNagiosEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: the Nagios end-to-end test takes about two minutes")
	}
	for _, mode := range []string{modePlain, modeBridge} {
		t.Run(mode, func(t *testing.T) { testNagios(t, mode) })
	}
}

func testNagios(t *testing.T, mode string) {
	nagiosBin := installNagios(t)
	mod := filepath.Join(artifacts(t), "mod_nagios4.so")
	srv := gearmantest.Start(t)
	gearmandAddr = srv.Addr()
	t.Cleanup(func() { gearmandAddr = "" })
	dir := t.TempDir()
	cfg := writeNagiosConfig(t, mode, dir, mod, srv.Addr())
	var bridge *bridgeCluster
	if mode == modePlain {
		startWorker(t, srv.Addr())
	} else {
		bridge = startBridgeCluster(t, srv.Addr())
	}

	cmd := exec.Command(nagiosBin, cfg)
	cmd.Dir = dir
	cmd.Env = withoutEnv(os.Environ(), "E2E_RUNNER")
	logf, _ := os.Create(filepath.Join(dir, "stdout.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "nagios.log"))
			o, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			t.Logf("nagios.log:\n%s\nstdout:\n%s", tail(string(b), 80), tail(string(o), 40))
		}
	})
	status := filepath.Join(dir, "status.dat")
	expected := func(s e2eService, o nagios.Status) bool { return strings.HasPrefix(o.Output, s.output) }

	// (b) every service shows the worker's output (or the core's / the
	// module's own for the local and check_dummy services), with sane latency.
	st := waitStatus(t, mode, status, 60*time.Second, expected)
	for _, k := range []string{"h1/s01", "h1/s05", "h1/s16", "h1/s18", "h1/s19", "h1/s20", "h2/s21"} {
		t.Logf("%s: %q latency %.3f s", k, st[k].Output, st[k].Latency)
	}
	for k, o := range st {
		if o.Latency < 0 || o.Latency > 5 {
			t.Errorf("%s latency %v", k, o.Latency)
		}
	}
	// Host check through the hostgroup queue.
	deadline := time.Now().Add(20 * time.Second)
	h2 := "[via hostgroup_hg] E2E h2 rc=0 runner="
	if mode == modeBridge {
		h2 = "E2E h2 rc=0 runner=remote"
	}
	for !strings.HasPrefix(nagios.ReadStatus(status)["h2/"].Output, h2) {
		if time.Now().After(deadline) {
			t.Fatalf("h2 host check: %+v", nagios.ReadStatus(status)["h2/"])
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The event handler of the CRITICAL service ran on the worker.
	deadline = time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "handlers.log"))
		if strings.Contains(string(b), "s05 CRITICAL runner="+map[string]string{modePlain: "\n", modeBridge: "remote"}[mode]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event handler of s05 did not run on the worker: %q", b)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Perfdata jobs (overwrite mode: one per object) carry the worker's
	// performance data.
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	pw, err := gearman.DialWorker(pctx, srv.Addr(), gearman.WorkerOptions{})
	must(t, err)
	must(t, pw.CanDo("perfdata"))
	pj, err := pw.Grab(pctx)
	must(t, err)
	codec, _ := modgearman.NewCodec(key, true)
	plain, err := codec.DecodeRaw(pj.Data)
	if err != nil || !strings.Contains(string(plain), "PERFDATA::v=") || !strings.Contains(string(plain), "HOSTNAME::h") {
		t.Errorf("perfdata job %q %v", plain, err)
	}
	t.Logf("perfdata job: %q", plain)
	_ = pw.Close()

	// SIGHUP mid-run: checks keep flowing.
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	hup := time.Now().Unix()
	waitStatus(t, mode, status, 30*time.Second, func(s e2eService, o nagios.Status) bool {
		return expected(s, o) && o.LastCheck > hup+1
	})
	t.Log("checks continue after SIGHUP")

	// gearmand stopped for 10 s: the core keeps its schedule (the local
	// service keeps being checked on time), then distributed checks resume.
	srv.Stop()
	down := time.Now().Unix()
	time.Sleep(10 * time.Second)
	local := nagios.ReadStatus(status)["h1/s19"]
	if local.LastCheck < down+6 || !strings.HasPrefix(local.Output, "E2E s19 rc=0 runner=") {
		t.Errorf("local service not checked on time while gearmand was down: %+v (down at %d)", local, down)
	}
	if o := nagios.ReadStatus(status)["h1/s01"]; !strings.Contains(o.Output, "not submitted") {
		t.Logf("s01 during the outage: %+v", o)
	}
	srv.Restart(t)
	back := time.Now().Unix()
	waitStatus(t, mode, status, 40*time.Second, func(s e2eService, o nagios.Status) bool {
		return expected(s, o) && o.LastCheck > back
	})
	t.Log("checks resume after gearmand returns")

	if bridge != nil {
		// Kill the bridge: the core and the module do not notice; jobs wait
		// in gearmand (one per service, thanks to the unique ids) and are
		// run once a bridge is back.
		bridge.kill(t)
		killed := time.Now().Unix()
		time.Sleep(5 * time.Second)
		if local := nagios.ReadStatus(status)["h1/s19"]; local.LastCheck < killed+2 {
			t.Errorf("local service not checked while the bridge was down: %+v", local)
		}
		bridge.restart(t)
		back := time.Now().Unix()
		waitStatus(t, mode, status, 60*time.Second, func(s e2eService, o nagios.Status) bool {
			return expected(s, o) && o.LastCheck > back
		})
		t.Log("checks resume after the bridge was killed and restarted")
	}

	select {
	case err := <-exited:
		t.Fatalf("nagios exited: %v", err)
	default:
	}
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("nagios exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("nagios did not stop on SIGTERM")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "nagios.log"))
	if strings.Contains(string(b), "SIGSEGV") {
		t.Error("nagios.log reports a SIGSEGV")
	}
	for _, want := range []string{"gearbridge-neb 0.1 initialized for Nagios 4 (init #1)", "(init #2)", "Caught SIGHUP", "Successfully shutdown",
		"statistics: "} {
		if !strings.Contains(string(b), want) {
			t.Errorf("nagios.log lacks %q", want)
		}
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func withoutEnv(env []string, name string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}
