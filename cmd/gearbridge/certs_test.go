package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
	if code, _, errOut := runCmd(t, "gearbridge", "certs", "renew", "--dir", dir, "--cert", crt, "--cert-key", key); code != exitOK {
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
	if code != exitOK || !strings.Contains(out, `revoked worker "w1"`) || strings.Count(out, "revoked serial ") != 2 {
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

func initCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if code, _, errOut := runCmd(t, "gearbridge", "certs", "init", "--dir", dir); code != exitOK {
		t.Fatalf("init: %s", errOut)
	}
	return dir
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCmd(t, "gearbridge", args...)
	if code != exitOK {
		t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out + errOut
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := certs.ParseCertificatePEM(leafPEM(data))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leafPEM is the first PEM block of a certificate file.
func leafPEM(data []byte) []byte {
	end := []byte("-----END CERTIFICATE-----\n")
	if i := bytes.Index(data, end); i >= 0 {
		return data[:i+len(end)]
	}
	return data
}

// TestCertsIssueRefusals: every refused issue exits non-zero and leaves the
// CA directory (ca.key byte for byte) and the output directory as they were.
func TestCertsIssueRefusals(t *testing.T) {
	dir := initCA(t)
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "bridge", "--name", "bridge", "--san", "localhost")
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "w1")
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "gone")
	mustRun(t, "certs", "revoke", "--dir", dir, "gone")
	outside := filepath.Join(filepath.Dir(dir), "outside")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"traversal", []string{"--role", "worker", "--name", "../evil"}, "not allowed"},
		{"slash", []string{"--role", "worker", "--name", "a/b"}, "not allowed"},
		{"absolute", []string{"--role", "sender", "--name", "/tmp/evil"}, "not allowed"},
		{"leading dot", []string{"--role", "admin", "--name", ".hidden"}, "not allowed"},
		{"dot dot", []string{"--role", "worker", "--name", ".."}, "not allowed"},
		{"reserved", []string{"--role", "worker", "--name", "ca"}, "reserved"},
		{"bridge traversal", []string{"--role", "bridge", "--name", "../bridge"}, "not allowed"},
		{"bridge reserved", []string{"--role", "bridge", "--name", "ca", "--force"}, "reserved"},
		{"name of the bridge", []string{"--role", "worker", "--name", "bridge", "--force"}, "taken"},
		{"name of the bridge elsewhere", []string{"--role", "worker", "--name", "bridge", "--out", outside}, "taken"},
		{"existing files", []string{"--role", "worker", "--name", "w1"}, "--force"},
		{"revoked name", []string{"--role", "worker", "--name", "gone", "--force"}, "--reenroll"},
		{"bad lifetime", []string{"--role", "worker", "--name", "w2", "--lifetime", "30x"}, "lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caKey, _ := os.ReadFile(filepath.Join(dir, certs.CAKeyFile))
			before := listTree(t, filepath.Dir(dir))
			code, out, errOut := runCmd(t, "gearbridge", append([]string{"certs", "issue", "--dir", dir}, tc.args...)...)
			if code == exitOK {
				t.Fatalf("issue succeeded:\n%s", out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("error does not say %q:\n%s", tc.want, errOut)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, certs.CAKeyFile)); !bytes.Equal(after, caKey) {
				t.Fatal("ca.key changed")
			}
			if after := listTree(t, filepath.Dir(dir)); after != before {
				t.Fatalf("files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// --out is created; --force replaces; --reenroll re-enables.
	out := filepath.Join(t.TempDir(), "new", "site")
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "w2", "--out", out)
	if _, err := os.Stat(filepath.Join(out, "w2.key")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "w1", "--force")
	if o := mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "gone", "--force", "--reenroll"); !strings.Contains(o, "re-enrolled") {
		t.Fatalf("re-enrollment not reported:\n%s", o)
	}
}

