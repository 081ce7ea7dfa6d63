package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestManPages(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runCmd(t, "gearbridge", "man", "--dir", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, name := range []string{"gearbridge.1", "gearbridge-worker.1", "gearbridge-certs-issue.1", "gearbridge-send.1"} {
		if page := read(name); !strings.Contains(page, ".TH") {
			t.Errorf("%s is not a man page:\n%.300s", name, page)
		}
	}
	// The pages show the global flags a command uses, like its help.
	worker, issue := read("gearbridge-worker.1"), read("gearbridge-certs-issue.1")
	for _, f := range []string{"server", "bridge", "tls-ca"} {
		if !strings.Contains(worker, `\fB--`+f+`\fP`) {
			t.Errorf("worker page does not document --%s", f)
		}
	}
	for _, f := range []string{"keyfile", "server"} {
		if strings.Contains(issue, `\fB--`+f+`\fP`) {
			t.Errorf("certs issue page documents --%s, which it does not use", f)
		}
	}
	// The generator itself has no page.
	if _, err := os.Stat(filepath.Join(dir, "gearbridge-man.1")); err == nil {
		t.Error("the hidden man command has a page")
	}
}

func TestManNeedsDir(t *testing.T) {
	if code, _, _ := runCmd(t, "gearbridge", "man"); code != exitUsage {
		t.Fatalf("man without --dir: exit %d, want %d", code, exitUsage)
	}
}
