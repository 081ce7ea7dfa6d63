package nebe2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/internal/nagios"
)

// smallNagios is a real Nagios 4.4.6 with the module and three objects: the
// host h1 and the service "local" (both run by the core) and the service
// "lost", routed to the queue "service".
type smallNagios struct {
	srv    *gearmantest.Server
	dir    string
	start  time.Time
	cmd    *exec.Cmd
	exited chan error
}

// startSmallNagios starts it with nebConf as the classic configuration file
// (server and key are added) and extra lines for nagios.cfg.
func startSmallNagios(t *testing.T, nebConf string, extra ...string) *smallNagios {
	t.Helper()
	return startNagiosWith(t, smallObjects, "services=yes\nlocalservicegroups=localsg\nresult_workers=1\n"+nebConf, extra...)
}

// startNagiosWith starts a real Nagios 4.4.6 with the module, a fresh
// gearmand, the objects objects(dir) returns (the check script check_e2e is
// in dir), the classic configuration nebConf (server and key added) and
// extra lines for nagios.cfg.
func startNagiosWith(t *testing.T, objects func(dir string) string, nebConf string, extra ...string) *smallNagios {
	t.Helper()
	return startNagiosOn(t, gearmantest.Start(t), objects, nebConf, extra...)
}

// startNagiosOn is startNagiosWith on the gearmand srv.
func startNagiosOn(t *testing.T, srv *gearmantest.Server, objects func(dir string) string, nebConf string, extra ...string) *smallNagios {
	t.Helper()
	nagiosBin := installNagios(t)
	mod := filepath.Join(artifacts(t), "mod_nagios4.so")
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "check_e2e"), []byte(nagiosCheck), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "objects.cfg"), []byte(objects(dir)), 0o644))
	conf := fmt.Sprintf("server=%s\nkey=%s\n%s", srv.Addr(), key, nebConf)
	must(t, os.WriteFile(filepath.Join(dir, "mod_gearman_neb.conf"), []byte(conf), 0o644))
	cfg, err := nagios.WriteMainConfig(dir, mod, "config="+filepath.Join(dir, "mod_gearman_neb.conf"),
		append([]string{"execute_service_checks=1", "execute_host_checks=1"}, extra...)...)
	must(t, err)

	n := &smallNagios{srv: srv, dir: dir, exited: make(chan error, 1)}
	n.cmd = exec.Command(nagiosBin, cfg)
	n.cmd.Dir = dir
	logf, _ := os.Create(filepath.Join(dir, "stdout.log"))
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.start = time.Now()
	must(t, n.cmd.Start())
	go func() { n.exited <- n.cmd.Wait() }()
	t.Cleanup(func() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(20 * time.Second):
			_ = n.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("nagios.log:\n%s\nstdout:\n%s", tail(n.log(), 60), tail(n.read("stdout.log"), 30))
		}
	})
	return n
}

// smallObjects: the host h1, the service "local" (run by the core) and the
// service "lost" (routed to the queue "service").
func smallObjects(dir string) string {
	check := filepath.Join(dir, "check_e2e")
	return nagios.QuietObjects("admin") + fmt.Sprintf(`define command {
  command_name check_e2e
  command_line %s $ARG1$ $ARG2$
}
define servicegroup {
  servicegroup_name localsg
}
define host {
  host_name h1
  address 127.0.0.1
  check_command check_e2e!h1!0
  check_interval 300
  max_check_attempts 1
  check_period 24x7
  contacts admin
  notification_period 24x7
}
define service {
  host_name h1
  service_description lost
  check_command check_e2e!lost!0
  check_interval 300
  retry_interval 300
  max_check_attempts 1
  check_period 24x7
  notification_period 24x7
  contacts admin
}
define service {
  host_name h1
  service_description local
  servicegroups localsg
  check_command check_e2e!local!0
  check_interval 2
  retry_interval 2
  max_check_attempts 1
  check_period 24x7
  notification_period 24x7
  contacts admin
}
`, check)
}

func (n *smallNagios) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(n.dir, name))
	return string(b)
}

func (n *smallNagios) log() string { return n.read("nagios.log") }

// waitService waits until the service's status satisfies ok and returns it.
func (n *smallNagios) waitService(t *testing.T, svc string, timeout time.Duration, ok func(nagios.Status) bool) nagios.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-n.exited:
			t.Fatalf("nagios exited: %v", err)
		default:
		}
		if st, found := nagios.ReadStatus(filepath.Join(n.dir, "status.dat"))["h1/"+svc]; found && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("h1/%s not as expected after %v: %+v", svc, timeout,
				nagios.ReadStatus(filepath.Join(n.dir, "status.dat"))["h1/"+svc])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNagiosOrphanWatchdog: a check routed to a queue no worker serves gets
// the orphan result within its timeout plus orphan_grace plus 5 s, not after
// the core's own orphan check.
func TestNagiosOrphanWatchdog(t *testing.T) {
	const timeout, grace = 5 * time.Second, 2 * time.Second
	n := startSmallNagios(t, "orphan_grace=2s\nlog_stats_interval=2\n", "service_check_timeout=5")
	st := n.waitService(t, "lost", timeout+grace+5*time.Second+2*time.Second, func(s nagios.Status) bool {
		return s.Checked && strings.Contains(s.Output, "orphaned")
	})
	took := time.Since(n.start)
	t.Logf("orphan result %q state %d after %v", st.Output, st.State, took)
	if st.Output != "(service check orphaned, is the mod-gearman worker on queue 'service' running?)" || st.State != 2 {
		t.Errorf("orphan result %+v", st)
	}
	// The first check starts within a second of the start (spread 1 s).
	if took > timeout+grace+5*time.Second+time.Second {
		t.Errorf("orphan result after %v, want at most timeout %v + grace %v + 5s", took, timeout, grace)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(n.log(), "orphaned=1") {
		if time.Now().After(deadline) {
			t.Fatal("no statistics line counting the orphan")
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestNagiosUnwritableLogfile: a logfile that cannot be opened does not
// stop the core; the module says so in the core log, logs there, and both
// the core's and the module's checks run.
func TestNagiosUnwritableLogfile(t *testing.T) {
	n := startSmallNagios(t, "logfile=/nonexistent/dir/x.log\norphan_grace=1s\n", "service_check_timeout=5")
	n.waitService(t, "local", 20*time.Second, func(s nagios.Status) bool {
		return s.Checked && strings.HasPrefix(s.Output, "E2E local rc=0")
	})
	n.waitService(t, "lost", 20*time.Second, func(s nagios.Status) bool {
		return s.Checked && strings.Contains(s.Output, "orphaned")
	})
	log := n.log()
	for _, want := range []string{"gearbridge: gearbridge-neb 0.1 initialized for Nagios 4 (init #1)",
		"gearbridge: cannot open logfile /nonexistent/dir/x.log, logging to the core log instead",
		"gearbridge: gearbridge neb started"} {
		if !strings.Contains(log, want) {
			t.Errorf("nagios.log lacks %q", want)
		}
	}
}
