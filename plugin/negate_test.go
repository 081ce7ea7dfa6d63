package plugin

import (
	"strings"
	"testing"
	"time"
)

// TestInternalNegate: with InternalNegate, ".../negate [options] /plugin"
// runs the plugin and maps its state as negate does, without a negate
// binary (the path below does not exist).
func TestInternalNegate(t *testing.T) {
	dir := t.TempDir()
	say := writeScript(t, dir, "say", `echo "$1"; exit $2`)
	t.Parallel()
	const negate = "/nonexistent/libexec/negate"
	tests := []struct {
		name   string
		cmd    string
		wantRC int
		want   string
	}{
		{name: "default swaps OK to CRITICAL", cmd: negate + " " + say + " 'OK - fine' 0", wantRC: 2, want: "OK - fine"},
		{name: "default swaps CRITICAL to OK", cmd: negate + " " + say + " 'CRITICAL - bad' 2", wantRC: 0, want: "CRITICAL - bad"},
		{name: "default keeps WARNING", cmd: negate + " " + say + " 'WARNING - hm' 1", wantRC: 1, want: "WARNING - hm"},
		{name: "substitute", cmd: negate + " -s " + say + " 'OK - fine OK' 0", wantRC: 2, want: "CRITICAL - fine OK"},
		{name: "numbers and long options", cmd: negate + " --ok=1 -c 0 --substitute " + say + " 'OK - x' 0", wantRC: 1, want: "WARNING - x"},
		{name: "unknown to ok", cmd: negate + " -u OK -s " + say + " 'UNKNOWN - y' 3", wantRC: 0, want: "OK - y"},
		{name: "to unknown", cmd: negate + " -o UNKNOWN " + say + " 'OK - z' 0", wantRC: 3, want: "OK - z"},
		{name: "quoted plugin", cmd: negate + ` -o 1 "` + say + ` 'OK - q' 0"`, wantRC: 1, want: "OK - q"},
		{name: "shell in quoted plugin", cmd: negate + ` -s -o 2 "/bin/sh -c 'echo OK - sh; exit 0'"`, wantRC: 2, want: "CRITICAL - sh"},
		{name: "internal check_dummy", cmd: negate + " -s /usr/lib/nagios/plugins/check_dummy 0 text", wantRC: 2, want: "CRITICAL: text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := testOptions()
			opt.InternalNegate = true
			res := Run(t.Context(), tt.cmd, opt)
			if res.ReturnCode != tt.wantRC || res.Output != tt.want {
				t.Errorf("Run(%q) = rc %d %q, want rc %d %q", tt.cmd, res.ReturnCode, res.Output, tt.wantRC, tt.want)
			}
		})
	}
	t.Run("off runs the real negate", func(t *testing.T) {
		res := Run(t.Context(), negate+" "+say+" OK 0", testOptions())
		if res.ReturnCode != 3 || !strings.Contains(res.Output, "actually exists") {
			t.Errorf("Run = rc %d %q, want the not-found result", res.ReturnCode, res.Output)
		}
	})
	t.Run("no absolute plugin runs the real negate", func(t *testing.T) {
		opt := testOptions()
		opt.InternalNegate = true
		res := Run(t.Context(), negate+" ./relative OK 0", opt)
		if res.ReturnCode != 3 || !strings.Contains(res.Output, "actually exists") {
			t.Errorf("Run = rc %d %q, want the not-found result", res.ReturnCode, res.Output)
		}
	})
}

// TestInternalNegateTimeout: negate's -t bounds the plugin, and -T sets the
// state of a timed-out plugin.
func TestInternalNegateTimeout(t *testing.T) {
	dir := t.TempDir()
	sleeper := writeScript(t, dir, "sleeper", "echo waiting; sleep 30")
	t.Parallel()
	tests := []struct {
		opts   string
		wantRC int
	}{
		{opts: "-t 1", wantRC: DefaultTimeoutReturn},
		{opts: "-t 1 -T OK", wantRC: 0},
		{opts: "--timeout=1 --timeout-result=1", wantRC: 1},
	}
	for _, tt := range tests {
		t.Run(tt.opts, func(t *testing.T) {
			t.Parallel()
			opt := testOptions()
			opt.InternalNegate = true
			opt.Kind = KindHost
			start := time.Now()
			res := Run(t.Context(), "/x/negate "+tt.opts+" "+sleeper, opt)
			if d := time.Since(start); d < time.Second || d > 5*time.Second {
				t.Errorf("run took %v, want about negate's 1 s timeout", d)
			}
			want := "(Host Check Timed Out On Worker: test)\nwaiting"
			if res.ReturnCode != tt.wantRC || res.Output != want || !res.EarlyTimeout {
				t.Errorf("Run = rc %d %q, want rc %d %q", res.ReturnCode, res.Output, tt.wantRC, want)
			}
		})
	}
}

// TestWorkerNameInResult: the worker name goes in front of the output or
// before the perfdata, only for plugins that exited with 0..3.
func TestWorkerNameInResult(t *testing.T) {
	dir := t.TempDir()
	say := writeScript(t, dir, "say", `echo "$1"; exit $2`)
	t.Parallel()
	tests := []struct {
		mode, out string
		rc        string
		wantRC    int
		want      string
	}{
		{mode: WorkerNameOn, out: "OK - fine|a=1", rc: "0", wantRC: 0, want: "(worker: test) OK - fine|a=1"},
		{mode: WorkerNamePrePerfdata, out: "OK - fine | a=1", rc: "1", wantRC: 1, want: "OK - fine  (worker: test) | a=1"},
		{mode: WorkerNamePrePerfdata, out: "OK - no perfdata", rc: "0", wantRC: 0, want: "OK - no perfdata (worker: test)"},
		{mode: WorkerNameOff, out: "OK", rc: "0", wantRC: 0, want: "OK"},
		{mode: WorkerNameOn, out: "bad", rc: "7", wantRC: 3, want: "CRITICAL: Return code of 7 is out of bounds. (worker: test)\nbad"},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"_"+tt.rc, func(t *testing.T) {
			opt := testOptions()
			opt.WorkerNameInResult = tt.mode
			res := Run(t.Context(), say+" '"+tt.out+"' "+tt.rc, opt)
			if res.ReturnCode != tt.wantRC || res.Output != tt.want {
				t.Errorf("Run = rc %d %q, want rc %d %q", res.ReturnCode, res.Output, tt.wantRC, tt.want)
			}
		})
	}
	t.Run("invalid", func(t *testing.T) {
		opt := testOptions()
		opt.WorkerNameInResult = "sometimes"
		if err := opt.Validate(); err == nil {
			t.Error("Validate accepted worker_name_in_result=sometimes")
		}
	})
}
