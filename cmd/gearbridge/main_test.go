package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runCmd(t *testing.T, argv0 string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), argv0, args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpListsCommands(t *testing.T) {
	code, out, _ := runCmd(t, "gearbridge", "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, c := range []string{"bridge", "worker", "send", "certs", "top", "check", "bench", "version"} {
		if !strings.Contains(out, "\n  "+c+" ") {
			t.Errorf("help does not list %q:\n%s", c, out)
		}
	}
	for _, f := range []string{"--server", "--key", "--keyfile", "--encryption", "--bridge", "--listen",
		"--tls-ca", "--tls-cert", "--tls-key", "--config", "--identifier", "--log-level", "--log-format"} {
		if !strings.Contains(out, f+" ") {
			t.Errorf("help does not list flag %s", f)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, "gearbridge", "version")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out, "gearbridge ") || !strings.Contains(out, "commit ") {
		t.Fatalf("version output %q", out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "unknown flag"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"version takes no args", []string{"version", "x"}, "unknown command"},
		{"unknown bench", []string{"bench", "frob"}, "unknown command"},
		{"bad log level", []string{"bench", "gearman", "--server=127.0.0.1:1", "--log-level=loud"}, "log level"},
		{"bench needs one server", []string{"bench", "gearman"}, "exactly one --server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "gearbridge", tt.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (stderr %q)", code, exitUsage, errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Fatalf("stderr %q does not contain %q", errOut, tt.want)
			}
		})
	}
}

func TestSendGearmanPersonality(t *testing.T) {
	// Invoked as send_gearman, the binary is `gearbridge send`, with its
	// classic exit code 3 for a missing server.
	code, out, errOut := runCmd(t, "/usr/bin/send_gearman", "--host=h", "--message=m")
	if code != exitUnknown || !strings.Contains(out+errOut, "send_gearman UNKNOWN: no server given") {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
}
