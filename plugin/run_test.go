package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests that start processes write their helper plugins before calling
// t.Parallel: a script written while another goroutine forks can inherit the
// open file into the child and fail with "text file busy" (ETXTBSY).

const testID = "test"

// testOptions are DefaultOptions with a short grace so kill tests stay fast.
func testOptions() Options {
	o := DefaultOptions()
	o.Identifier = testID
	o.Timeout = 10 * time.Second
	o.KillGrace = 200 * time.Millisecond
	return o
}

// writeScript writes an executable /bin/sh script and returns its path.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// readPID reads a pid a helper plugin wrote to file.
func readPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("grandchild pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("grandchild pid %q: %v", b, err)
	}
	return pid
}

// assertGone fails unless pid disappears soon (reaping by init is
// asynchronous) and kills it in any case.
func assertGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still running after the plugin was killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		body     string
		modify   func(*Options)
		wantRC   int
		wantOut  string
		exitedOK bool
	}{
		{name: "ok", body: "echo 'OK - fine|a=1'; exit 0", wantRC: 0, wantOut: "OK - fine|a=1"},
		{name: "warning", body: "echo WARNING; exit 1", wantRC: 1, wantOut: "WARNING"},
		{name: "critical", body: "echo 'test plugin CRITICAL'; exit 2", wantRC: 2, wantOut: "test plugin CRITICAL"},
		{name: "unknown", body: "echo UNKNOWN; exit 3", wantRC: 3, wantOut: "UNKNOWN"},
		{name: "no output", body: "exit 0", wantRC: 0, wantOut: ""},
		{name: "long output keeps newlines", body: "printf 'first\\nsecond\\n\\n'", wantRC: 0, wantOut: "first\nsecond"},
		{name: "NULs and white space trimmed", body: "printf '\\000\\000 \\t hello  world \\n\\000'", wantRC: 0, wantOut: "hello  world"},
		{
			name:   "stdout and stderr on failure",
			body:   "echo stdout; echo stdout; echo stderr >&2; echo stderr >&2; exit 2",
			wantRC: 2, wantOut: "stdout\nstdout\n[stderr\nstderr]",
		},
		{name: "stderr only on failure", body: "echo 'some errors on stderr' >&2; exit 1", wantRC: 1, wantOut: "[some errors on stderr]"},
		{name: "stderr ignored on success", body: "echo fine; echo noise >&2; exit 0", wantRC: 0, wantOut: "fine"},
		{
			name:   "stderr hidden without show_error_output",
			body:   "echo out; echo err >&2; exit 2",
			modify: func(o *Options) { o.ShowErrorOutput = false },
			wantRC: 2, wantOut: "out",
		},
		{
			name:   "rc 5 out of bounds",
			body:   "echo 'exiting with exit code 5'; echo err >&2; exit 5",
			wantRC: 3, wantOut: "CRITICAL: Return code of 5 is out of bounds. (worker: test)\nexiting with exit code 5\n[err]",
		},
		{name: "rc 42 without output", body: "exit 42", wantRC: 3, wantOut: "CRITICAL: Return code of 42 is out of bounds. (worker: test)"},
		{name: "rc 255", body: "echo x; exit 255", wantRC: 3, wantOut: "CRITICAL: Return code of 255 is out of bounds. (worker: test)\nx"},
		{
			name:   "rc 126 from plugin",
			body:   "echo ignored; exit 126",
			wantRC: 3, wantOut: "UNKNOWN: Return code of 126 is out of bounds. Make sure the plugin you're trying to run is executable. (worker: test)",
		},
		{
			name:   "rc 127 from plugin",
			body:   "echo ignored; exit 127",
			wantRC: 3, wantOut: "UNKNOWN: Return code of 127 is out of bounds. Make sure the plugin you're trying to run actually exists. (worker: test)",
		},
	}
	paths := make([]string, len(tests))
	for i, tt := range tests {
		paths[i] = writeScript(t, dir, fmt.Sprintf("plugin%d", i), tt.body)
	}
	t.Parallel()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opt := testOptions()
			if tt.modify != nil {
				tt.modify(&opt)
			}
			before := time.Now()
			res := Run(t.Context(), paths[i], opt)
			if res.ReturnCode != tt.wantRC || res.Output != tt.wantOut {
				t.Errorf("Run = rc %d %q, want rc %d %q", res.ReturnCode, res.Output, tt.wantRC, tt.wantOut)
			}
			if !res.ExitedOK || res.EarlyTimeout || res.Cancelled || res.Signal != "" || res.Err != nil {
				t.Errorf("Run flags = %+v, want a plain exit", res)
			}
			if res.StartTime.Before(before) || res.FinishTime.Before(res.StartTime) {
				t.Errorf("times start %v finish %v, run began %v", res.StartTime, res.FinishTime, before)
			}
		})
	}
}

