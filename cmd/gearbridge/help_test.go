package main

import (
	"strings"
	"testing"
)

// globalFlagNames are the root command's persistent flags.
var globalFlagNames = []string{"--server", "--key", "--keyfile", "--encryption", "--bridge", "--listen",
	"--tls-ca", "--tls-cert", "--tls-key", "--config", "--identifier", "--log-level", "--log-format"}

func helpFlags(out string) map[string]bool {
	got := map[string]bool{}
	for _, f := range globalFlagNames {
		if strings.Contains(out, f+" ") || strings.Contains(out, f+"\n") {
			got[f] = true
		}
	}
	return got
}

// Each command's help shows the global flags that command reads, and no
// others.
func TestHelpShowsApplicableGlobalFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    []string
		notWant []string
	}{
		{[]string{"certs", "issue"}, nil, []string{"--keyfile", "--server", "--bridge", "--tls-ca", "--identifier"}},
		{[]string{"certs"}, nil, []string{"--keyfile", "--server", "--log-level"}},
		{[]string{"version"}, nil, globalFlagNames},
		{[]string{"worker"}, []string{"--server", "--key", "--keyfile", "--encryption", "--bridge", "--tls-ca",
			"--tls-cert", "--tls-key", "--identifier", "--config", "--log-level", "--log-format"}, []string{"--listen"}},
		{[]string{"worker", "enroll"}, []string{"--bridge"}, []string{"--server", "--keyfile", "--listen"}},
		{[]string{"send"}, []string{"--server", "--bridge", "--key", "--keyfile", "--encryption", "--tls-ca",
			"--config", "--log-level"}, []string{"--listen", "--identifier"}},
		{[]string{"bridge"}, []string{"--server", "--key", "--listen", "--tls-ca", "--config", "--log-format"},
			[]string{"--bridge", "--identifier"}},
		{[]string{"top"}, []string{"--server", "--bridge", "--tls-ca"}, []string{"--keyfile", "--listen", "--identifier"}},
		{[]string{"check"}, []string{"--server", "--bridge", "--tls-ca"}, []string{"--keyfile", "--listen", "--identifier"}},
		{[]string{"bench", "gearman"}, []string{"--server", "--log-level"}, []string{"--keyfile", "--bridge", "--tls-ca"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			for _, form := range [][]string{append(append([]string(nil), tt.args...), "--help"), append([]string{"help"}, tt.args...)} {
				code, out, _ := runCmd(t, "gearbridge", form...)
				if code != exitOK {
					t.Fatalf("%v: exit %d", form, code)
				}
				got := helpFlags(out)
				for _, f := range tt.want {
					if !got[f] {
						t.Errorf("%v does not list %s:\n%s", form, f, out)
					}
				}
				for _, f := range tt.notWant {
					if got[f] {
						t.Errorf("%v lists %s, which the command does not use:\n%s", form, f, out)
					}
				}
			}
		})
	}
}

// Hiding a global flag from a command's help does not stop it from parsing,
// and the root help still documents all of them.
func TestHelpHidingKeepsFlagsWorking(t *testing.T) {
	code, out, errOut := runCmd(t, "gearbridge", "version", "--keyfile=/nonexistent", "--server=x")
	if code != exitOK {
		t.Fatalf("version with global flags: exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "gearbridge ") {
		t.Fatalf("version output %q", out)
	}
	_, out, _ = runCmd(t, "gearbridge", "certs", "issue", "--help")
	_, rootOut, _ := runCmd(t, "gearbridge", "--help")
	for _, f := range globalFlagNames {
		if !strings.Contains(rootOut, f+" ") {
			t.Errorf("root help lost %s after a subcommand's help", f)
		}
	}
	_ = out
}
