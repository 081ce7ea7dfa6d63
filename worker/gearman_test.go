package worker

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

const gearmanKey = "gearman_transport_key"

// startGearmanWorker runs a --transport=gearman worker on srv until the
// test ends.
func startGearmanWorker(t *testing.T, srv *gearmantest.Server, cfg Config, dups ...string) *GearmanWorker {
	t.Helper()
	return startGearmanWorkerWith(t, cfg, GearmanOptions{Servers: []string{srv.Addr()}, DupServers: dups})
}

// startGearmanWorkerWith is startGearmanWorker with the options given; the
// codec is the test key's.
func startGearmanWorkerWith(t *testing.T, cfg Config, g GearmanOptions) *GearmanWorker {
	t.Helper()
	codec, err := modgearman.NewCodec(gearmanKey, true)
	if err != nil {
		t.Fatal(err)
	}
	g.Codec = codec
	w, err := NewGearman(cfg, g, Deps{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(20 * time.Second):
			t.Error("worker did not stop")
		}
	})
	return w
}

func gearmanConfig(queues ...string) Config {
	cfg := DefaultConfig()
	cfg.Identifier = "wg1"
	cfg.Queues = queues
	cfg.Slots = 2
	cfg.DrainTimeout = 5 * time.Second
	return cfg
}

