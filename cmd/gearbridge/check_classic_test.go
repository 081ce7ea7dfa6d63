package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

// These tests hold `gearbridge check` to the output of the classic
// check_gearman (tools/check_gearman.c), line for line, against a real
// gearmand.

// classicStatusText is what a classic C worker answers on its
// worker_<identifier> queue.
const classicStatusText = "w1 has 2 worker and is working on 0 jobs. Version: 3.0.0|worker=2;;;1;2 jobs=5c"

// classicResultText is what the classic NEB answers on check_results.
const classicResultText = "0:OK - result worker running on core1. Sending 14.9 jobs/s (avg duration:0.040ms). Version: 3.0.0|worker=3;;;0;3 avg_submit_duration=0.000040s;;;0;0.000429 jobs=2388c errors=0c"

// classicReplyBuffer is a reply as the classic C code sends it: the whole
// 64 KiB buffer it got from malloc, so the text ends at the first NUL and
// whatever the heap held before follows it.
func classicReplyBuffer(text string) []byte {
	b := make([]byte, 65536)
	n := copy(b, text)
	copy(b[n+1:], "stale heap bytes: 2:CRITICAL - old reply\n")
	copy(b[n+4096:], "more stale bytes")
	return b
}

// startResponders starts a gearmand with status responders registered the
// way classic workers and the classic NEB register them.
func startResponders(t *testing.T) string {
	t.Helper()
	gm := gearmantest.Start(t)
	replies := map[string][]byte{
		"worker_w1":     classicReplyBuffer(classicStatusText),
		"worker_padded": append([]byte(classicStatusText), make([]byte, 65536-len(classicStatusText))...),
		"check_results": classicReplyBuffer(classicResultText),
		"worker_multi":  []byte("2:CRITICAL - disk full\nsecond line"),
		"worker_nine":   []byte("9:odd state"),
		"worker_plain":  []byte("x:not a state"),
	}
	var fns []string
	for fn := range replies {
		fns = append(fns, fn)
	}
	w := gearman.NewWorker([]string{gm.Addr()}, fns, func(_ context.Context, j *gearman.Job) ([]byte, error) {
		return replies[j.Function], nil
	}, gearman.WorkerOptions{})
	t.Cleanup(func() { w.Close() })
	waitForWorkers(t, gm.Addr(), fns...)
	return gm.Addr()
}

// waitForWorkers waits until each function has a worker on gearmand.
func waitForWorkers(t *testing.T, addr string, fns ...string) {
	t.Helper()
	waitFor(t, func() bool {
		st := queueStatus(t, addr)
		for _, fn := range fns {
			if st[fn].Workers == 0 {
				return false
			}
		}
		return true
	})
}

func queueStatus(t *testing.T, addr string) map[string]gearman.FunctionStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	adm := gearman.NewAdmin(addr, gearman.AdminOptions{})
	defer adm.Close()
	st, err := adm.Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", addr, err)
	}
	m := make(map[string]gearman.FunctionStatus, len(st))
	for _, q := range st {
		m[q.Name] = q
	}
	return m
}

// shortQuote quotes s for a failure message, cut so that a 64 KiB reply
// does not flood the log.
func shortQuote(s string) string {
	const limit = 400
	if len(s) <= limit {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:limit], len(s))
}

type checkCase struct {
	name     string
	args     []string
	wantCode int
	wantOut  string // the whole stdout
}

func runCheckCases(t *testing.T, tests []checkCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "gearbridge", append([]string{"check"}, tt.args...)...)
			if out != tt.wantOut {
				t.Errorf("stdout\n got %s\nwant %q", shortQuote(out), tt.wantOut)
			}
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
		})
	}
}

// A classic worker answers its status queue with its whole reply buffer:
// only the text up to the first NUL is the reply.
func TestCheckWorkerReplyEndsAtFirstNUL(t *testing.T) {
	addr := startResponders(t)
	runCheckCases(t, []checkCase{
		{"worker status", []string{"-H", addr, "-q", "worker_w1", "-s", "check"}, 0,
			"check_gearman OK - " + classicStatusText + "\n"},
		{"worker status padded with NULs", []string{"-H", addr, "-q", "worker_padded", "-s", "check"}, 0,
			"check_gearman OK - " + classicStatusText + "\n"},
		{"expected text", []string{"-H", addr, "-q", "worker_w1", "-s", "check", "-e", "is working on"}, 0,
			"check_gearman OK - send worker 'check' response: '" + classicStatusText + "'\n"},
		{"expected text only in the stale bytes", []string{"-H", addr, "-q", "worker_w1", "-s", "check", "-e", "old reply"}, 2,
			"check_gearman CRITICAL - send worker: 'check' response: '" + classicStatusText + "', expected 'old reply'\n"},
		{"result worker with its state", []string{"-H", addr, "-q", "check_results", "-s", "check"}, 0,
			strings.TrimPrefix(classicResultText, "0:") + "\n"},
	})
}

