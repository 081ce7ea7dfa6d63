package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gearbridge/gearbridge/gearman"
)

// Monitoring plugin states.
const (
	stateOK = iota
	stateWarning
	stateCritical
	stateUnknown
)

var stateNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// pluginExit ends a plugin-style command with a state as exit code; the
// text is already on stdout, so nothing more is printed.
type pluginExit int

func (p pluginExit) Error() string { return "" }

// checkOptions are check_gearman's flags (wire contract §6.3).
type checkOptions struct {
	hosts        []string
	timeout      int // seconds, as check_gearman's -t
	jobsWarn     int
	jobsCrit     int
	workersWarn  int
	workersCrit  int
	queue        string
	noWorkerCrit bool
	send         string
	expect       string
	background   bool
	unique       string
}

func newCheckCmd(s streams, g *globals) *cobra.Command {
	o := checkOptions{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Monitor gearmand queues and workers (like check_gearman)",
		Long: `Monitor gearmand like check_gearman: without -s it checks the queues of one
server against thresholds (0 disables a threshold); with -s and -q it sends a
test job to a queue (e.g. worker_<id> or check_results) and checks the answer.
Exit codes follow the monitoring-plugin convention: 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hosts := append(append([]string(nil), o.hosts...), g.servers...)
			servers, err := normalizeServers(hosts)
			if err != nil || len(servers) == 0 {
				fmt.Fprintf(s.out, "check_gearman UNKNOWN - give a gearmand with -H HOST[:PORT]\n")
				return pluginExit(stateUnknown)
			}
			if o.timeout <= 0 {
				fmt.Fprintf(s.out, "check_gearman UNKNOWN - -t must be a positive number of seconds\n")
				return pluginExit(stateUnknown)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(o.timeout)*time.Second)
			defer cancel()
			var state int
			if o.send != "" {
				if o.queue == "" {
					fmt.Fprintf(s.out, "check_gearman UNKNOWN - -s needs a queue (-q)\n")
					return pluginExit(stateUnknown)
				}
				state = checkWorker(ctx, s.out, servers, o)
			} else {
				state = checkServer(ctx, s.out, servers[len(servers)-1], o)
			}
			if state == stateOK {
				return nil
			}
			return pluginExit(state)
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&o.hosts, "host", "H", nil, "gearmand `HOST[:PORT]` (repeatable; server mode uses the last)")
	f.IntVarP(&o.timeout, "timeout", "t", 10, "give up after this many seconds (CRITICAL)")
	f.IntVarP(&o.jobsWarn, "jobs-warning", "w", 10, "waiting jobs for WARNING")
	f.IntVarP(&o.jobsCrit, "jobs-critical", "c", 100, "waiting jobs for CRITICAL")
	f.IntVarP(&o.workersWarn, "workers-warning", "W", 25, "workers for WARNING")
	f.IntVarP(&o.workersCrit, "workers-critical", "C", 50, "workers for CRITICAL")
	f.StringVarP(&o.queue, "queue", "q", "", "only this queue (server mode), or the queue to send to (-s)")
	f.BoolVarP(&o.noWorkerCrit, "no-worker-critical", "x", false, "CRITICAL when the queue has no worker")
	f.StringVarP(&o.send, "send", "s", "", "send this text as a test job to -q")
	f.StringVarP(&o.expect, "expect", "e", "", "with -s: the answer must contain this text")
	f.BoolVarP(&o.background, "background", "a", false, "with -s: send as a background job")
	f.StringVarP(&o.unique, "unique", "u", "check", "with -s: unique id of the test job")
	return cmd
}

// checkServer applies the queue rules of check_gearman to one server's
// status. Unlike the classic tool, the worst state of all queues wins, not
// the last queue's.
func checkServer(ctx context.Context, out io.Writer, server string, o checkOptions) int {
	adm := gearman.NewAdmin(server, gearman.AdminOptions{})
	defer adm.Close()
	st, err := adm.Status(ctx)
	if err != nil {
		fmt.Fprintf(out, "check_gearman CRITICAL - cannot read status from %s: %v\n", server, err)
		return stateCritical
	}
	version, err := adm.Version(ctx)
	if err != nil {
		fmt.Fprintf(out, "check_gearman CRITICAL - cannot read version from %s: %v\n", server, err)
		return stateCritical
	}
	sort.Slice(st, func(i, j int) bool { return st[i].Name < st[j].Name })
	state, running, waiting := stateOK, 0, 0
	var msgs, perf []string
	found := false
	for _, q := range st {
		if o.queue != "" && q.Name != o.queue {
			continue
		}
		if q.Name == "dummy" && q.Total == 0 {
			continue
		}
		found = true
		w := q.Waiting()
		running += q.Running
		waiting += w
		s, msg := queueState(q, w, o)
		if s > state {
			state = s
		}
		if msg != "" {
			msgs = append(msgs, msg)
		}
		perf = append(perf, fmt.Sprintf("'%s_waiting'=%d;%d;%d;0 '%s_running'=%d '%s_worker'=%d;%d;%d;0",
			q.Name, w, o.jobsWarn, o.jobsCrit, q.Name, q.Running, q.Name, q.Workers, o.workersWarn, o.workersCrit))
	}
	if o.queue != "" && !found {
		state = max(state, stateWarning)
		msgs = append(msgs, fmt.Sprintf("Queue %s not found", o.queue))
	}
	text := fmt.Sprintf("%d job(s) running and %d job(s) waiting. Version: %s", running, waiting, version)
	if state != stateOK {
		text = strings.Join(msgs, " ")
	}
	fmt.Fprintf(out, "check_gearman %s - %s|%s\n", stateNames[state], text, strings.Join(perf, " "))
	return state
}

// queueState is the first matching rule of check_gearman for one queue.
func queueState(q gearman.FunctionStatus, waiting int, o checkOptions) (int, string) {
	switch {
	case waiting > 0 && q.Workers == 0:
		return stateCritical, fmt.Sprintf("Queue %s has %d job(s) without any worker.", q.Name, waiting)
	case o.jobsCrit > 0 && waiting >= o.jobsCrit:
		return stateCritical, fmt.Sprintf("Queue %s has %d waiting job(s).", q.Name, waiting)
	case o.workersCrit > 0 && q.Workers >= o.workersCrit:
		return stateCritical, fmt.Sprintf("Queue %s has %d worker.", q.Name, q.Workers)
	case o.noWorkerCrit && q.Workers == 0:
		return stateCritical, fmt.Sprintf("Queue %s has no worker.", q.Name)
	case o.jobsWarn > 0 && waiting >= o.jobsWarn:
		return stateWarning, fmt.Sprintf("Queue %s has %d waiting job(s).", q.Name, waiting)
	case o.workersWarn > 0 && q.Workers >= o.workersWarn:
		return stateWarning, fmt.Sprintf("Queue %s has %d worker.", q.Name, q.Workers)
	}
	return stateOK, ""
}

// stateReply matches an answer that names its own state, like "0:OK - ...".
var stateReply = regexp.MustCompile(`^([0-3]):(.*)$`)

// checkWorker sends the test job of check_gearman -s.
func checkWorker(ctx context.Context, out io.Writer, servers []string, o checkOptions) int {
	c := gearman.NewClient(servers, gearman.ClientOptions{WaitForReady: true})
	defer c.Close()
	if o.background {
		if _, err := c.Submit(ctx, o.queue, o.unique, []byte(o.send), gearman.PriorityHigh, true); err != nil {
			fmt.Fprintf(out, "check_gearman CRITICAL - job failed: %v\n", err)
			return stateCritical
		}
		fmt.Fprintf(out, "check_gearman OK - sending background job succeeded\n")
		return stateOK
	}
	reply, err := c.Do(ctx, o.queue, o.unique, []byte(o.send), gearman.PriorityHigh)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(out, "check_gearman CRITICAL - timeout while waiting for %s\n", o.queue)
		} else {
			fmt.Fprintf(out, "check_gearman CRITICAL - job failed: %v\n", err)
		}
		return stateCritical
	}
	text := strings.TrimRight(string(reply), "\x00\n")
	if o.expect != "" {
		if strings.Contains(text, o.expect) {
			fmt.Fprintf(out, "check_gearman OK - send worker '%s' response: '%s'\n", o.send, text)
			return stateOK
		}
		fmt.Fprintf(out, "check_gearman CRITICAL - send worker '%s' response: '%s'\n", o.send, text)
		return stateCritical
	}
	if m := stateReply.FindStringSubmatch(text); m != nil {
		n, _ := strconv.Atoi(m[1])
		fmt.Fprintln(out, m[2])
		return n
	}
	fmt.Fprintf(out, "check_gearman OK - %s\n", text)
	return stateOK
}