// listTree describes every file below dir with a hash of its content.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(fi.Name(), ".") && fi.Name() != filepath.Base(dir) {
			return nil // lock files
		}
		data := ""
		if fi.Mode().IsRegular() {
			c, _ := os.ReadFile(p)
			data = fmt.Sprintf("%x", c)
		}
		fmt.Fprintf(&b, "%s %v %s\n", p, fi.Mode(), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestParseDays(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30d", 30 * 24 * time.Hour, false},
		{"90d", 90 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"12h", 12 * time.Hour, false},
		{"90s", 90 * time.Second, false},
		{"0", 0, false},
		{"-1d", -24 * time.Hour, false},
		{"d", 0, true},
		{"1.5d", 0, true},
		{"30x", 0, true},
		{"1d-1h", 0, true},
		{"3000000d", 0, true},
		{"", 0, true},
	} {
		got, err := parseDays(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("parseDays(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
	for _, d := range []time.Duration{30 * 24 * time.Hour, 36 * time.Hour, time.Hour, 0} {
		v := daysValue(d)
		back, err := parseDays(v.String())
		if err != nil || back != d {
			t.Errorf("%v prints as %q, which reads back as %v, %v", d, v.String(), back, err)
		}
	}
}

// TestCertsDurationsTakeDays: every certs duration flag takes days.
func TestCertsDurationsTakeDays(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	mustRun(t, "certs", "init", "--dir", dir, "--lifetime", "3650d")
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "w30", "--lifetime", "30d")
	c := readCert(t, filepath.Join(dir, "w30.crt"))
	if d := time.Until(c.NotAfter); d < 29*24*time.Hour || d > 30*24*time.Hour {
		t.Fatalf("--lifetime 30d: valid for %v", d)
	}
	mustRun(t, "certs", "renew", "--dir", dir, "--name", "w30", "--lifetime", "90d")
	c = readCert(t, filepath.Join(dir, "w30.crt"))
	if d := time.Until(c.NotAfter); d < 89*24*time.Hour || d > 90*24*time.Hour {
		t.Fatalf("renew --lifetime 90d: valid for %v", d)
	}
	o := mustRun(t, "certs", "token", "--dir", dir, "--role", "worker", "--name", "t1", "--ttl", "1d")
	m := regexp.MustCompile(`expires: (\S+)`).FindStringSubmatch(o)
	if m == nil {
		t.Fatalf("token output:\n%s", o)
	}
	exp, err := time.Parse(time.RFC3339, m[1])
	if err != nil || time.Until(exp) < 23*time.Hour || time.Until(exp) > 24*time.Hour {
		t.Fatalf("--ttl 1d: expires %v (%v)", exp, err)
	}
	if code, _, _ := runCmd(t, "gearbridge", "certs", "list", "--dir", dir, "--expiring", "2w"); code != exitUsage {
		t.Fatal("--expiring 2w accepted")
	}
}

// TestCertsListExpiring lists only what expires within the window, with
// the date and the time left.
func TestCertsListExpiring(t *testing.T) {
	dir := initCA(t)
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "soon", "--lifetime", "10d")
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "later", "--lifetime", "60d")
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "sender", "--name", "revoked", "--lifetime", "5d")
	mustRun(t, "certs", "revoke", "--dir", dir, "revoked")
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "bridge", "--name", "bridge", "--lifetime", "20d")
	out := mustRun(t, "certs", "list", "--dir", dir, "--expiring", "30d")
	soon := readCert(t, filepath.Join(dir, "soon.crt"))
	if !regexp.MustCompile(`(?m)^[0-9a-f]+\s+worker\s+soon\s+` + regexp.QuoteMeta(soon.NotAfter.UTC().Format(time.RFC3339)) + `\s+in (9d 23h|10d)\s*$`).MatchString(out) {
		t.Fatalf("soon not listed with its expiry:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^[0-9a-f]+\s+bridge\s+bridge\s`).MatchString(out) {
		t.Fatalf("bridge not listed:\n%s", out)
	}
	for _, not := range []string{"later", "revoked", "TOKEN"} {
		if strings.Contains(out, not) {
			t.Fatalf("%s listed:\n%s", not, out)
		}
	}
	out = mustRun(t, "certs", "list", "--dir", dir, "--expiring", "1d")
	if !strings.Contains(out, "no certificate expires within 1d") {
		t.Fatalf("empty window:\n%s", out)
	}
}

