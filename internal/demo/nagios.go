package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/internal/nagios"
)

// The Nagios phase: the real Nagios 4.4.6 core loads
// bin/gearbridge_neb_nagios4.so, which sends its host and service checks
// into the demo's gearmand; the bridge hands them to the remote workers and
// the results come back into the core. The demo watches status.dat.

// nagiosServices are the demo's services on host web1; each plugin run
// takes the next return code of its cycle.
var nagiosServices = []struct{ name, cycle string }{
	{"http", "0 0 1 1 2 2 0 0"},
	{"disk", "0 0 0 1 1 1 2 2 2 0"},
	{"load", "0 1 0 0 1 2 1 0"},
	{"mysql", "0 0 0 2 2 0"},
	{"ssh", "0"},
}

const nagiosHost = "web1"

// statefulPlugin answers with the next return code of its cycle (a counter
// file per object) and names the worker site that ran it in its long output.
const statefulPlugin = `#!/bin/sh
# usage: check_stateful HOST SERVICE "RC RC ..."
host=$1 svc=$2
f="$(dirname "$0")/counters/$host-$svc"
n=$(cat "$f" 2>/dev/null || echo 0)
echo $((n + 1)) > "$f"
set -- $3
shift $((n % $#))
rc=$1
case "$svc:$rc" in
  ping:0)  out="PING OK - Packet loss = 0%, RTA = 0.31 ms|rta=0.31ms;100;500 pl=0%;20;60" ;;
  http:0)  out="HTTP OK: HTTP/1.1 200 OK - 5120 bytes in 0.042 second response time|time=0.042s;1;2" ;;
  http:1)  out="HTTP WARNING: HTTP/1.1 200 OK - 5120 bytes in 1.374 second response time|time=1.374s;1;2" ;;
  http:2)  out="HTTP CRITICAL: HTTP/1.1 503 Service Unavailable|time=0.008s;1;2" ;;
  disk:0)  out="DISK OK - free space: / 41210 MB (62%)|/=25190MB;53120;59760" ;;
  disk:1)  out="DISK WARNING - free space: / 8930 MB (13%)|/=57470MB;53120;59760" ;;
  disk:2)  out="DISK CRITICAL - free space: / 2150 MB (3%)|/=64250MB;53120;59760" ;;
  load:0)  out="OK - load average: 0.42, 0.51, 0.48|load1=0.42;4;8" ;;
  load:1)  out="WARNING - load average: 5.87, 3.10, 1.95|load1=5.87;4;8" ;;
  load:2)  out="CRITICAL - load average: 9.63, 6.02, 3.40|load1=9.63;4;8" ;;
  mysql:0) out="Uptime: 86400  Threads: 4  Questions: 1523  Slow queries: 0" ;;
  mysql:2) out="Can't connect to MySQL server on '127.0.0.1' (111)" ;;
  ssh:0)   out="SSH OK - OpenSSH_9.6 (protocol 2.0)" ;;
  *)       out="UNKNOWN - no answer for $svc rc=$rc" ;;
esac
printf '%s\nran on %s (check #%s)\n' "$out" "${DEMO_SITE:-?}" "$((n + 1))"
exit "$rc"
`