func TestRunStartFailures(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badFormat := filepath.Join(dir, "bad-format")
	if err := os.WriteFile(badFormat, []byte("\x7fELF garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Parallel()
	const (
		text126 = "UNKNOWN: Return code of 126 is out of bounds. Make sure the plugin you're trying to run is executable. (worker: test)"
		text127 = "UNKNOWN: Return code of 127 is out of bounds. Make sure the plugin you're trying to run actually exists. (worker: test)"
	)
	tests := []struct {
		name    string
		cmd     string
		want    string
		started bool // the shell started, the plugin did not
	}{
		{name: "missing absolute path", cmd: filepath.Join(dir, "missing") + " -w 1", want: text127},
		{name: "missing in PATH", cmd: "gearbridge-no-such-plugin --help", want: text127},
		{name: "missing through the shell", cmd: filepath.Join(dir, "missing") + " | cat; exit 127", want: text127, started: true},
		{name: "not executable", cmd: notExec, want: text126},
		{name: "directory", cmd: dir, want: text126},
		{name: "exec format error", cmd: badFormat, want: text126},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Run(t.Context(), tt.cmd, testOptions())
			if res.ReturnCode != 3 || res.Output != tt.want {
				t.Errorf("Run = rc %d %q, want rc 3 %q", res.ReturnCode, res.Output, tt.want)
			}
			if res.ExitedOK != tt.started || (res.Err != nil) == tt.started {
				t.Errorf("ExitedOK = %v, Err = %v; want started=%v", res.ExitedOK, res.Err, tt.started)
			}
		})
	}
}

func TestRunSignal(t *testing.T) {
	dir := t.TempDir()
	killer := writeScript(t, dir, "killer", `echo "before the signal"; echo err >&2; kill -"$1" $$; sleep 5`)
	t.Parallel()
	tests := []struct {
		sig  string
		num  int
		name string
	}{
		{"INT", 2, "SIGINT"},
		{"TERM", 15, "SIGTERM"},
		{"KILL", 9, "SIGKILL"},
		{"SEGV", 11, "SIGSEGV"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Run(t.Context(), killer+" "+tt.sig, testOptions())
			want := fmt.Sprintf("UNKNOWN: Return code of %d is out of bounds. Plugin exited by signal: %s. (worker: test)\nbefore the signal\n[err]", tt.num, tt.name)
			if res.ReturnCode != 3 || res.Output != want {
				t.Errorf("Run = rc %d %q, want rc 3 %q", res.ReturnCode, res.Output, want)
			}
			if res.Signal != tt.name || res.ExitedOK || res.EarlyTimeout {
				t.Errorf("Signal %q ExitedOK %v EarlyTimeout %v, want %s false false", res.Signal, res.ExitedOK, res.EarlyTimeout, tt.name)
			}
		})
	}
}

// sleeper forks a sleeping grandchild, writes its pid to $1, prints
// "partial" and sleeps itself.
const sleeperBody = `sleep 30 &
echo $! > "$1"
echo partial
sleep 30`

