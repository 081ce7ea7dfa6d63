package plugin

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	const shell = "<shell>"
	tests := []struct {
		line string
		argv []string // {shell} means: run by /bin/sh -c
		env  []string
	}{
		{line: "", argv: nil},
		{line: " \t ", argv: nil},
		{line: "/bin/true", argv: []string{"/bin/true"}},
		{line: "/usr/lib/nagios/plugins/check_ping -H 127.0.0.1 -w 100,20% -c 200,40%",
			argv: []string{"/usr/lib/nagios/plugins/check_ping", "-H", "127.0.0.1", "-w", "100,20%", "-c", "200,40%"}},
		{line: "  /bin/x   a\tb  ", argv: []string{"/bin/x", "a", "b"}},
		{line: "./t/ok.pl --label=foo", argv: []string{"./t/ok.pl", "--label=foo"}},
		{line: "echo hi", argv: []string{"echo", "hi"}},
		{line: "/x grüße", argv: []string{"/x", "grüße"}},
		{line: "/x a\rb", argv: []string{"/x", "a\rb"}},
		{line: "/x a#b", argv: []string{"/x", "a#b"}},

		// Environment prefixes.
		{line: "BLAH=BLUB /bin/hostname", argv: []string{"/bin/hostname"}, env: []string{"BLAH=BLUB"}},
		{line: "A=1 B= _c9=x=y /x", argv: []string{"/x"}, env: []string{"A=1", "B=", "_c9=x=y"}},
		{line: "A='1 2' B=\"3 4\" /x", argv: []string{"/x"}, env: []string{"A=1 2", "B=3 4"}},
		{line: "/x A=1", argv: []string{"/x", "A=1"}},
		{line: "A=1 /x B=2", argv: []string{"/x", "B=2"}, env: []string{"A=1"}},
		{line: "'A=1' /x", argv: []string{"A=1", "/x"}},
		{line: "A'=1' /x", argv: []string{"A=1", "/x"}},
		{line: "A''=1 /x", argv: []string{"A=1", "/x"}},
		{line: "1A=b /x", argv: []string{"1A=b", "/x"}},
		{line: "=b /x", argv: []string{"=b", "/x"}},
		{line: "PATH=/opt/bin /opt/bin/check_x", argv: []string{"/opt/bin/check_x"}, env: []string{"PATH=/opt/bin"}},

		// Quotes.
		{line: `/x 'a b' "c d" e'f'"g"`, argv: []string{"/x", "a b", "c d", "efg"}},
		{line: `/x '' ""`, argv: []string{"/x", "", ""}},
		{line: `/x "it's"`, argv: []string{"/x", "it's"}},
		{line: `/x 'say "hi"'`, argv: []string{"/x", `say "hi"`}},
		{line: `/x "a;b|c&d<e>f*g?h~i(j)k{l}m[n]o!p^q#r"`, argv: []string{"/x", "a;b|c&d<e>f*g?h~i(j)k{l}m[n]o!p^q#r"}},
		{line: `/x 'a$b\c` + "`d`'", argv: []string{"/x", "a$b\\c`d`"}},
		{line: `/x '#'`, argv: []string{"/x", "#"}},
		{line: `/x ''#`, argv: []string{"/x", "#"}},
		{line: `'/my plugins/check' -v`, argv: []string{"/my plugins/check", "-v"}},

		// The shell's business.
		{line: `/x "a$b"`, argv: []string{shell}},
		{line: `/x "a\b"`, argv: []string{shell}},
		{line: "/x \"`id`\"", argv: []string{shell}},
		{line: "/x `id`", argv: []string{shell}},
		{line: `/x a\ b`, argv: []string{shell}},
		{line: "/x ; /y", argv: []string{shell}},
		{line: "/x && /y", argv: []string{shell}},
		{line: "/x | /y", argv: []string{shell}},
		{line: "/x > /tmp/f", argv: []string{shell}},
		{line: "/x < /tmp/f", argv: []string{shell}},
		{line: "/x *", argv: []string{shell}},
		{line: "/x a?", argv: []string{shell}},
		{line: "/x [ab]", argv: []string{shell}},
		{line: "/x ~", argv: []string{shell}},
		{line: "/x {a,b}", argv: []string{shell}},
		{line: "/x $HOME", argv: []string{shell}},
		{line: "/x (y)", argv: []string{shell}},
		{line: "! /x", argv: []string{shell}},
		{line: "/x a^b", argv: []string{shell}},
		{line: "/x #comment", argv: []string{shell}},
		{line: "#/x", argv: []string{shell}},
		{line: "/x\n/y", argv: []string{shell}},
		{line: "/x 'unterminated", argv: []string{shell}},
		{line: `/x "unterminated`, argv: []string{shell}},
		{line: "A=1", argv: []string{shell}},
		{line: "A=1 B=2", argv: []string{shell}},
		{line: "exit 3", argv: []string{shell}},
		{line: "cd /tmp", argv: []string{shell}},
		{line: ". /etc/profile", argv: []string{shell}},
		{line: "if", argv: []string{shell}},
		{line: "A=1 exit 3", argv: []string{shell}},
		{line: "PATH=/opt/bin check_x", argv: []string{shell}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			argv, env, useShell := Parse(tt.line)
			wantShell := len(tt.argv) == 1 && tt.argv[0] == shell
			if wantShell {
				if !useShell || !slices.Equal(argv, []string{Shell, "-c", tt.line}) || env != nil {
					t.Errorf("Parse(%q) = %q, %q, %v; want the shell", tt.line, argv, env, useShell)
				}
				return
			}
			if useShell || !slices.Equal(argv, tt.argv) || !slices.Equal(env, tt.env) {
				t.Errorf("Parse(%q) = %q, %q, %v; want %q, %q, false", tt.line, argv, env, useShell, tt.argv, tt.env)
			}
		})
	}
}