// The worker mode (-s) prints what check_gearman prints.
func TestCheckWorkerTextsMatchClassic(t *testing.T) {
	addr := startResponders(t)
	runCheckCases(t, []checkCase{
		{"unexpected text", []string{"-H", addr, "-q", "worker_w1", "-s", "check", "-e", "missing"}, 2,
			"check_gearman CRITICAL - send worker: 'check' response: '" + classicStatusText + "', expected 'missing'\n"},
		{"background", []string{"-H", addr, "-q", "worker_w1", "-s", "check", "-a"}, 0,
			"check_gearman OK - sending background job succeded\n"},
		{"background ignores -e", []string{"-H", addr, "-q", "worker_w1", "-s", "check", "-a", "-e", "missing"}, 0,
			"check_gearman OK - sending background job succeded\n"},
		{"state and several lines", []string{"-H", addr, "-q", "worker_multi", "-s", "check"}, 2,
			"CRITICAL - disk full\nsecond line\n"},
		{"any digit is the exit code", []string{"-H", addr, "-q", "worker_nine", "-s", "check"}, 9,
			"odd state\n"},
		{"no digit, no state", []string{"-H", addr, "-q", "worker_plain", "-s", "check"}, 0,
			"check_gearman OK - x:not a state\n"},
		{"timeout", []string{"-H", addr, "-q", "nobody_listens", "-s", "check", "-t", "1"}, 2,
			"timeout while waiting for " + addr + "\n"},
	})
}