func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	sleeper := writeScript(t, dir, "sleep", sleeperBody)
	t.Parallel()
	tests := []struct {
		kind Kind
		ret  int
		want string
	}{
		{KindService, 3, "(Service Check Timed Out On Worker: test)\npartial"},
		{KindHost, 2, "(Host Check Timed Out On Worker: test)\npartial"},
		{KindOther, 0, "(Check Timed Out On Worker: test)\npartial"},
	}
	for i, tt := range tests {
		t.Run(TimeoutText(tt.kind, testID), func(t *testing.T) {
			pidFile := filepath.Join(dir, fmt.Sprintf("pid%d", i))
			opt := testOptions()
			opt.Timeout = time.Second
			opt.Kind = tt.kind
			opt.TimeoutReturn = tt.ret
			start := time.Now()
			res := Run(t.Context(), sleeper+" "+pidFile, opt)
			took := time.Since(start)
			if res.ReturnCode != tt.ret || res.Output != tt.want {
				t.Errorf("Run = rc %d %q, want rc %d %q", res.ReturnCode, res.Output, tt.ret, tt.want)
			}
			if !res.EarlyTimeout || res.ExitedOK || res.Cancelled {
				t.Errorf("EarlyTimeout %v ExitedOK %v Cancelled %v, want true false false", res.EarlyTimeout, res.ExitedOK, res.Cancelled)
			}
			if took < opt.Timeout || took > opt.Timeout+2*opt.KillGrace+time.Second {
				t.Errorf("Run took %v, want about %v", took, opt.Timeout)
			}
			assertGone(t, readPID(t, pidFile))
		})
	}
}

func TestRunTimeoutEscalatesToKill(t *testing.T) {
	dir := t.TempDir()
	// TERM stays ignored in sleep too: ignored signals survive exec.
	stubborn := writeScript(t, dir, "stubborn", `trap '' TERM; echo stubborn; sleep 30`)
	polite := writeScript(t, dir, "polite", `trap 'echo cleaned up; exit 2' TERM; sleep 30 & wait`)
	t.Parallel()
	opt := testOptions()
	opt.Timeout = 300 * time.Millisecond
	opt.KillGrace = 500 * time.Millisecond

	t.Run("ignores SIGTERM", func(t *testing.T) {
		start := time.Now()
		res := Run(t.Context(), stubborn, opt)
		took := time.Since(start)
		want := "(Check Timed Out On Worker: test)\nstubborn"
		if res.ReturnCode != DefaultTimeoutReturn || res.Output != want || res.Signal != "SIGKILL" {
			t.Errorf("Run = rc %d %q signal %q, want rc %d %q SIGKILL", res.ReturnCode, res.Output, res.Signal, DefaultTimeoutReturn, want)
		}
		if took < opt.Timeout+opt.KillGrace {
			t.Errorf("Run took %v, want at least timeout + grace", took)
		}
	})
	t.Run("cleans up on SIGTERM", func(t *testing.T) {
		start := time.Now()
		res := Run(t.Context(), polite, opt)
		took := time.Since(start)
		want := "(Check Timed Out On Worker: test)\ncleaned up"
		if res.ReturnCode != DefaultTimeoutReturn || res.Output != want {
			t.Errorf("Run = rc %d %q, want rc %d %q", res.ReturnCode, res.Output, DefaultTimeoutReturn, want)
		}
		if took >= opt.Timeout+opt.KillGrace {
			t.Errorf("Run took %v, want less than timeout + grace", took)
		}
	})
}

func TestRunCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	sleeper := writeScript(t, dir, "sleep", sleeperBody)
	pidFile := filepath.Join(dir, "pid")
	t.Parallel()

	ctx, cancel := context.WithCancel(t.Context())
	timer := time.AfterFunc(500*time.Millisecond, cancel)
	defer timer.Stop()
	start := time.Now()
	res := Run(ctx, sleeper+" "+pidFile, testOptions())
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Run took %v after cancelling at 0.5 s", took)
	}
	want := "(Check Cancelled On Worker: test)\npartial"
	if res.ReturnCode != 3 || res.Output != want {
		t.Errorf("Run = rc %d %q, want rc 3 %q", res.ReturnCode, res.Output, want)
	}
	if !res.Cancelled || res.EarlyTimeout || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("Cancelled %v EarlyTimeout %v Err %v, want true false context.Canceled", res.Cancelled, res.EarlyTimeout, res.Err)
	}
	assertGone(t, readPID(t, pidFile))

	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res := Run(ctx, "/bin/true", testOptions())
		if !res.Cancelled || res.ReturnCode != 3 || res.Output != "(Check Cancelled On Worker: test)" {
			t.Errorf("Run = %+v, want a cancelled result", res)
		}
	})
}

func TestRunLeftoverProcesses(t *testing.T) {
	dir := t.TempDir()
	holder := writeScript(t, dir, "holder", `sleep 30 & echo $! > "$1"; echo done; exit 1`)
	detached := writeScript(t, dir, "detached", `sleep 30 >/dev/null 2>&1 & echo $! > "$1"; echo done`)
	t.Parallel()

	t.Run("holding the output pipe is killed", func(t *testing.T) {
		pidFile := filepath.Join(dir, "holder.pid")
		opt := testOptions()
		start := time.Now()
		res := Run(t.Context(), holder+" "+pidFile, opt)
		took := time.Since(start)
		if res.ReturnCode != 1 || res.Output != "done" || !res.ExitedOK {
			t.Errorf("Run = %+v, want rc 1 \"done\"", res)
		}
		if took > 2*opt.KillGrace+time.Second {
			t.Errorf("Run took %v, want about one kill grace", took)
		}
		assertGone(t, readPID(t, pidFile))
	})
	t.Run("not holding the pipe is left alone", func(t *testing.T) {
		pidFile := filepath.Join(dir, "detached.pid")
		res := Run(t.Context(), detached+" "+pidFile, testOptions())
		pid := readPID(t, pidFile)
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		if res.ReturnCode != 0 || res.Output != "done" {
			t.Errorf("Run = %+v, want rc 0 \"done\"", res)
		}
		if !alive(pid) {
			t.Errorf("detached background process %d was killed", pid)
		}
	})
}

// TestRunOutputCap does not run in parallel: it measures allocations.
func TestRunOutputCap(t *testing.T) {
	dir := t.TempDir()
	const printed = 20 << 20
	flood := writeScript(t, dir, "flood", fmt.Sprintf(
		`head -c %d /dev/zero | tr '\0' x; head -c 1048576 /dev/zero | tr '\0' e >&2; exit "$1"`, printed))
	const limit = 1 << 20

	for _, rc := range []int{0, 2} {
		t.Run(fmt.Sprintf("rc %d", rc), func(t *testing.T) {
			opt := testOptions()
			opt.MaxOutput = limit
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			res := Run(t.Context(), fmt.Sprintf("%s %d", flood, rc), opt)
			runtime.ReadMemStats(&after)

			if res.ReturnCode != rc || !res.ExitedOK || res.EarlyTimeout {
				t.Fatalf("Run = rc %d ExitedOK %v EarlyTimeout %v, want rc %d from a plugin that finished", res.ReturnCode, res.ExitedOK, res.EarlyTimeout, rc)
			}
			note := truncationNote(limit, printed+1<<20-limit)
			if !strings.HasSuffix(res.Output, "\n"+note) {
				t.Errorf("output ends %q, want note %q", res.Output[max(0, len(res.Output)-80):], note)
			}
			// Two brackets and an LF when stderr is shown.
			if len(res.Output) > limit+len(note)+4 {
				t.Errorf("output is %d bytes, want at most %d + note", len(res.Output), limit)
			}
			if !strings.HasPrefix(res.Output, "xxxx") {
				t.Errorf("output starts %q, want stdout", res.Output[:min(len(res.Output), 20)])
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > printed/2 {
				t.Errorf("Run allocated %d bytes for %d bytes of output capped at %d", alloc, printed, limit)
			}
		})
	}
}

func TestRunEnvironment(t *testing.T) {
	dir := t.TempDir()
	env := writeScript(t, dir, "env", `echo "BLAH=${BLAH-unset} EXTRA=${EXTRA-unset} ARGS=$*"`)
	t.Parallel()
	tests := []struct {
		name  string
		cmd   string
		extra []string
		want  string
	}{
		{name: "prefix", cmd: "BLAH=BLUB " + env, want: "BLAH=BLUB EXTRA=unset ARGS="},
		{name: "quoted prefix and args", cmd: `BLAH='a b' ` + env + ` "c d"`, want: "BLAH=a b EXTRA=unset ARGS=c d"},
		{name: "options env", cmd: env, extra: []string{"EXTRA=1"}, want: "BLAH=unset EXTRA=1 ARGS="},
		{name: "prefix overrides options", cmd: "EXTRA=2 " + env, extra: []string{"EXTRA=1"}, want: "BLAH=unset EXTRA=2 ARGS="},
		{name: "prefix through the shell", cmd: "BLAH=BLUB " + env + " $((1+1))", want: "BLAH=BLUB EXTRA=unset ARGS=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := testOptions()
			opt.Env = tt.extra
			res := Run(t.Context(), tt.cmd, opt)
			if res.ReturnCode != 0 || res.Output != tt.want {
				t.Errorf("Run = rc %d %q, want rc 0 %q", res.ReturnCode, res.Output, tt.want)
			}
		})
	}
}