// TestParseMatchesShell runs lines Parse splits itself both through /bin/sh
// and directly, and compares what the program receives.
func TestParseMatchesShell(t *testing.T) {
	dir := t.TempDir()
	show := writeScript(t, dir, "show", `printf 'FOO<%s>BAR<%s>' "${FOO-unset}" "${BAR-unset}"; for a in "$@"; do printf '<%s>' "$a"; done`)
	t.Parallel()
	lines := []string{
		"CMD",
		"CMD a b\tc",
		"  CMD   spaced   out  ",
		"FOO=1 CMD",
		"FOO= BAR=x=y CMD -w 80% --opt=val",
		`FOO='a b' BAR="c d" CMD`,
		`CMD 'a b' "c d" e'f'"g" '' ""`,
		`CMD "it's" 'say "hi"'`,
		`CMD "a;b|c&d<e>f*g?h~i(j)k{l}m[n]o!p^q#r"`,
		`CMD 'a$b\c` + "`d`'",
		`CMD a#b ''# '#'`,
		`'FOO=1' CMD`,
		`CMD FOO=2`,
		"CMD grüße a\rb",
		"CMD a=b =c",
	}
	for _, line := range lines {
		line = strings.ReplaceAll(line, "CMD", show)
		t.Run(line, func(t *testing.T) {
			argv, env, useShell := Parse(line)
			if useShell {
				t.Fatalf("Parse(%q) wants the shell; this test needs a line it splits itself", line)
			}
			viaShell := exec.Command(Shell, "-c", line)
			want, err := viaShell.Output()
			if err != nil && !strings.HasPrefix(line, "'FOO=1'") {
				t.Fatalf("sh -c %q: %v", line, err)
			}
			direct := exec.Command(argv[0], argv[1:]...)
			direct.Env = append(direct.Environ(), env...)
			got, err := direct.Output()
			if err != nil && !strings.HasPrefix(line, "'FOO=1'") {
				t.Fatalf("exec %q: %v", argv, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Parse(%q) gave the program %q, the shell %q", line, got, want)
			}
		})
	}
}

// quoteWord quotes s so that the shell (and Parse) read it back as one word.
func quoteWord(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// FuzzParse checks that Parse never panics, that its results have the
// promised shape, and that lines it splits itself survive re-quoting.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"/usr/lib/nagios/plugins/check_ping -H 127.0.0.1 -w 100,20% -c 200,40%",
		`BLAH=BLUB A='1 2' /x "c d" e'f'"g" '' ""`,
		"echo -n 'test'; exit 2",
		`/x "a$b" 'unterminated`,
		"exit 3",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		argv, env, useShell := Parse(line)
		if useShell {
			if !slices.Equal(argv, []string{Shell, "-c", line}) || env != nil {
				t.Fatalf("Parse(%q) = %q, %q for the shell", line, argv, env)
			}
			return
		}
		if len(argv) == 0 {
			if env != nil || strings.Trim(line, " \t") != "" {
				t.Fatalf("Parse(%q) = no command, env %q", line, env)
			}
			return
		}
		if !strings.ContainsAny(line, `'"`) && strings.ContainsAny(line, shellMetacharacters) {
			t.Fatalf("Parse(%q) splits a line with shell syntax: %q", line, argv)
		}
		var requoted []string
		for _, e := range env {
			name, value, ok := strings.Cut(e, "=")
			if !ok || !validName(name) {
				t.Fatalf("Parse(%q) env entry %q is not NAME=value", line, e)
			}
			requoted = append(requoted, name+"="+quoteWord(value))
		}
		for _, a := range argv {
			requoted = append(requoted, quoteWord(a))
		}
		again := strings.Join(requoted, " ")
		argv2, env2, useShell2 := Parse(again)
		if useShell2 || !slices.Equal(argv, argv2) || !slices.Equal(env, env2) {
			t.Fatalf("Parse(%q) = %q, %q; re-quoted %q parses as %q, %q, shell %v", line, argv, env, again, argv2, env2, useShell2)
		}
	})
}