// TestGearmanTransport: jobs in the classic format from a real gearmand are
// run and answered as a classic worker answers them: a check's result on
// its result queue (and a passive copy on the dupserver), an event handler
// only run, a job that does not decode failed and counted, and the status
// queue answered.
func TestGearmanTransport(t *testing.T) {
	srv := gearmantest.Start(t)
	dup := gearmantest.Start(t)
	dir := t.TempDir()
	ran := filepath.Join(dir, "handler.log")
	w := startGearmanWorker(t, srv, gearmanConfig("service", "eventhandler"), dup.Addr())

	codec, _ := modgearman.NewCodec(gearmanKey, true)
	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	core := time.Unix(1700000000, 500000000)
	submit := func(queue string, j modgearman.Job) {
		t.Helper()
		if _, err := client.Submit(ctx, queue, "", codec.Encode(j.Marshal()), gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
	}
	submit("service", modgearman.Job{Type: modgearman.JobService, ResultQueue: "my_results", HostName: "web1",
		ServiceDescription: "disk", CoreTime: core, Timeout: 10 * time.Second,
		CommandLine: `/bin/sh -c 'printf "WARNING - 91%% used\nsecond line|used=91%%"; exit 1'`})
	submit("eventhandler", modgearman.Job{Type: modgearman.JobEventHandler, StartTime: core, CoreTime: core,
		CommandLine: "/bin/sh -c 'echo handled >> " + ran + "'"})
	if _, err := client.Submit(ctx, "service", "", []byte("not a payload"), gearman.PriorityNormal, true); err != nil {
		t.Fatal(err)
	}

	wc, err := gearman.DialWorker(ctx, srv.Addr(), gearman.WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo("my_results"); err != nil {
		t.Fatal(err)
	}
	gj, err := wc.Grab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = wc.Complete(gj.Handle, nil)
	plain, err := codec.Decode(gj.Data)
	if err != nil {
		t.Fatal(err)
	}
	r, err := modgearman.ParseResult(plain)
	if err != nil {
		t.Fatal(err)
	}
	if r.HostName != "web1" || r.ServiceDescription != "disk" || r.ReturnCode != 1 ||
		r.Output != "WARNING - 91% used\nsecond line|used=91%" || !r.CoreStartTime.Equal(core) ||
		r.Source != "Mod-Gearman Worker @ wg1" || r.Type != modgearman.ResultActive || r.StartTime.After(r.FinishTime) {
		t.Fatalf("result %+v", r)
	}
	if !strings.Contains(string(plain), `output=WARNING - 91% used\nsecond line|used=91%`) {
		t.Fatalf("output not escaped on the wire: %q", plain)
	}
	// The dupserver's copy is the same result, passive.
	dwc, err := gearman.DialWorker(ctx, dup.Addr(), gearman.WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer dwc.Close()
	if err := dwc.CanDo("my_results"); err != nil {
		t.Fatal(err)
	}
	dj, err := dwc.Grab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dplain, _ := codec.Decode(dj.Data)
	if want := strings.Replace(string(plain), "type=active", "type=passive", 1); string(dplain) != want {
		t.Fatalf("dupserver copy\n got %q\nwant %q", dplain, want)
	}

	// The status queue answers check_gearman's ping with the Go worker's
	// text.
	reply, err := client.Do(ctx, "worker_wg1", "check", []byte("check"), gearman.PriorityHigh)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(reply), "wg1 has 2 worker and is working on ") || !strings.Contains(string(reply), "Version: test|worker=2;;;2;2 jobs=") {
		t.Fatalf("status reply %q", reply)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(ran)
		if testutil.ToFloat64(w.m.invalid) == 1 && string(b) == "handled\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event handler log %q, invalid jobs %v", b, testutil.ToFloat64(w.m.invalid))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The event handler sent no result: nothing else is on my_results, and
	// the service queue is empty (the bad job was failed, not requeued).
	if extra, err := wc.TryGrab(ctx); err != nil || extra != nil {
		t.Fatalf("unexpected result %v, %v", extra, err)
	}
}

// TestGearmanTransportTakesNoMoreThanItsSlots: with 2 slots and 5 slow
// checks queued, 3 stay in gearmand for others to take.
func TestGearmanTransportTakesNoMoreThanItsSlots(t *testing.T) {
	srv := gearmantest.Start(t)
	startGearmanWorker(t, srv, gearmanConfig("service"))
	codec, _ := modgearman.NewCodec(gearmanKey, true)
	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 5 {
		j := modgearman.Job{Type: modgearman.JobService, ResultQueue: "check_results", HostName: "h", ServiceDescription: string(rune('a' + i)),
			Timeout: 10 * time.Second, CommandLine: "/bin/sleep 3"}
		if _, err := client.Submit(ctx, "service", "", codec.Encode(j.Marshal()), gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
	}
	admin := gearman.NewAdmin(srv.Addr(), gearman.AdminOptions{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := admin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range st {
			if f.Name == "service" && f.Running == 2 && f.Total == 5 {
				time.Sleep(300 * time.Millisecond) // and it stays so
				if st2, _ := admin.Status(ctx); running(st2, "service") != 2 {
					t.Fatalf("running %d after a pause, want 2", running(st2, "service"))
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v: want 2 of 5 running", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func running(st []gearman.FunctionStatus, fn string) int {
	for _, f := range st {
		if f.Name == fn {
			return f.Running
		}
	}
	return -1
}

// TestGearmanTransportSurvivesGearmandRestart: after gearmand restarts, the
// worker reconnects by itself and answers the next check.
func TestGearmanTransportSurvivesGearmandRestart(t *testing.T) {
	srv := gearmantest.Start(t)
	startGearmanWorker(t, srv, gearmanConfig("service"))
	codec, _ := modgearman.NewCodec(gearmanKey, true)
	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{WaitForReady: true})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCheck := func(host string) {
		t.Helper()
		j := modgearman.Job{Type: modgearman.JobService, ResultQueue: "check_results", HostName: host, ServiceDescription: "s",
			Timeout: 10 * time.Second, CommandLine: "/bin/echo OK " + host}
		if _, err := client.Submit(ctx, "service", "", codec.Encode(j.Marshal()), gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
		wc, err := gearman.DialWorker(ctx, srv.Addr(), gearman.WorkerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer wc.Close()
		if err := wc.CanDo("check_results"); err != nil {
			t.Fatal(err)
		}
		gj, err := wc.Grab(ctx)
		if err != nil {
			t.Fatalf("no result for %s: %v", host, err)
		}
		_ = wc.Complete(gj.Handle, nil)
		plain, _ := codec.Decode(gj.Data)
		if r, err := modgearman.ParseResult(plain); err != nil || r.HostName != host || r.Output != "OK "+host {
			t.Fatalf("result %+v, %v", r, err)
		}
	}
	runCheck("before")
	srv.Restart(t)
	runCheck("after")
}

// TestGearmanDupResultsActive: with DupResultsActive (classic
// dup_results_are_passive=no) the dupserver's copy of an active result
// stays active, byte for byte the result itself.
func TestGearmanDupResultsActive(t *testing.T) {
	srv, dup := gearmantest.Start(t), gearmantest.Start(t)
	startGearmanWorkerWith(t, gearmanConfig("service"), GearmanOptions{Servers: []string{srv.Addr()}, DupServers: []string{dup.Addr()}, DupResultsActive: true})
	codec, _ := modgearman.NewCodec(gearmanKey, true)
	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := modgearman.Job{Type: modgearman.JobService, ResultQueue: "dup_results", HostName: "web1", ServiceDescription: "ok",
		CoreTime: time.Now(), Timeout: 10 * time.Second, CommandLine: "/bin/echo fine"}
	if _, err := client.Submit(ctx, "service", "", codec.Encode(j.Marshal()), gearman.PriorityNormal, true); err != nil {
		t.Fatal(err)
	}
	grab := func(addr string) []byte {
		t.Helper()
		wc, err := gearman.DialWorker(ctx, addr, gearman.WorkerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer wc.Close()
		if err := wc.CanDo("dup_results"); err != nil {
			t.Fatal(err)
		}
		gj, err := wc.Grab(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = wc.Complete(gj.Handle, nil)
		plain, err := codec.Decode(gj.Data)
		if err != nil {
			t.Fatal(err)
		}
		return plain
	}
	plain, copied := grab(srv.Addr()), grab(dup.Addr())
	if !strings.Contains(string(plain), "type=active") || string(copied) != string(plain) {
		t.Fatalf("copy\n got %q\nwant %q", copied, plain)
	}
}

// TestGearmanTransportEmbeddedPerl: with enable_embedded_perl the worker
// runs a Perl plugin in its Perl server, counts it, adds its name as
// worker_name_in_result asks, and stops the server when it stops.
func TestGearmanTransportEmbeddedPerl(t *testing.T) {
	if err := exec.Command("perl", "-e", "1").Run(); err != nil {
		t.Skipf("SKIP: perl is needed: %v", err)
	}
	srv := gearmantest.Start(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "check_epn.pl")
	body := "#!/usr/bin/perl\n# nagios: +epn\nopen(my $fh, '<', \"/proc/\" . getppid() . \"/cmdline\") or die;\n" +
		"my $c = do { local $/; <$fh> };\nprint(($c =~ /Gearbridge::EPN/ ? 'embedded' : 'executed') . \" @ARGV|x=1\\n\");\nexit 1;\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := gearmanConfig("service")
	cfg.EmbeddedPerl = true
	cfg.WorkerNameInResult = "pre_perfdata"
	codec, _ := modgearman.NewCodec(gearmanKey, true)
	reg := prometheus.NewRegistry()
	w, err := NewGearman(cfg, GearmanOptions{Servers: []string{srv.Addr()}, Codec: codec}, Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer client.Close()
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	for i, cmd := range []string{script + " one", "/usr/lib/negate -o 2 " + script + " two"} {
		j := modgearman.Job{Type: modgearman.JobService, ResultQueue: "epn_results", HostName: "h" + strconv.Itoa(i),
			ServiceDescription: "perl", Timeout: 10 * time.Second, CommandLine: cmd}
		if _, err := client.Submit(sctx, "service", "", codec.Encode(j.Marshal()), gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
	}
	wc, err := gearman.DialWorker(sctx, srv.Addr(), gearman.WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo("epn_results"); err != nil {
		t.Fatal(err)
	}
	got := map[string]modgearman.Result{}
	for range 2 {
		gj, err := wc.Grab(sctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = wc.Complete(gj.Handle, nil)
		plain, err := codec.Decode(gj.Data)
		if err != nil {
			t.Fatal(err)
		}
		r, err := modgearman.ParseResult(plain)
		if err != nil {
			t.Fatal(err)
		}
		got[r.HostName] = r
	}
	if r := got["h0"]; r.ReturnCode != 1 || r.Output != "embedded one (worker: wg1) |x=1" {
		t.Errorf("embedded check: rc %d %q", r.ReturnCode, r.Output)
	}
	if r := got["h1"]; r.ReturnCode != 1 || r.Output != "embedded two (worker: wg1) |x=1" {
		t.Errorf("negated embedded check (WARNING stays WARNING with -o 2): rc %d %q", r.ReturnCode, r.Output)
	}
	if n := testutil.ToFloat64(mustCollector(t, reg, "gearbridge_worker_epn_checks_total")); n != 2 {
		t.Errorf("epn checks = %v, want 2", n)
	}
	servers := perlServers()
	if len(servers) == 0 {
		t.Fatal("no embedded Perl server running")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop")
	}
	for _, pid := range servers {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("Perl server %d still running after the worker stopped", pid)
		}
	}
}

// perlServers lists the embedded Perl servers this process started.
func perlServers() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		if cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); bytes.Contains(cmd, []byte("Gearbridge::EPN")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mustCollector finds the registered metric called name.
func mustCollector(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			v := mf.GetMetric()[0].GetCounter().GetValue()
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name}, func() float64 { return v })
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}