// startQueues starts a gearmand with queues in every state check_gearman
// reports:
//
//	busy     1 worker holding 1 job, 2 more jobs waiting
//	host     1 idle worker
//	idle     no worker (it left), no job
//	one      1 job, no worker
//	service  3 jobs, no worker
func startQueues(t *testing.T) (addr, version string) {
	t.Helper()
	gm := gearmantest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := gearman.NewClient([]string{gm.Addr()}, gearman.ClientOptions{})
	defer c.Close()
	submit := func(fn string, n int) {
		for i := range n {
			if _, err := c.Submit(ctx, fn, fmt.Sprintf("%s-%d", fn, i), []byte("x"), gearman.PriorityNormal, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	worker := func(fn string) *gearman.WorkerConn {
		wc, err := gearman.DialWorker(ctx, gm.Addr(), gearman.WorkerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := wc.CanDo(fn); err != nil {
			t.Fatal(err)
		}
		return wc
	}
	submit("busy", 3)
	submit("one", 1)
	submit("service", 3)
	busy := worker("busy")
	t.Cleanup(func() { busy.Close() })
	if _, err := busy.Grab(ctx); err != nil {
		t.Fatal(err)
	}
	host := worker("host")
	t.Cleanup(func() { host.Close() })
	worker("idle").Close()
	waitFor(t, func() bool {
		st := queueStatus(t, gm.Addr())
		idle, ok := st["idle"]
		return ok && idle.Workers == 0 && st["host"].Workers == 1 && st["busy"].Running == 1
	})
	adm := gearman.NewAdmin(gm.Addr(), gearman.AdminOptions{})
	defer adm.Close()
	v, err := adm.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return gm.Addr(), v
}

// The queue mode (no -s) prints what check_gearman prints: "1 job" and
// "2 jobs", each message ending in ". ", perfdata after "|" with a space
// after every queue.
func TestCheckServerTextsMatchClassic(t *testing.T) {
	addr, v := startQueues(t)
	perf := map[string]string{
		"busy":    "'busy_waiting'=2;10;100;0 'busy_running'=1 'busy_worker'=1;25;50;0 ",
		"host":    "'host_waiting'=0;10;100;0 'host_running'=0 'host_worker'=1;25;50;0 ",
		"idle":    "'idle_waiting'=0;10;100;0 'idle_running'=0 'idle_worker'=0;25;50;0 ",
		"one":     "'one_waiting'=1;10;100;0 'one_running'=0 'one_worker'=0;25;50;0 ",
		"service": "'service_waiting'=3;10;100;0 'service_running'=0 'service_worker'=0;25;50;0 ",
	}
	runCheckCases(t, []checkCase{
		{"all queues", []string{"-H", addr}, 2,
			"check_gearman CRITICAL - Queue one has 1 job without any worker. Queue service has 3 jobs without any worker. |" +
				perf["busy"] + perf["host"] + perf["idle"] + perf["one"] + perf["service"] + "\n"},
		{"one running, two waiting", []string{"-H", addr, "-q", "busy"}, 0,
			"check_gearman OK - 1 job running and 2 jobs waiting. Version: " + v + "|" + perf["busy"] + "\n"},
		{"nothing running or waiting", []string{"-H", addr, "-q", "host"}, 0,
			"check_gearman OK - 0 jobs running and 0 jobs waiting. Version: " + v + "|" + perf["host"] + "\n"},
		{"one job without worker", []string{"-H", addr, "-q", "one"}, 2,
			"check_gearman CRITICAL - Queue one has 1 job without any worker. |" + perf["one"] + "\n"},
		{"waiting jobs critical", []string{"-H", addr, "-q", "busy", "-c", "2"}, 2,
			"check_gearman CRITICAL - Queue busy has 2 waiting jobs. |'busy_waiting'=2;10;2;0 'busy_running'=1 'busy_worker'=1;25;50;0 \n"},
		{"waiting jobs warning", []string{"-H", addr, "-q", "busy", "-w", "2"}, 1,
			"check_gearman WARNING - Queue busy has 2 waiting jobs. |'busy_waiting'=2;2;100;0 'busy_running'=1 'busy_worker'=1;25;50;0 \n"},
		{"workers critical", []string{"-H", addr, "-q", "host", "-C", "1"}, 2,
			"check_gearman CRITICAL - Queue host has 1 worker. |'host_waiting'=0;10;100;0 'host_running'=0 'host_worker'=1;25;1;0 \n"},
		{"workers warning", []string{"-H", addr, "-q", "host", "-W", "1"}, 1,
			"check_gearman WARNING - Queue host has 1 worker. |'host_waiting'=0;10;100;0 'host_running'=0 'host_worker'=1;1;50;0 \n"},
		{"no worker with -x", []string{"-H", addr, "-q", "idle", "-x"}, 2,
			"check_gearman CRITICAL - Queue idle has no worker. |" + perf["idle"] + "\n"},
		{"no worker without -x", []string{"-H", addr, "-q", "idle"}, 0,
			"check_gearman OK - 0 jobs running and 0 jobs waiting. Version: " + v + "|" + perf["idle"] + "\n"},
		{"queue not found", []string{"-H", addr, "-q", "nope"}, 1,
			"check_gearman WARNING - Queue nope not found|\n"},
		{"connection refused", []string{"-H", "127.0.0.1:1"}, 2,
			"check_gearman CRITICAL - failed to connect to address 127.0.0.1 and port 1: Connection refused\n"},
	})
}

// A gearmand that accepts and never answers runs into -t, which the classic
// tool reports naming the server.
func TestCheckServerTimeoutMatchesClassic(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	runCheckCases(t, []checkCase{
		{"silent server", []string{"-H", ln.Addr().String(), "-t", "1"}, 2,
			"timeout while waiting for " + ln.Addr().String() + "\n"},
	})
}

// -v writes what the classic tool writes to stderr; -V prints the version
// and exits UNKNOWN.
func TestCheckVerboseAndVersion(t *testing.T) {
	t.Run("version", func(t *testing.T) {
		code, out, errOut := runCmd(t, "gearbridge", "check", "-V")
		if code != 3 {
			t.Errorf("exit %d, want 3 (stderr %q)", code, errOut)
		}
		if !regexp.MustCompile(`^check_gearman: version \S+ running on gearbridge \S+ \(commit \S+, go\S+\)\n\n$`).MatchString(out) {
			t.Errorf("stdout %q", out)
		}
	})
	t.Run("version comes first", func(t *testing.T) {
		code, out, _ := runCmd(t, "gearbridge", "check", "-V", "-s", "check")
		if code != 3 || !strings.HasPrefix(out, "check_gearman: version ") {
			t.Errorf("exit %d, stdout %q", code, out)
		}
	})

	addr := startResponders(t)
	tests := []struct {
		name       string
		args       []string
		wantOut    string
		wantErrOut []string
	}{
		{"worker", []string{"-v", "-H", addr, "-q", "worker_w1", "-s", "check"},
			"check_gearman OK - " + classicStatusText + "\n",
			[]string{"code:   \nresult: " + classicStatusText + "\n"}},
		{"worker failing", []string{"-v", "-H", addr, "-q", "nobody_listens", "-s", "check", "-t", "1"},
			"timeout while waiting for " + addr + "\n",
			[]string{"code:   context deadline exceeded\nresult: \n"}},
		{"server", []string{"--verbose", "-H", addr, "-q", "worker_w1"},
			"",
			[]string{fmt.Sprintf(": name:%-20s worker:%-5d waiting:%-5d running:%-5d\n", "check_results", 1, 0, 0),
				fmt.Sprintf(": name:%-20s worker:%-5d waiting:%-5d running:%-5d\n", "worker_w1", 1, 0, 0)}},
		{"server trace", []string{"-vv", "-H", addr, "-q", "worker_w1"},
			"",
			[]string{"sending 'status' and 'version' to " + addr + "\n", "extracted version: '"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, out, errOut := runCmd(t, "gearbridge", append([]string{"check"}, tt.args...)...)
			if tt.wantOut != "" && out != tt.wantOut {
				t.Errorf("stdout\n got %s\nwant %q", shortQuote(out), tt.wantOut)
			}
			for _, w := range tt.wantErrOut {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not contain %q", errOut, w)
				}
			}
		})
	}
	t.Run("quiet without -v", func(t *testing.T) {
		_, _, errOut := runCmd(t, "gearbridge", "check", "-H", addr, "-q", "worker_w1", "-s", "check")
		if errOut != "" {
			t.Errorf("stderr %q", errOut)
		}
	})
}

// Every usage error is UNKNOWN (3), with the reason and the usage on
// stdout, like check_gearman's "Error - …" and print_usage.
func TestCheckUsageErrorsExitUnknown(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantFirst string // first line of stdout
	}{
		{"unknown flag", []string{"-H", "localhost", "-z"}, "Error - unknown shorthand flag: 'z' in -z"},
		{"unknown long flag", []string{"-H", "localhost", "--bogus"}, "Error - unknown flag: --bogus"},
		{"bad timeout", []string{"-H", "localhost", "-t", "soon"}, `Error - invalid argument "soon" for "-t, --timeout" flag: must be an integer`},
		{"bad threshold", []string{"-H", "localhost", "-w", "1.5"}, `Error - invalid argument "1.5" for "-w, --jobs-warning" flag: must be an integer`},
		{"missing value", []string{"-H", "localhost", "-q"}, "Error - flag needs an argument: 'q' in -q"},
		{"no host", []string{"-q", "host"}, "Error - no hostname given"},
		{"bad host", []string{"-H", "localhost:http"}, `Error - server "localhost:http": port "http" is not a number 1..65535`},
		{"send without queue", []string{"-H", "localhost", "-s", "check"}, "Error - need queue (-q) when sending job"},
		{"zero timeout", []string{"-H", "localhost", "-t", "0"}, "Error - timeout (-t) must be at least 1 second"},
		{"argument", []string{"-H", "localhost", "extra"}, `Error - unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "gearbridge", append([]string{"check"}, tt.args...)...)
			if code != 3 {
				t.Errorf("exit %d, want 3", code)
			}
			first, rest, _ := strings.Cut(out, "\n")
			if first != tt.wantFirst {
				t.Errorf("first line\n got %q\nwant %q", first, tt.wantFirst)
			}
			if !strings.HasPrefix(rest, "\nUsage:\n  gearbridge check [flags]\n") || !strings.Contains(rest, "-H, --host") {
				t.Errorf("no usage after the error line:\n%s", out)
			}
			if errOut != "" {
				t.Errorf("stderr %q, want nothing", errOut)
			}
		})
	}
}

// Failures to reach gearmand read like the C library's texts that the
// classic tool prints.
func TestCheckAdminErrorText(t *testing.T) {
	refused := fmt.Errorf("admin %q on 127.0.0.1:1: dial: %w", "status",
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	unknownHost := fmt.Errorf("dial: %w",
		&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nohost", IsNotFound: true}})
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"connection refused", refused, "failed to connect to address 127.0.0.1 and port 1: Connection refused"},
		{"unknown host", unknownHost, "Name or service not known"},
		{"anything else", errors.New("bad reply"), "error reading from 127.0.0.1:1 - bad reply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := adminErrorText("127.0.0.1:1", tt.err); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
