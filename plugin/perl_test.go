package plugin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// needPerl skips unless perl and Monitoring::Plugin are installed (make
// test installs them as root: scripts/install-deps.sh).
func needPerl(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("perl", "-MMonitoring::Plugin", "-e", "1").CombinedOutput(); err != nil {
		t.Skipf("SKIP: perl with Monitoring::Plugin is needed (apt-get install perl libmonitoring-plugin-perl): %v %s", err, out)
	}
}

// testPlugin is the absolute path of a Perl plugin in testdata/perl.
func testPlugin(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "perl", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newTestPerl returns a Perl server that the test stops.
func newTestPerl(t *testing.T, cfg PerlConfig) *Perl {
	t.Helper()
	p := NewPerl(cfg)
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close Perl server: %v", err)
		}
	})
	return p
}

func perlOptions(p *Perl) Options {
	o := testOptions()
	o.Perl = p
	return o
}

// runsEmbedded reports whether the plugin's parent was the Perl server,
// which where.pl and noepn.pl print.
func runsEmbedded(t *testing.T, res Result) bool {
	t.Helper()
	switch {
	case strings.HasPrefix(res.Output, "embedded"):
		return true
	case strings.HasPrefix(res.Output, "executed"):
		return false
	}
	t.Fatalf("unexpected output %q", res.Output)
	return false
}

// TestPerlSameAsExecuted: a Monitoring::Plugin check gives the same return
// code and output (text, perfdata, long output, stderr) embedded as
// executed, for every state.
func TestPerlSameAsExecuted(t *testing.T) {
	needPerl(t)
	p := newTestPerl(t, PerlConfig{})
	mp := testPlugin(t, "mp_check.pl")
	for rc := range 4 {
		for _, lines := range []int{0, 3} {
			cmd := fmt.Sprintf("%s --state %d --text 'state %d here' --lines %d extra", mp, rc, rc, lines)
			t.Run(fmt.Sprintf("rc%d_lines%d", rc, lines), func(t *testing.T) {
				exec := Run(t.Context(), cmd, testOptions())
				emb := Run(t.Context(), cmd, perlOptions(p))
				if exec.ReturnCode != rc || !strings.Contains(exec.Output, fmt.Sprintf("state %d here", rc)) || !strings.Contains(exec.Output, "| time=0.5s;1;2 args=1;;") {
					t.Fatalf("executed run = rc %d %q", exec.ReturnCode, exec.Output)
				}
				if emb.ReturnCode != exec.ReturnCode || emb.Output != exec.Output || !emb.ExitedOK {
					t.Errorf("embedded = rc %d %q (exited ok %v), executed = rc %d %q", emb.ReturnCode, emb.Output, emb.ExitedOK, exec.ReturnCode, exec.Output)
				}
				if lines > 0 && !strings.Contains(emb.Output, "\ndetail 3") {
					t.Errorf("long output missing: %q", emb.Output)
				}
				if rc != 0 && !strings.HasSuffix(emb.Output, "[note on stderr]") {
					t.Errorf("stderr missing: %q", emb.Output)
				}
			})
		}
	}
	if s := p.Stats(); s.Checks != 8 || s.ServerStarts != 1 || s.CompileErrors != 0 {
		t.Errorf("stats = %+v, want 8 checks on one server", s)
	}
}

