package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gearbridge/gearbridge/certs"
)

// TestCertsTokenListRevokeRenew drives the certs subcommands the way an
// operator does.
func TestCertsTokenListRevokeRenew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if code, _, errOut := runCmd(t, "gearbridge", "certs", "init", "--dir", dir); code != exitOK {
		t.Fatalf("init: %s", errOut)
	}
	code, out, errOut := runCmd(t, "gearbridge", "certs", "token", "--dir", dir, "--role", "worker", "--name", "site-a", "--ttl", "1h", "--queues", "hostgroup_a,service")
	if code != exitOK {
		t.Fatalf("token: %s", errOut)
	}
	m := regexp.MustCompile(`token: (gbt_\S+)\nCA fingerprint: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("token output:\n%s", out)
	}
	data, _ := os.ReadFile(filepath.Join(dir, certs.TokensFile))
	if strings.Contains(string(data), strings.TrimPrefix(m[1], "gbt_")) {
		t.Fatal("the token is stored in clear")
	}
	if !strings.Contains(out, "gearbridge worker enroll") {
		t.Errorf("no enroll hint:\n%s", out)
	}

	for _, args := range [][]string{
		{"certs", "token", "--dir", dir, "--role", "admin", "--name", "x"},
		{"certs", "token", "--dir", dir, "--role", "worker", "--name", "x", "--hosts", "h"},
		{"certs", "token", "--dir", dir, "--role", "worker"},
		{"certs", "token", "--dir", dir, "--role", "worker", "--name", "x", "--ttl", "-1h"},
	} {
		if code, _, _ := runCmd(t, "gearbridge", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}

	if code, _, errOut := runCmd(t, "gearbridge", "certs", "issue", "--dir", dir, "--role", "worker", "--name", "w1"); code != exitOK {
		t.Fatalf("issue: %s", errOut)
	}
	code, out, _ = runCmd(t, "gearbridge", "certs", "list", "--dir", dir)
	if code != exitOK || !regexp.MustCompile(`(?m)^[0-9a-f]+\s+worker\s+w1\s+\S+\s+valid$`).MatchString(out) || !strings.Contains(out, "site-a") {
		t.Fatalf("list:\n%s", out)
	}
	crt, key := filepath.Join(dir, "w1.crt"), filepath.Join(dir, "w1.key")
	before, _ := os.ReadFile(crt)
	if code, _, errOut := runCmd(t, "gearbridge", "certs", "renew", "--dir", dir, "--cert", crt, "--key", key); code != exitOK {
		t.Fatalf("renew: %s", errOut)
	}
	after, _ := os.ReadFile(crt)
	if string(before) == string(after) {
		t.Fatal("renew left the certificate")
	}
	if _, err := certs.NewReloader(crt, key, filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatalf("renewed pair: %v", err)
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode().Perm())
	}

	code, out, errOut = runCmd(t, "gearbridge", "certs", "revoke", "--dir", dir, "w1")
	if code != exitOK || strings.Count(out, "revoked ") != 2 {
		t.Fatalf("revoke by name (both certificates of w1): %s %s", out, errOut)
	}
	code, out, _ = runCmd(t, "gearbridge", "certs", "list", "--dir", dir)
	if code != exitOK || strings.Count(out, "revoked") != 2 {
		t.Fatalf("list after revoke:\n%s", out)
	}
	if code, _, _ := runCmd(t, "gearbridge", "certs", "revoke", "--dir", dir, "nobody"); code == exitOK {
		t.Fatal("revoked an unknown name")
	}
}

func TestWorkerStateDirReplacesTLSFlags(t *testing.T) {
	o := defaultWorkerOptions()
	o.StateDir = "/var/lib/gearbridge"
	o.useStateDir()
	if o.TLSCert != "/var/lib/gearbridge/cert.pem" || o.TLSKey != "/var/lib/gearbridge/key.pem" || o.TLSCA != "/var/lib/gearbridge/ca.pem" {
		t.Fatalf("tls files %q %q %q", o.TLSCert, o.TLSKey, o.TLSCA)
	}
	if !o.renews() {
		t.Fatal("a worker on its state dir does not renew")
	}
	o = defaultWorkerOptions()
	o.StateDir, o.TLSCert, o.TLSKey = "/s", "/etc/w.crt", "/etc/w.key"
	o.useStateDir()
	if o.renews() {
		t.Fatal("a worker renews certificate files it did not enroll")
	}
}

func TestEnrollUsage(t *testing.T) {
	code, _, errOut := runCmd(t, "gearbridge", "worker", "enroll", "--token", "x")
	if code != exitUsage || !strings.Contains(errOut, "--bridge, --token, --ca-fingerprint and --state-dir are required") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
