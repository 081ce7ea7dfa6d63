package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			code, out, errOut := runCmd(t, "gearbridge", "completion", shell)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, "gearbridge") {
				t.Fatalf("%s completion does not mention gearbridge:\n%.500s", shell, out)
			}
			if shell != "bash" {
				return
			}
			bash, err := exec.LookPath("bash")
			if err != nil {
				t.Skip("no bash to check the script's syntax")
			}
			script := filepath.Join(t.TempDir(), "gearbridge.bash")
			if err := os.WriteFile(script, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
				t.Fatalf("bash -n: %v\n%s", err, b)
			}
		})
	}
}

// The shell asks the binary for completions through cobra's hidden
// __complete command.
func TestCompletionOfSubcommands(t *testing.T) {
	code, out, errOut := runCmd(t, "gearbridge", "__complete", "wor")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "worker") {
		t.Fatalf("no worker among the completions:\n%s", out)
	}
}