// TestPerlMarkers: "# nagios: -epn" runs executed; a plugin without a marker
// runs executed unless use_embedded_perl_implicitly; +epn runs embedded.
func TestPerlMarkers(t *testing.T) {
	needPerl(t)
	explicit := newTestPerl(t, PerlConfig{})
	implicit := newTestPerl(t, PerlConfig{Implicit: true})
	where, noepn := testPlugin(t, "where.pl"), testPlugin(t, "noepn.pl")
	// The marker counts only within the first 10 lines.
	src, err := os.ReadFile(where)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(src), "\n", 2)
	late := filepath.Join(t.TempDir(), "late.pl")
	body := lines[0] + "\n" + strings.Repeat("#\n", 9) + "# nagios: +epn\n" + lines[1]
	if err := os.WriteFile(late, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	early := filepath.Join(filepath.Dir(late), "early.pl")
	body = lines[0] + "\n" + strings.Repeat("#\n", 8) + "# nagios: +epn\n" + lines[1]
	if err := os.WriteFile(early, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		p        *Perl
		cmd      string
		embedded bool
	}{
		{name: "no marker", p: explicit, cmd: where, embedded: false},
		{name: "no marker implicitly", p: implicit, cmd: where, embedded: true},
		{name: "-epn", p: explicit, cmd: noepn, embedded: false},
		{name: "-epn implicitly", p: implicit, cmd: noepn, embedded: false},
		{name: "shell command line", p: implicit, cmd: where + " ; true", embedded: false},
		{name: "off", p: nil, cmd: where, embedded: false},
		{name: "+epn on line 10", p: explicit, cmd: early, embedded: true},
		{name: "+epn on line 11", p: explicit, cmd: late, embedded: false},
		{name: "PATH prefix goes through the shell", p: implicit, cmd: "PATH=" + filepath.Dir(where) + ":/usr/bin:/bin where.pl", embedded: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := testOptions()
			opt.Perl = tt.p
			res := Run(t.Context(), tt.cmd, opt)
			if got := runsEmbedded(t, res); got != tt.embedded {
				t.Errorf("embedded = %v, want %v (%q)", got, tt.embedded, res.Output)
			}
		})
	}
	t.Run("found in the worker's PATH", func(t *testing.T) {
		t.Setenv("PATH", filepath.Dir(where)+":"+os.Getenv("PATH"))
		opt := testOptions()
		opt.Perl = implicit
		if res := Run(t.Context(), "where.pl", opt); !runsEmbedded(t, res) {
			t.Errorf("where.pl from PATH ran executed: %q", res.Output)
		}
	})
}

// TestPerlEnvironment: arguments, environment (the worker's, the options'
// and the command line's), working directory and $0 are those of an
// executed run.
func TestPerlEnvironment(t *testing.T) {
	needPerl(t)
	p := newTestPerl(t, PerlConfig{})
	dir := t.TempDir()
	script := filepath.Join(dir, "env.pl")
	body := "#!/usr/bin/perl\n# nagios: +epn\nuse Cwd;\nprint join('|', $0, getcwd(), $ENV{EPN_A} // '-', $ENV{EPN_B} // '-', $ENV{PATH} ? 'path' : 'nopath', map { \"<$_>\" } @ARGV), \"\\n\";\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := `EPN_B='b b' ` + script + ` one "two words" '' 'three'`
	opt := testOptions()
	opt.Env = []string{"EPN_A=from options"}
	exec := Run(t.Context(), cmd, opt)
	opt.Perl = p
	emb := Run(t.Context(), cmd, opt)
	cwd, _ := os.Getwd()
	want := script + "|" + cwd + "|from options|b b|path|<one>|<two words>|<>|<three>"
	if exec.Output != want || emb.Output != want || emb.ReturnCode != 0 {
		t.Errorf("executed %q\nembedded %q\nwant     %q", exec.Output, emb.Output, want)
	}
	if s := p.Stats(); s.Checks != 1 {
		t.Errorf("checks = %d, want 1 (the plugin ran embedded)", s.Checks)
	}
}

// TestPerlWarningsSwitch: "-w" on the #! line turns on warnings as it
// does for an executed script.
func TestPerlWarningsSwitch(t *testing.T) {
	needPerl(t)
	p := newTestPerl(t, PerlConfig{})
	script := filepath.Join(t.TempDir(), "warn.pl")
	body := "#!/usr/bin/perl -w\n# nagios: +epn\nmy $x; my $y = 'a' . $x;\nprint \"done\\n\";\nexit 1;\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	exec := Run(t.Context(), script, testOptions())
	emb := Run(t.Context(), script, perlOptions(p))
	want := "done\n[Use of uninitialized value $x in concatenation (.) or string at " + script + " line 3.]"
	if exec.Output != want || emb.Output != want || emb.ReturnCode != 1 {
		t.Errorf("executed %q\nembedded %q\nwant     %q", exec.Output, emb.Output, want)
	}
}

// TestPerlNoLeak: a plugin that sets globals and exits, run twice, sees a
// clean interpreter each time.
func TestPerlNoLeak(t *testing.T) {
	needPerl(t)
	p := newTestPerl(t, PerlConfig{})
	g := testPlugin(t, "global.pl")
	for i := range 3 {
		res := Run(t.Context(), fmt.Sprintf("EPN_TEST=v%d %s a%d", i, g, i), perlOptions(p))
		want := fmt.Sprintf("global: clean count=1 env=v%d args=a%d", i, i)
		if res.ReturnCode != 0 || res.Output != want {
			t.Fatalf("run %d = rc %d %q, want %q", i, res.ReturnCode, res.Output, want)
		}
	}
	if s := p.Stats(); s.ServerStarts != 1 || s.Checks != 3 {
		t.Errorf("stats = %+v, want 3 checks on one server", s)
	}
}

