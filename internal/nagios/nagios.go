// Package nagios helps tests and the demo run the real Nagios 4 core:
// finding (or unpacking) the binary and reading status.dat.
package nagios

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Find returns the nagios4 binary: $GEARBRIDGE_NAGIOS4, or the one that
// script (scripts/install-nagios.sh) unpacks and prints.
func Find(ctx context.Context, script string) (string, error) {
	if p := os.Getenv("GEARBRIDGE_NAGIOS4"); p != "" {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("cannot unpack Nagios 4.4.6 with %s: %v %s", script, err,
			strings.Join(strings.Fields(strings.ReplaceAll(stderr.String(), "\n", "; ")), " "))
	}
	p := strings.TrimSpace(string(out))
	if p == "" {
		return "", errors.New(script + " printed no path")
	}
	return p, nil
}

// Status is one hoststatus or servicestatus block of status.dat.
type Status struct {
	Host       bool // a host check
	Checked    bool // has_been_checked
	State      int
	Output     string
	LongOutput string
	LastCheck  int64
	Latency    float64 // check_latency, seconds
	Attempt    int     // current_attempt
}

// ReadStatus parses status.dat into "host/service" → status, with host
// checks under "host/". A missing or half-written file gives what could be
// read.
func ReadStatus(path string) map[string]Status {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]Status{}
	var kind string
	cur := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasSuffix(l, "{"):
			kind = strings.TrimSpace(strings.TrimSuffix(l, "{"))
			cur = map[string]string{}
		case l == "}":
			if kind != "servicestatus" && kind != "hoststatus" {
				continue
			}
			s := Status{Host: kind == "hoststatus", Checked: cur["has_been_checked"] == "1",
				Output: cur["plugin_output"], LongOutput: cur["long_plugin_output"]}
			s.State, _ = strconv.Atoi(cur["current_state"])
			s.LastCheck, _ = strconv.ParseInt(cur["last_check"], 10, 64)
			s.Latency, _ = strconv.ParseFloat(cur["check_latency"], 64)
			s.Attempt, _ = strconv.Atoi(cur["current_attempt"])
			out[cur["host_name"]+"/"+cur["service_description"]] = s
		default:
			if k, v, ok := strings.Cut(l, "="); ok {
				cur[k] = v
			}
		}
	}
	return out
}

// WriteMainConfig writes dir/nagios.cfg for a core that runs from dir as
// the current user, checks every interval_length=1 second without spread or
// caching, loads one broker module with brokerArgs, and reads its objects
// from dir/objects.cfg. extra lines (key=value) are appended for what
// differs between callers: event handlers, perfdata, external commands.
// It also creates dir/checkresults and returns the path of nagios.cfg.
func WriteMainConfig(dir, module, brokerArgs string, extra ...string) (string, error) {
	u, err := user.Current()
	if err != nil {
		return "", err
	}
	group := u.Gid
	if g, err := user.LookupGroupId(u.Gid); err == nil {
		group = g.Name
	}
	if err := os.MkdirAll(filepath.Join(dir, "checkresults"), 0o755); err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`log_file=%[1]s/nagios.log
cfg_file=%[1]s/objects.cfg
object_cache_file=%[1]s/objects.cache
precached_object_file=%[1]s/objects.precache
status_file=%[1]s/status.dat
status_update_interval=1
nagios_user=%[2]s
nagios_group=%[3]s
command_file=%[1]s/nagios.cmd
query_socket=%[1]s/nagios.qh
lock_file=%[1]s/nagios.lock
temp_file=%[1]s/nagios.tmp
temp_path=%[1]s
check_result_path=%[1]s/checkresults
event_broker_options=-1
broker_module=%[4]s %[5]s
log_rotation_method=n
use_syslog=0
log_initial_states=1
service_inter_check_delay_method=n
host_inter_check_delay_method=n
max_service_check_spread=1
max_host_check_spread=1
check_result_reaper_frequency=1
cached_host_check_horizon=0
cached_service_check_horizon=0
retain_state_information=0
interval_length=1
check_for_updates=0
enable_notifications=0
enable_flap_detection=0
check_service_freshness=0
check_host_freshness=0
daemon_dumps_core=0
`, dir, u.Username, group, module, brokerArgs)
	for _, l := range extra {
		cfg += l + "\n"
	}
	path := filepath.Join(dir, "nagios.cfg")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// QuietObjects returns the object definitions every generated core
// configuration starts with: an always-on 24x7 timeperiod, and a contact
// named contact whose notifications are all off (with the no-op command
// notify_none), so that objects can name a contact without anything being
// sent.
func QuietObjects(contact string) string {
	return `define timeperiod {
  timeperiod_name 24x7
  alias 24x7
  sunday 00:00-24:00
  monday 00:00-24:00
  tuesday 00:00-24:00
  wednesday 00:00-24:00
  thursday 00:00-24:00
  friday 00:00-24:00
  saturday 00:00-24:00
}
define command {
  command_name notify_none
  command_line /bin/true
}
define contact {
  contact_name ` + contact + `
  host_notifications_enabled 0
  service_notifications_enabled 0
  host_notification_period 24x7
  service_notification_period 24x7
  host_notification_options n
  service_notification_options n
  host_notification_commands notify_none
  service_notification_commands notify_none
}
`
}
