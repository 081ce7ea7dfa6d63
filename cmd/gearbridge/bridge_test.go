package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/certs"
)

// TestBridgeSessionLimitFlags: --max-sessions and
// --max-sessions-per-identity (and their config keys) reach the bridge's
// Config, with defaults of 1024 and 32; zero is refused naming the key.
func TestBridgeSessionLimitFlags(t *testing.T) {
	cfgFor := func(file string, args ...string) (int, int) {
		t.Helper()
		cmd := command(t, append([]string{"bridge", "--key", "k"}, args...)...)
		opts, err := loadBridgeOptions(cmd.Flags(), file)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := opts.bridgeConfig()
		if err != nil {
			t.Fatal(err)
		}
		return cfg.MaxSessions, cfg.MaxSessionsPerIdentity
	}
	if total, per := cfgFor(""); total != 1024 || per != 32 {
		t.Fatalf("defaults: max-sessions %d, per identity %d", total, per)
	}
	if total, per := cfgFor("", "--max-sessions", "10", "--max-sessions-per-identity", "3"); total != 10 || per != 3 {
		t.Fatalf("flags: max-sessions %d, per identity %d", total, per)
	}
	file := filepath.Join(t.TempDir(), "bridge.yaml")
	writeTestFile(t, file, "max-sessions: 7\nmax-sessions-per-identity: 2\n")
	if total, per := cfgFor(file); total != 7 || per != 2 {
		t.Fatalf("config file: max-sessions %d, per identity %d", total, per)
	}
	for _, key := range []string{"max-sessions", "max-sessions-per-identity"} {
		code, _, errOut := runCmd(t, "gearbridge", "bridge", "--key", "k", "--"+key, "0")
		if code != exitUsage || !strings.Contains(errOut, key+": must be positive") {
			t.Fatalf("--%s 0: exit %d, stderr %q", key, code, errOut)
		}
	}
}

// TestBridgeRefusesAWorkerCertificate: started with a certificate that is
// not the bridge's, the bridge exits with a usage error naming the file.
func TestBridgeRefusesAWorkerCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.InitCA(dir, certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.IssueClient(certs.RoleWorker, "site-a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crtFile, keyFile := filepath.Join(dir, "site-a.crt"), filepath.Join(dir, "site-a.key")
	writeTestFile(t, crtFile, string(crt))
	writeTestFile(t, keyFile, string(key))
	code, _, errOut := runCmd(t, "gearbridge", "bridge", "--key", "k", "--listen", "127.0.0.1:0",
		"--tls-ca", filepath.Join(dir, certs.CACertFile), "--tls-cert", crtFile, "--tls-key", keyFile)
	if code != exitUsage || !strings.Contains(errOut, crtFile) || !strings.Contains(errOut, `role "worker"`) {
		t.Fatalf("exit %d, stderr %q; want a usage error naming %s and its role", code, errOut, crtFile)
	}
}