// TestPerlFailures: die, compile errors, the timeout and the output cap
// give the results executed plugins give, with the classic texts.
func TestPerlFailures(t *testing.T) {
	needPerl(t)
	p := newTestPerl(t, PerlConfig{})
	t.Run("die", func(t *testing.T) {
		cmd := testPlugin(t, "die.pl")
		exec := Run(t.Context(), cmd, testOptions())
		emb := Run(t.Context(), cmd, perlOptions(p))
		want := "CRITICAL: Return code of 255 is out of bounds. (worker: test)\nbefore the die\n[plugin died here]"
		if exec.ReturnCode != 3 || exec.Output != want {
			t.Fatalf("executed = rc %d %q, want %q", exec.ReturnCode, exec.Output, want)
		}
		if emb.ReturnCode != exec.ReturnCode || emb.Output != exec.Output {
			t.Errorf("embedded = rc %d %q, want %q", emb.ReturnCode, emb.Output, exec.Output)
		}
	})
	t.Run("compile error", func(t *testing.T) {
		cmd := testPlugin(t, "broken.pl")
		for range 2 { // the second answer comes from the cache
			res := Run(t.Context(), cmd, perlOptions(p))
			prefix := `**ePN failed to compile ` + cmd + `: "syntax error at ` + cmd + ` line 5`
			if res.ReturnCode != 3 || !strings.HasPrefix(res.Output, prefix) || strings.Contains(res.Output, "never printed") {
				t.Fatalf("compile error = rc %d %q, want prefix %q", res.ReturnCode, res.Output, prefix)
			}
		}
		if s := p.Stats(); s.CompileErrors != 2 {
			t.Errorf("compile errors = %d, want 2", s.CompileErrors)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		opt := perlOptions(p)
		opt.Timeout = 500 * time.Millisecond
		opt.Kind = KindService
		start := time.Now()
		res := Run(t.Context(), testPlugin(t, "loop.pl"), opt)
		want := "(Service Check Timed Out On Worker: test)\nlooping"
		if res.ReturnCode != DefaultTimeoutReturn || res.Output != want || !res.EarlyTimeout {
			t.Errorf("timeout = rc %d %q (early %v), want rc 2 %q", res.ReturnCode, res.Output, res.EarlyTimeout, want)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("timeout took %v", d)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		res := Run(ctx, testPlugin(t, "slow.pl")+" 30", perlOptions(p))
		if res.ReturnCode != 3 || res.Output != "(Check Cancelled On Worker: test)\nstarted" || !res.Cancelled {
			t.Errorf("cancelled = rc %d %q (cancelled %v)", res.ReturnCode, res.Output, res.Cancelled)
		}
	})
	t.Run("output cap", func(t *testing.T) {
		cmd := testPlugin(t, "flood.pl")
		opt := testOptions()
		opt.MaxOutput = 4096
		exec := Run(t.Context(), cmd, opt)
		opt.Perl = p
		emb := Run(t.Context(), cmd, opt)
		note := "[output truncated to 4096 bytes, 1995904 bytes discarded]"
		if emb.ReturnCode != 2 || !strings.HasSuffix(emb.Output, note) || emb.Output != exec.Output {
			t.Errorf("embedded = rc %d ...%q\nexecuted = rc %d ...%q", emb.ReturnCode, tail(emb.Output), exec.ReturnCode, tail(exec.Output))
		}
	})
}

func tail(s string) string {
	if len(s) > 120 {
		return s[len(s)-120:]
	}
	return s
}

// TestPerlRecompile: a plugin changed on disk between runs is compiled
// again; with use_perl_cache=no every run compiles.
func TestPerlRecompile(t *testing.T) {
	needPerl(t)
	for _, noCache := range []bool{false, true} {
		t.Run(fmt.Sprintf("nocache=%v", noCache), func(t *testing.T) {
			p := newTestPerl(t, PerlConfig{NoCache: noCache})
			script := filepath.Join(t.TempDir(), "version.pl")
			write := func(v int) {
				body := fmt.Sprintf("#!/usr/bin/perl\n# nagios: +epn\nprint \"version %d\\n\";\nexit %d;\n", v, v)
				if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
				// Same size every time: the mtime has to tell.
				mt := time.Now().Add(time.Duration(v) * time.Second)
				if err := os.Chtimes(script, mt, mt); err != nil {
					t.Fatal(err)
				}
			}
			for _, v := range []int{1, 1, 2, 3} {
				write(v)
				res := Run(t.Context(), script, perlOptions(p))
				if res.ReturnCode != v || res.Output != fmt.Sprintf("version %d", v) {
					t.Fatalf("version %d: rc %d %q", v, res.ReturnCode, res.Output)
				}
			}
		})
	}
}

// TestPerlServerKilled: SIGKILL to the Perl server while a plugin runs
// gives that check an explicit result at once, kills its plugin, and the
// next check runs on a new server.
func TestPerlServerKilled(t *testing.T) {
	needPerl(t)
	p := newTestPerl(t, PerlConfig{})
	slow := testPlugin(t, "slow.pl")
	opt := perlOptions(p)

	// One quick run starts the server.
	if res := Run(t.Context(), slow+" 0", opt); res.ReturnCode != 0 {
		t.Fatalf("warm-up = rc %d %q", res.ReturnCode, res.Output)
	}
	first := p.ServerPID()
	if first == 0 {
		t.Fatal("no server after a run")
	}
	var wg sync.WaitGroup
	var res Result
	wg.Go(func() { res = Run(t.Context(), slow+" 30", opt) })
	deadline := time.Now().Add(5 * time.Second)
	for len(childrenOf(first)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow plugin did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	plugins := childrenOf(first)
	start := time.Now()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the result took %v after the server died", d)
	}
	want := "UNKNOWN: the embedded Perl server exited while the plugin ran (worker: test)\nstarted"
	if res.ReturnCode != 3 || res.Output != want {
		t.Errorf("result = rc %d %q, want %q", res.ReturnCode, res.Output, want)
	}
	for _, pid := range plugins {
		assertGone(t, pid)
	}

	next := Run(t.Context(), testPlugin(t, "mp_check.pl")+" --state 1", opt)
	if next.ReturnCode != 1 || !strings.HasPrefix(next.Output, "MPCHECK WARNING - all fine") {
		t.Errorf("next check = rc %d %q", next.ReturnCode, next.Output)
	}
	if second := p.ServerPID(); second == 0 || second == first {
		t.Errorf("server pid after restart = %d (was %d)", second, first)
	}
	s := p.Stats()
	if s.ServerStarts != 2 || s.ServerCrashes != 1 || s.LostChecks != 1 {
		t.Errorf("stats = %+v, want 2 starts, 1 crash, 1 lost check", s)
	}
}

// TestPerlStuckCompile: a plugin whose BEGIN block never ends holds up the
// server; at the check's timeout the check gets the timeout result, the
// server is replaced, and the next check runs.
func TestPerlStuckCompile(t *testing.T) {
	needPerl(t)
	p := newTestPerl(t, PerlConfig{})
	opt := perlOptions(p)
	opt.Timeout = time.Second
	opt.Kind = KindHost
	res := Run(t.Context(), testPlugin(t, "begin_hang.pl"), opt)
	if res.ReturnCode != DefaultTimeoutReturn || res.Output != "(Host Check Timed Out On Worker: test)" || !res.EarlyTimeout {
		t.Errorf("stuck compile = rc %d %q, want the timeout result", res.ReturnCode, res.Output)
	}
	next := Run(t.Context(), testPlugin(t, "global.pl"), perlOptions(p))
	if next.ReturnCode != 0 || !strings.HasPrefix(next.Output, "global: clean") {
		t.Errorf("next check = rc %d %q", next.ReturnCode, next.Output)
	}
	if s := p.Stats(); s.ServerStarts != 2 {
		t.Errorf("server starts = %d, want 2 (the stuck one replaced)", s.ServerStarts)
	}
}

// TestPerlClose: Close stops the server and later runs get an explicit
// result.
func TestPerlClose(t *testing.T) {
	needPerl(t)
	p := NewPerl(PerlConfig{})
	if res := Run(t.Context(), testPlugin(t, "global.pl"), perlOptions(p)); res.ReturnCode != 0 {
		t.Fatalf("run = rc %d %q", res.ReturnCode, res.Output)
	}
	pid := p.ServerPID()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	assertGone(t, pid)
	res := Run(t.Context(), testPlugin(t, "global.pl"), perlOptions(p))
	if res.ReturnCode != 3 || !strings.Contains(res.Output, "embedded Perl server is stopped") {
		t.Errorf("run after close = rc %d %q", res.ReturnCode, res.Output)
	}
}

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	var kids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var child int
		if _, err := fmt.Sscan(e.Name(), &child); err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		var state string
		var ppid int
		if i < 0 {
			continue
		}
		if _, err := fmt.Sscan(s[i+1:], &state, &ppid); err == nil && ppid == pid && state != "Z" {
			kids = append(kids, child)
		}
	}
	return kids
}