func TestRunShell(t *testing.T) {
	dir := t.TempDir()
	ok := writeScript(t, dir, "ok", `echo "ok $1"`)
	t.Parallel()
	tests := []struct {
		cmd    string
		wantRC int
		want   string
	}{
		{cmd: "echo -n 'test'; exit 2", wantRC: 2, want: "test"},
		{cmd: "echo $0", wantRC: 0, want: Shell},
		{cmd: ok + " lower | tr a-z A-Z", wantRC: 0, want: "OK LOWER"},
		{cmd: ok + " 'single quoted; not a separator'", wantRC: 0, want: "ok single quoted; not a separator"},
		{cmd: "exit 1", wantRC: 1, want: ""},
		{cmd: "if true; then echo yes; fi", wantRC: 0, want: "yes"},
		{cmd: "echo unterminated 'quote", wantRC: 2, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			opt := testOptions()
			opt.ShowErrorOutput = false
			res := Run(t.Context(), tt.cmd, opt)
			if res.ReturnCode != tt.wantRC || res.Output != tt.want {
				t.Errorf("Run = rc %d %q, want rc %d %q", res.ReturnCode, res.Output, tt.wantRC, tt.want)
			}
		})
	}
}

func TestRunRestrictPath(t *testing.T) {
	dir := t.TempDir()
	ok := writeScript(t, dir, "check_ok", `echo "OK $*"`)
	t.Parallel()
	tests := []struct {
		name   string
		cmd    string
		chars  string
		wantRC int
		want   string
	}{
		{name: "relative path", cmd: "./check_ok", wantRC: 3, want: restrictedText},
		{name: "allowed prefix", cmd: ok + " -w 1", wantRC: 0, want: "OK -w 1"},
		{name: "other prefix", cmd: "/bin/echo hello", wantRC: 3, want: restrictedText},
		{name: "dot-dot escape", cmd: dir + "/../check_ok", wantRC: 3, want: restrictedText},
		{name: "env prefix", cmd: "LD_PRELOAD=/tmp/x.so " + ok, wantRC: 3, want: restrictedText},
		{name: "quote rejected", cmd: ok + " 'a b'", wantRC: 3, want: restrictedText},
		{name: "quote allowed when not forbidden", cmd: ok + " 'a b'", chars: "$&();<>`|", wantRC: 0, want: "OK a b"},
		{name: "semicolon rejected", cmd: ok + "; /bin/echo owned", wantRC: 3, want: restrictedText},
		{name: "newline rejected", cmd: ok + "\n/bin/echo owned", chars: "$", wantRC: 3, want: restrictedText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := testOptions()
			opt.RestrictPath = []string{dir}
			opt.RestrictCommandCharacters = tt.chars
			res := Run(t.Context(), tt.cmd, opt)
			if res.ReturnCode != tt.wantRC || res.Output != tt.want {
				t.Errorf("Run = rc %d %q, want rc %d %q", res.ReturnCode, res.Output, tt.wantRC, tt.want)
			}
			if rejected := errors.Is(res.Err, ErrRestricted); rejected != (tt.want == restrictedText) {
				t.Errorf("Err = %v, want ErrRestricted: %v", res.Err, !rejected)
			}
		})
	}
}

func TestRunInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cmd  string
		opt  func(*Options)
		want string
	}{
		{name: "empty command", cmd: " \t ", want: "UNKNOWN: empty command line (worker: test)"},
		{name: "timeout_return 4", cmd: "/bin/true", opt: func(o *Options) { o.TimeoutReturn = 4 }, want: "UNKNOWN: invalid plugin options: timeout_return 4: must be 0..3 (worker: test)"},
		{name: "relative restrict_path", cmd: "/bin/true", opt: func(o *Options) { o.RestrictPath = []string{"lib"} }, want: `UNKNOWN: invalid plugin options: restrict_path "lib": must be an absolute path (worker: test)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := testOptions()
			if tt.opt != nil {
				tt.opt(&opt)
			}
			res := Run(t.Context(), tt.cmd, opt)
			if res.ReturnCode != 3 || res.Output != tt.want || res.Err == nil {
				t.Errorf("Run = rc %d %q err %v, want rc 3 %q and an error", res.ReturnCode, res.Output, res.Err, tt.want)
			}
		})
	}
}

// TestDefaultTimeoutReturn: a timed-out plugin is CRITICAL by default, as
// with the classic C worker and its shipped config files.
func TestDefaultTimeoutReturn(t *testing.T) {
	if got := DefaultOptions().TimeoutReturn; got != 2 {
		t.Errorf("DefaultOptions().TimeoutReturn = %d, want 2", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultOptions().Validate(); err != nil {
		t.Errorf("DefaultOptions().Validate() = %v", err)
	}
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("Options{}.Validate() = %v", err)
	}
	bad := map[string]func(*Options){
		"negative timeout":     func(o *Options) { o.Timeout = -1 },
		"timeout_return -1":    func(o *Options) { o.TimeoutReturn = -1 },
		"timeout_return 4":     func(o *Options) { o.TimeoutReturn = 4 },
		"unknown kind":         func(o *Options) { o.Kind = 7 },
		"negative max output":  func(o *Options) { o.MaxOutput = -1 },
		"negative kill grace":  func(o *Options) { o.KillGrace = -1 },
		"relative restriction": func(o *Options) { o.RestrictPath = []string{"/ok", "usr/lib"} },
	}
	for name, modify := range bad {
		o := DefaultOptions()
		modify(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
		}
	}
}

func TestRunConcurrent(t *testing.T) {
	dir := t.TempDir()
	echo := writeScript(t, dir, "echo", `echo "run $1"; echo "err $1" >&2; exit 1`)
	t.Parallel()
	const n = 32
	results := make(chan string, n)
	for i := range n {
		go func() {
			res := Run(t.Context(), fmt.Sprintf("%s %d", echo, i), testOptions())
			results <- res.Output
		}()
	}
	seen := make(map[string]bool)
	for range n {
		seen[<-results] = true
	}
	for i := range n {
		if want := fmt.Sprintf("run %d\n[err %d]", i, i); !seen[want] {
			t.Errorf("missing output %q", want)
		}
	}
}

func BenchmarkRunTrue(b *testing.B) {
	opt := testOptions()
	for b.Loop() {
		if res := Run(b.Context(), "/bin/true", opt); res.ReturnCode != 0 {
			b.Fatalf("Run(/bin/true) = %+v", res)
		}
	}
}