// TestCertsRenewByName renews the bridge's own certificate in place: new
// serial and key, same identity and addresses.
func TestCertsRenewByName(t *testing.T) {
	dir := initCA(t)
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "bridge", "--name", "bridge", "--san", "gw.example.com,localhost,192.0.2.10")
	old := readCert(t, filepath.Join(dir, "bridge.crt"))
	oldKey, _ := os.ReadFile(filepath.Join(dir, "bridge.key"))
	out := mustRun(t, "certs", "renew", "--dir", dir, "--name", "bridge")
	if !strings.Contains(out, `renewed bridge certificate for "bridge"`) {
		t.Fatalf("output:\n%s", out)
	}
	n := readCert(t, filepath.Join(dir, "bridge.crt"))
	if n.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatal("same serial")
	}
	if k, _ := os.ReadFile(filepath.Join(dir, "bridge.key")); bytes.Equal(k, oldKey) {
		t.Fatal("same key")
	}
	if fmt.Sprint(n.DNSNames, n.IPAddresses) != fmt.Sprint(old.DNSNames, old.IPAddresses) {
		t.Fatalf("SANs %v %v, were %v %v", n.DNSNames, n.IPAddresses, old.DNSNames, old.IPAddresses)
	}
	if _, err := certs.NewReloader(filepath.Join(dir, "bridge.crt"), filepath.Join(dir, "bridge.key"), filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	// --out names where the pair lives.
	site := t.TempDir()
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "w1", "--out", site)
	mustRun(t, "certs", "renew", "--dir", dir, "--name", "w1", "--out", site)
	for _, args := range [][]string{
		{"certs", "renew", "--dir", dir},
		{"certs", "renew", "--dir", dir, "--name", "w1", "--cert", "x.crt", "--cert-key", "x.key"},
		{"certs", "renew", "--dir", dir, "--name", "../w1"},
	} {
		if code, _, _ := runCmd(t, "gearbridge", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, _ := runCmd(t, "gearbridge", "certs", "renew", "--dir", dir, "--name", "nobody"); code == exitOK {
		t.Fatal("renewed a missing certificate")
	}
}

// TestCertsRevoke: by name the identity, with --serial one certificate; it
// says where the list is and what a bridge needs to read it; a revoked
// name needs --reenroll for a new token.
func TestCertsRevoke(t *testing.T) {
	dir := initCA(t)
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "w1")
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "w2")
	code, out, errOut := runCmd(t, "gearbridge", "certs", "revoke", "--dir", dir, "--reason", "lost", "w1")
	if code != exitOK {
		t.Fatalf("revoke: %s", errOut)
	}
	list := filepath.Join(dir, certs.RevocationsFile)
	if !strings.Contains(out, `revoked worker "w1"`) || !strings.Contains(out, list) {
		t.Fatalf("output:\n%s", out)
	}
	if !strings.Contains(errOut, "--certs-dir "+dir) || !strings.Contains(errOut, "--revocations "+list) {
		t.Fatalf("no reminder of what the bridge needs:\n%s", errOut)
	}
	if code, _, errOut := runCmd(t, "gearbridge", "certs", "token", "--dir", dir, "--role", "worker", "--name", "w1"); code == exitOK || !strings.Contains(errOut, "--reenroll") {
		t.Fatalf("token for a revoked name: exit %d\n%s", code, errOut)
	}
	mustRun(t, "certs", "token", "--dir", dir, "--role", "worker", "--name", "w1", "--reenroll")
	if code, _, errOut := runCmd(t, "gearbridge", "certs", "token", "--dir", dir, "--role", "sender", "--name", "w2"); code == exitOK || !strings.Contains(errOut, "taken") {
		t.Fatalf("token for a name of another role: exit %d\n%s", code, errOut)
	}

	w2 := readCert(t, filepath.Join(dir, "w2.crt"))
	out = mustRun(t, "certs", "revoke", "--dir", dir, "--serial", certs.SerialOf(w2))
	if !strings.Contains(out, "revoked serial "+certs.SerialOf(w2)) || strings.Contains(out, `revoked worker "w2"`) {
		t.Fatalf("revoke --serial:\n%s", out)
	}
	out = mustRun(t, "certs", "list", "--dir", dir)
	if !regexp.MustCompile(`(?m)^worker\s+w1\s+\S+\s+lost`).MatchString(out) {
		t.Fatalf("list does not show the revoked identity:\n%s", out)
	}
	for _, args := range [][]string{
		{"certs", "revoke", "--dir", dir},
		{"certs", "revoke", "--dir", dir, "--serial", "abc", "w1"},
	} {
		if code, _, _ := runCmd(t, "gearbridge", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// TestCertsRevocationsReachTheBridge: --revocations (or revocations: in
// the file) becomes the bridge's revocation list, and a list other than the
// certs directory's own is refused with --certs-dir.
func TestCertsRevocationsReachTheBridge(t *testing.T) {
	list := "/etc/gearbridge/ca/revoked.json"
	cmd := command(t, "bridge", "--key", "k", "--revocations", list)
	opts, err := loadBridgeOptions(cmd.Flags(), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := opts.bridgeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RevocationsFile != list {
		t.Fatalf("RevocationsFile %q", cfg.RevocationsFile)
	}
	file := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(file, []byte("key: k\ncerts-dir: /srv/ca\nrevocations: /srv/other.json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err = loadBridgeOptions(command(t, "bridge").Flags(), file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = opts.bridgeConfig(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "revocations") {
		t.Fatalf("Validate = %v, want a refusal of the second list", err)
	}
}

// FuzzCertsParseDays: the duration parser never panics, and what it
// accepts prints as a string that reads back as the same duration.
func FuzzCertsParseDays(f *testing.F) {
	for _, s := range []string{"30d", "1d12h", "-1d", "90m", "0", "d", "1.5d", "9223372036854775807d", "1d-1h", "+2d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDays(s)
		if err != nil {
			return
		}
		v := daysValue(d)
		back, err := parseDays(v.String())
		if err != nil || back != d {
			t.Fatalf("%q = %v prints as %q, which reads back as %v, %v", s, d, v.String(), back, err)
		}
	})
}

// TestCertsListJSON: certs list --output json holds what the tables show:
// every certificate with its state, the revoked identities, the tokens
// (by hash, never the token) and, with --expiring, only those expiring.
func TestCertsListJSON(t *testing.T) {
	dir := initCA(t)
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "worker", "--name", "soon", "--lifetime", "10d")
	mustRun(t, "certs", "issue", "--dir", dir, "--role", "sender", "--name", "gone", "--lifetime", "60d")
	mustRun(t, "certs", "revoke", "--dir", dir, "gone")
	tok := mustRun(t, "certs", "token", "--dir", dir, "--role", "worker", "--name", "site-b", "--ttl", "1h")
	var v struct {
		CAFingerprint string `json:"ca_fingerprint"`
		Certificates  []struct {
			Serial, Role, Name, State string
			NotAfter                  time.Time `json:"not_after"`
		} `json:"certificates"`
		RevokedIdentities []struct{ Role, Name string } `json:"revoked_identities"`
		Tokens            []struct {
			Hash  string `json:"sha256"`
			State string `json:"state"`
		} `json:"tokens"`
	}
	out := mustRun(t, "certs", "list", "--dir", dir, "--output", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	states := map[string]string{}
	for _, c := range v.Certificates {
		states[c.Name] = c.State
	}
	if !strings.HasPrefix(v.CAFingerprint, "sha256:") || states["soon"] != "valid" || states["gone"] != "revoked" {
		t.Errorf("list: %+v", v)
	}
	if len(v.RevokedIdentities) != 1 || v.RevokedIdentities[0].Name != "gone" {
		t.Errorf("revoked identities %+v", v.RevokedIdentities)
	}
	if len(v.Tokens) != 1 || v.Tokens[0].State != "unused" || len(v.Tokens[0].Hash) != 64 {
		t.Errorf("tokens %+v", v.Tokens)
	}
	if m := regexp.MustCompile(`gbt_(\S+)`).FindStringSubmatch(tok); m == nil || strings.Contains(out, m[1]) {
		t.Errorf("the token is in the list, or was not issued:\n%s", out)
	}
	v.Certificates = nil
	out = mustRun(t, "certs", "list", "--dir", dir, "--expiring", "30d", "-o", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(v.Certificates) != 1 || v.Certificates[0].Name != "soon" {
		t.Errorf("expiring within 30d: %+v", v.Certificates)
	}
}
