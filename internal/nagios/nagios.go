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
			out[cur["host_name"]+"/"+cur["service_description"]] = s
		default:
			if k, v, ok := strings.Cut(l, "="); ok {
				cur[k] = v
			}
		}
	}
	return out
}