// nagiosPhase runs the real core against the demo's gearmand, bridge and
// workers for dur and prints the state changes it sees in status.dat.
func (d *demo) nagiosPhase(ctx context.Context, gaddr, nagiosBin string, dur time.Duration) error {
	d.say("\n==> Nagios phase: the real Nagios 4.4 core with the gearbridge broker module")
	module := filepath.Join(filepath.Dir(d.bin), "gearbridge_neb_nagios4.so")
	if _, err := os.Stat(module); err != nil {
		return d.skipNagios(fmt.Errorf("%s is missing; make build creates it", module))
	}
	if nagiosBin == "" {
		var err error
		if nagiosBin, err = installNagios(ctx, d.bin); err != nil {
			return d.skipNagios(err)
		}
	}
	dir := filepath.Join(d.dir, "nagios")
	cfg, err := writeNagios(dir, module, gaddr)
	if err != nil {
		return err
	}
	p, err := d.start("nagios", nagiosBin, cfg)
	if err != nil {
		return err
	}
	d.say("    %s %s", nagiosBin, cfg)
	d.say("    broker_module=%s server=%s ... ; 1 host, %d services, checked every 2 s by site-a/site-b", filepath.Base(module), gaddr, len(nagiosServices))
	d.say("    watching %s for %v\n", filepath.Join(dir, "status.dat"), dur)

	failed := func(why string) error {
		log, _ := os.ReadFile(filepath.Join(dir, "nagios.log"))
		out, _ := os.ReadFile(p.log)
		return fmt.Errorf("%s\nnagios.log:\n%s\nnagios output:\n%s", why, tail(string(log), 30), tail(string(out), 20))
	}

	began := time.Now()
	status := filepath.Join(dir, "status.dat")
	last := map[string]nagios.Status{}
	var checks, changes int
	var latency []float64
	bySite := map[string]int{}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for time.Since(began) < dur {
		select {
		case <-ctx.Done():
			return fmt.Errorf("nagios phase: %w", ctx.Err())
		case <-p.done:
			return failed("nagios exited early")
		case <-tick.C:
		}
		st := nagios.ReadStatus(status)
		keys := make([]string, 0, len(st))
		for k := range st {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			now, was := st[k], last[k]
			if !now.Checked || now.LastCheck == was.LastCheck {
				continue
			}
			last[k] = now
			checks++
			latency = append(latency, now.Latency)
			site := "the core"
			if m := ranOn.FindStringSubmatch(now.LongOutput); m != nil {
				site = m[1]
				bySite[site]++
			}
			from := "PENDING"
			if was.Checked {
				from = stateName(was)
			}
			if was.Checked && was.State == now.State && was.Output == now.Output {
				continue
			}
			if was.Checked {
				changes++
			}
			d.say("[%5.1fs] %-11s %-8s -> %-8s %-72q (via %s)", time.Since(began).Seconds(), strings.TrimSuffix(k, "/"), from, stateName(now), now.Output, site)
		}
	}
	if checks == 0 || len(bySite) == 0 {
		return failed("no check came back from a remote worker")
	}

	// Stop the core; the module stops with it.
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		d.say("    nagios did not stop on SIGTERM; killed")
	}

	slices.Sort(latency)
	var sum float64
	for _, l := range latency {
		sum += l
	}
	d.say("\n==> Nagios ran %d checks through gearbridge in %v: %d state changes", checks, dur, changes)
	d.say("    check_latency from status.dat: avg %.3fs  p50 %.3fs  max %.3fs", sum/float64(len(latency)), latency[len(latency)/2], latency[len(latency)-1])
	sites := make([]string, 0, len(bySite))
	for s := range bySite {
		sites = append(sites, s)
	}
	slices.Sort(sites)
	for _, s := range sites {
		d.say("    %-8s ran %d of them", s, bySite[s])
	}
	if log, err := os.ReadFile(filepath.Join(dir, "nagios.log")); err == nil {
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, "gearbridge-neb") && strings.Contains(l, "initialized") || strings.Contains(l, "Successfully shutdown") {
				d.say("    nagios.log: %s", l)
			}
		}
	}
	return nil
}

// skipNagios explains why the Nagios phase does not run. As root the demo
// can install what it needs, so there a missing piece is an error.
func (d *demo) skipNagios(err error) error {
	if os.Geteuid() == 0 {
		return fmt.Errorf("nagios phase: %w", err)
	}
	d.say("==> skipping the Nagios phase: %v", err)
	return nil
}

// installNagios returns the nagios4 binary: $GEARBRIDGE_NAGIOS4, or the one
// scripts/install-nagios.sh unpacks (found next to the working directory
// or the gearbridge binary).
func installNagios(ctx context.Context, bin string) (string, error) {
	script := filepath.Join("scripts", "install-nagios.sh")
	if _, err := os.Stat(script); err != nil {
		script = filepath.Join(filepath.Dir(filepath.Dir(bin)), "scripts", "install-nagios.sh")
	}
	return nagios.Find(ctx, script)
}

// writeNagios writes the plugin, the objects and nagios.cfg into dir and
// returns the path of nagios.cfg.
func writeNagios(dir, module, gaddr string) (string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "counters"), 0o755); err != nil {
		return "", err
	}
	plugin := filepath.Join(dir, "check_stateful")
	if err := os.WriteFile(plugin, []byte(statefulPlugin), 0o755); err != nil {
		return "", err
	}

	var obj strings.Builder
	obj.WriteString(nagios.QuietObjects("demo"))
	fmt.Fprintf(&obj, `define command {
  command_name check_stateful
  command_line %s $HOSTNAME$ $ARG1$ "$ARG2$"
}
define host {
  host_name           %s
  address             127.0.0.1
  check_command       check_stateful!ping!0
  check_interval      2
  retry_interval      1
  max_check_attempts  1
  check_period        24x7
  notification_period 24x7
  contacts            demo
}
`, plugin, nagiosHost)
	for _, s := range nagiosServices {
		fmt.Fprintf(&obj, `define service {
  host_name           %s
  service_description %s
  check_command       check_stateful!%s!%s
  check_interval      2
  retry_interval      1
  max_check_attempts  1
  check_period        24x7
  notification_period 24x7
  contacts            demo
}
`, nagiosHost, s.name, s.name, s.cycle)
	}
	if err := os.WriteFile(filepath.Join(dir, "objects.cfg"), []byte(obj.String()), 0o644); err != nil {
		return "", err
	}

	return nagios.WriteMainConfig(dir, module,
		fmt.Sprintf("server=%s key=%s encryption=yes hosts=yes services=yes result_queue=check_results", gaddr, demoKey),
		"check_external_commands=0", "enable_event_handlers=0", "process_performance_data=0")
}

var ranOn = regexp.MustCompile(`ran on (\S+)`)

// stateName names a state the way the core shows it.
func stateName(s nagios.Status) string {
	if s.Host {
		return [...]string{"UP", "DOWN", "UNREACH"}[min(max(s.State, 0), 2)]
	}
	return state(s.State)
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
