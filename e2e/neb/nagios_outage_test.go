package nebe2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/nagios"
)

const notifyScript = `#!/bin/sh
# usage: notify.sh ARGS... — one line per run, naming who ran it.
echo "runner=$E2E_RUNNER $*" >> "$(dirname "$0")/notified.log"
`

// TestNagiosNotificationsThroughQueue: with notifications=yes, a service
// going CRITICAL HARD in the real Nagios 4.4.6 makes a notification job on
// the notification queue with the command line expanded by the core's macro
// functions (host, service output, $NOTIFICATIONTYPE$, the contact's address
// macros, $ARGn$); a remote worker behind the bridge runs it, and the core
// does not run it itself.
func TestNagiosNotificationsThroughQueue(t *testing.T) {
	objects := func(dir string) string {
		check, notify := filepath.Join(dir, "check_e2e"), filepath.Join(dir, "notify.sh")
		must(t, os.WriteFile(notify, []byte(notifyScript), 0o755))
		return nagios.QuietObjects("admin") + fmt.Sprintf(`define command {
  command_name check_e2e
  command_line %s $ARG1$ $ARG2$
}
define command {
  command_name notify-svc
  command_line %s '$NOTIFICATIONTYPE$' '$HOSTNAME$' '$SERVICEDESC$' '$SERVICESTATE$' '$SERVICEOUTPUT$' '$CONTACTNAME$' '$CONTACTEMAIL$' '$CONTACTPAGER$' '$CONTACTADDRESS1$' '$ARG1$' '$SERVICENOTIFICATIONNUMBER$'
}
define contact {
  contact_name ops
  email ops@example.com
  pager +49-111
  address1 addr-one
  host_notifications_enabled 0
  service_notifications_enabled 1
  host_notification_period 24x7
  service_notification_period 24x7
  host_notification_options n
  service_notification_options w,u,c,r
  host_notification_commands notify_none
  service_notification_commands notify-svc!ARG-A
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
  notifications_enabled 0
}
define service {
  host_name h1
  service_description crit
  check_command check_e2e!crit!2
  check_interval 300
  retry_interval 300
  max_check_attempts 1
  check_period 24x7
  notification_period 24x7
  notification_interval 0
  notifications_enabled 1
  contacts ops
}
`, check, notify)
	}
	n := startNagiosWith(t, objects, "services=yes\nnotifications=yes\n", "enable_notifications=1", "service_check_timeout=10")
	startBridgeCluster(t, n.srv.Addr())
	n.waitService(t, "crit", 30*time.Second, func(s nagios.Status) bool { return s.Checked && s.State == 2 })

	path := filepath.Join(n.dir, "notified.log")
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for {
		b, _ := os.ReadFile(path)
		if got = string(b); got != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the notification was not run within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a second run, if any, would show now
	b, _ := os.ReadFile(path)
	got = string(b)
	want := "runner=remote PROBLEM h1 crit CRITICAL E2E crit rc=2 runner=remote ops ops@example.com +49-111 addr-one ARG-A 1\n"
	if got != want {
		t.Errorf("notification runs:\n%q\nwant exactly one run by the remote worker:\n%q", got, want)
	}
	log := n.log()
	if c := strings.Count(log, "SERVICE NOTIFICATION: ops;h1;crit;CRITICAL;notify-svc;E2E crit rc=2"); c != 1 {
		t.Errorf("%d notification log lines, want 1 (written by the module for the core)", c)
	}
}

// outageObjects: host h1 and services s0..s(n-1), all routed to the queues,
// each with an event handler that records every run.
func outageObjects(t *testing.T, services int) func(dir string) string {
	return func(dir string) string {
		check, handler := filepath.Join(dir, "check_e2e"), filepath.Join(dir, "handler.sh")
		must(t, os.WriteFile(handler, []byte(nagiosHandler), 0o755))
		var b strings.Builder
		b.WriteString(nagios.QuietObjects("admin"))
		fmt.Fprintf(&b, `define command {
  command_name check_e2e
  command_line %s $ARG1$ $ARG2$
}
define command {
  command_name handler
  command_line %s $SERVICEDESC$ $SERVICESTATE$
}
define host {
  host_name h1
  address 127.0.0.1
  check_command check_e2e!h1!0
  check_interval 3
  retry_interval 1
  max_check_attempts 2
  check_period 24x7
  contacts admin
  notification_period 24x7
}
`, check, handler)
		for i := range services {
			fmt.Fprintf(&b, `define service {
  host_name h1
  service_description s%d
  check_command check_e2e!s%d!0
  check_interval 2
  retry_interval 1
  max_check_attempts 2
  check_period 24x7
  notification_period 24x7
  contacts admin
  event_handler handler
  event_handler_enabled 1
}
`, i, i)
		}
		return b.String()
	}
}

// TestNagiosGearmandOutages runs the real Nagios 4.4.6 with checks through
// gearmand and three outages of gearmand: (b) stopped for 10 s under load,
// (c) stopped for 60 s (past gearmand_down_hold), (e) hung with SIGSTOP
// while the core reloads. None may cause a state change, an event handler,
// a host DOWN or a HARD state, and every check must resume afterwards.
func TestNagiosGearmandOutages(t *testing.T) {
	const services = 20
	n := startNagiosWith(t, outageObjects(t, services),
		"hosts=yes\nservices=yes\nresult_workers=2\norphan_grace=2s\ngearmand_down_hold=30s\nlog_stats_interval=5\n",
		"service_check_timeout=5", "host_check_timeout=5", "enable_event_handlers=1", "log_event_handlers=1")
	startWorker(t, n.srv.Addr(), "host")
	status := func() map[string]nagios.Status { return nagios.ReadStatus(filepath.Join(n.dir, "status.dat")) }
	// resumed waits until h1 and every service were checked OK after since.
	resumed := func(what string, since time.Time, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			st, late := status(), []string{}
			for i := range services {
				s := st[fmt.Sprintf("h1/s%d", i)]
				if !s.Checked || s.State != 0 || s.LastCheck < since.Unix() || !strings.Contains(s.Output, "E2E ") {
					late = append(late, fmt.Sprintf("s%d(%d %d %q)", i, s.State, s.LastCheck, s.Output))
				}
			}
			if len(late) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not resumed within %v: %v", what, timeout, late)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	resumed("start", n.start, 60*time.Second)
	mark := len(n.log())
	// quiet fails on anything the outage caused in the core log since mark.
	quiet := func(what string) {
		t.Helper()
		log := n.log()[mark:]
		for _, bad := range []*regexp.Regexp{regexp.MustCompile(`(?m)^\[\d+\] (SERVICE|HOST) ALERT: .*$`),
			regexp.MustCompile(`(?m)^\[\d+\] (SERVICE|HOST) EVENT HANDLER: .*$`)} {
			if m := bad.FindAllString(log, 5); len(m) > 0 {
				t.Errorf("%s caused: %q", what, m)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(n.dir, "handlers.log")); len(b) > 0 {
			t.Errorf("%s ran event handlers:\n%s", what, b)
		}
		for name, s := range status() {
			// No invented result either: every output is the plugin's.
			if s.State != 0 || s.Attempt > 1 || !strings.Contains(s.Output, "E2E ") {
				t.Errorf("%s: %s in state %d attempt %d (%q)", what, name, s.State, s.Attempt, s.Output)
			}
		}
		mark = len(n.log())
	}

	// (b) 10 s under load.
	n.srv.Stop()
	time.Sleep(10 * time.Second)
	n.srv.Restart(t)
	back := time.Now()
	resumed("10s outage", back, 60*time.Second)
	quiet("the 10s outage")

	// (c) 60 s: held checks go back to the scheduler after 30 s.
	n.srv.Stop()
	time.Sleep(60 * time.Second)
	n.srv.Restart(t)
	back = time.Now()
	resumed("60s outage", back, 60*time.Second)
	quiet("the 60s outage")
	if !strings.Contains(n.log(), "given back to the core's scheduler") {
		t.Error("no give-back logged during the 60s outage")
	}

	// (e) gearmand hangs while the core reloads.
	must(t, n.srv.Signal(syscall.SIGSTOP))
	time.Sleep(3 * time.Second)
	must(t, n.cmd.Process.Signal(syscall.SIGHUP))
	time.Sleep(8 * time.Second)
	must(t, n.srv.Signal(syscall.SIGCONT))
	back = time.Now()
	resumed("reload while gearmand hung", back, 60*time.Second)
	quiet("the reload while gearmand hung")
	if c := strings.Count(n.log(), "initialized for Nagios 4"); c < 2 {
		t.Errorf("the core did not reload (%d inits)", c)
	}
}
