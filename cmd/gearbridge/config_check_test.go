package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// configCase is one run of config check: its arguments, exit code and
// texts the output must hold.
type configCase struct {
	name string
	args []string
	code int
	want []string
}

func runConfigCases(t *testing.T, tests []configCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "gearbridge", append([]string{"config", "check"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tt.code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestConfigCheckYAMLAndClassic: bridge and worker YAML files, classic
// files (with the options the worker ignores listed) and broken ones, by
// detected kind and by --kind.
func TestConfigCheckYAMLAndClassic(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeTestFile(t, p, content)
		return p
	}
	authz := file("authz.yaml", "rules:\n  - {identity: \"*\", role: worker, queues: [\"*\"]}\n")
	bridgeYAML := file("bridge.yaml", "server: [\"gm1:4730\"]\nkey: secret\nlisten: \":4731\"\nauthz: "+authz+"\ncerts-dir: /etc/gearbridge/ca\n")
	bridgeTypo := file("bridge-typo.yaml", "server: [\"gm1:4730\"]\nkey: secret\nlisten: \":4731\"\nresume-grase: 30s\n")
	bridgeBadValue := file("bridge-bad.yaml", "server: [\"gm1:4730\"]\nlisten: \":4731\"\nresume-grace: soon\n")
	workerYAML := file("worker.yaml", "bridge: [\"bridge.example.com\"]\nidentifier: w1\nservices: true\nmax-workers: 8\n")
	workerNoQueue := file("worker-noqueue.yaml", "bridge: [\"bridge.example.com\"]\nidentifier: w1\ntransport: bridge\n")
	classic := file("worker.conf", "server=localhost:4730\nkey=abc\nservices=yes\nspawn-rate=3\nmax-jobs=500\n")
	classicBad := file("bad.conf", "server=localhost:4730\nmax-worker=lots\n")
	ambiguous := file("both.yaml", "server: [\"gm1\"]\nkey: secret\nlog-level: debug\n")

	runConfigCases(t, []configCase{
		{"bridge yaml", []string{bridgeYAML}, 0, []string{bridgeYAML + ": OK (bridge)"}},
		{"bridge yaml unknown key", []string{bridgeTypo}, 1, []string{bridgeTypo + ": ERROR (bridge)", "resume-grase"}},
		{"bridge yaml bad value", []string{bridgeBadValue}, 1, []string{"ERROR (bridge)", "resume-grace"}},
		{"worker yaml", []string{workerYAML}, 0, []string{workerYAML + ": OK (worker)", "tls-ca, tls-cert and tls-key (or state-dir) must still come"}},
		{"worker yaml without queue", []string{workerNoQueue, "--kind", "worker"}, 1, []string{"ERROR (worker)", "queue"}},
		{"classic", []string{classic}, 0, []string{classic + ": OK (classic)",
			"ignored by gearbridge worker: spawn-rate: goroutines, not processes", "ignored by gearbridge worker: max-jobs: "}},
		{"classic include directory", []string{dir + "/", "--kind", "classic"}, 1, []string{"ERROR (classic)"}},
		{"classic bad value", []string{classicBad}, 1, []string{classicBad + ": ERROR (classic)", "max-worker"}},
		{"ambiguous yaml", []string{ambiguous}, 1, []string{"give --kind bridge or --kind worker"}},
		{"ambiguous yaml with kind", []string{ambiguous, "--kind", "bridge"}, 0, []string{"OK (bridge)"}},
		{"several files, one bad", []string{bridgeYAML, classicBad, classic}, 1, []string{"OK (bridge)", "ERROR (classic)", classic + ": OK (classic)"}},
		{"unknown kind", []string{classic, "--kind", "toml"}, 2, nil},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, 1, []string{"no such file"}},
	})
}

// TestConfigCheckAuthz: an authz file is checked, and questions about it
// answered: allowed exits 0, denied 1.
func TestConfigCheckAuthz(t *testing.T) {
	dir := t.TempDir()
	authz := filepath.Join(dir, "authz.yaml")
	writeTestFile(t, authz, `rules:
  - identity: "site-a"
    role: worker
    queues: ["hostgroup_site_a", "service"]
    identifiers: ["site-a-*"]
  - identity: "ci-*"
    role: sender
    hosts: ["ci-*"]
  - identity: "ops"
    role: admin
`)
	badAuthz := filepath.Join(dir, "bad-authz.yaml")
	writeTestFile(t, badAuthz, "rules:\n  - {identity: x, role: overlord}\n")
	runConfigCases(t, []configCase{
		{"valid", []string{authz}, 0, []string{authz + ": OK (authz)", "3 rule(s)"}},
		{"invalid", []string{badAuthz}, 1, []string{"ERROR (authz)", "overlord"}},
		{"queue allowed", []string{authz, "--identity", "site-a", "--role", "worker", "--queue", "hostgroup_site_a"}, 0,
			[]string{`allowed: may worker "site-a" take jobs from queue "hostgroup_site_a"`}},
		{"queue denied", []string{authz, "--identity", "site-a", "--role", "worker", "--queue", "hostgroup_site_b"}, 1,
			[]string{`denied: may worker "site-a" take jobs from queue "hostgroup_site_b"? no rule allows it`}},
		{"host allowed", []string{authz, "--identity", "ci-7", "--role", "sender", "--host", "ci-web"}, 0, []string{"allowed"}},
		{"host denied", []string{authz, "--identity", "ci-7", "--role", "sender", "--host", "db1"}, 1, []string{"denied"}},
		{"identifier allowed", []string{authz, "--identity", "site-a", "--role", "worker", "--identifier-name", "site-a-3"}, 0, []string{"allowed"}},
		{"admin denied", []string{authz, "--identity", "site-a", "--role", "admin"}, 1, []string{`denied: may "site-a" act as admin`}},
		{"admin allowed", []string{authz, "--identity", "ops", "--role", "admin"}, 0, []string{"allowed"}},
		{"question without role", []string{authz, "--identity", "ops"}, 2, nil},
	})
}

// TestConfigCheckTLS: certificates are checked for role, expiry, chain
// and the name clients dial; keys for parsing and their mode.
func TestConfigCheckTLS(t *testing.T) {
	p := newTestPKI(t) // bridge certificate for localhost and 127.0.0.1
	p.client(t, "worker", "w1")
	other := newTestPKI(t)
	c := newCertCA(t)
	expired := c.mint("old", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	soon, _ := c.expiring("soon", 10*24*time.Hour)
	bridgeCrt, w1Crt := filepath.Join(p.dir, "bridge.crt"), filepath.Join(p.dir, "w1.crt")
	ca := "--tls-ca=" + filepath.Join(p.dir, "ca", "ca.crt")
	otherCA := "--tls-ca=" + filepath.Join(other.dir, "ca", "ca.crt")
	openKey := filepath.Join(t.TempDir(), "open.key")
	data, err := os.ReadFile(filepath.Join(p.dir, "w1.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(openKey, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// bridge.crt beside w1's key under the name bridge.key.
	mismatched := filepath.Join(filepath.Dir(openKey), "bridge.key")
	if err := os.WriteFile(mismatched, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(bridgeCrt, filepath.Join(filepath.Dir(openKey), "bridge.crt")); err != nil {
		t.Fatal(err)
	}
	bridgeCrtBeside := filepath.Join(filepath.Dir(openKey), "bridge.crt")
	runConfigCases(t, []configCase{
		{"bridge certificate, right name", []string{bridgeCrt, ca, "--dial", "localhost:4731"}, 0,
			[]string{bridgeCrt + ": OK (cert)", "role bridge", "chains to", "clients dialling localhost:4731 accept its name"}},
		{"bridge certificate, IP", []string{bridgeCrt, ca, "--dial", "127.0.0.1"}, 0, []string{"OK (cert)"}},
		{"bridge certificate, wrong SAN", []string{bridgeCrt, ca, "--dial", "bridge.example.com:4731"}, 1,
			[]string{bridgeCrt + ": ERROR (cert)", "clients dialling bridge.example.com:4731 refuse it", "localhost"}},
		{"bridge certificate, other CA", []string{bridgeCrt, otherCA}, 1, []string{"ERROR (cert)", "chain to"}},
		{"worker certificate", []string{w1Crt, ca, "--cert-role", "worker"}, 0, []string{`identity "w1", role worker`, "chains to"}},
		{"worker certificate, wrong role", []string{w1Crt, ca, "--cert-role", "bridge"}, 1, []string{`role is "worker", want "bridge"`}},
		{"expired certificate", []string{expired, "--tls-ca=" + c.caFile()}, 1, []string{expired + ": ERROR (cert)", "expired on"}},
		{"expiring soon", []string{soon, "--tls-ca=" + c.caFile()}, 0, []string{"OK (cert)", "WARNING: expires in"}},
		{"without CA", []string{w1Crt}, 0, []string{"chain not checked: give --tls-ca"}},
		{"key", []string{filepath.Join(p.dir, "w1.key")}, 0, []string{"OK (key)"}},
		{"key readable by others", []string{openKey}, 1, []string{"ERROR (key)", "mode 0644"}},
		{"certificate and its key", []string{w1Crt, filepath.Join(p.dir, "w1.key")}, 0, []string{w1Crt + " + " + filepath.Join(p.dir, "w1.key") + ": OK (pair)"}},
		{"certificate and another key", []string{bridgeCrtBeside, mismatched}, 1, []string{"ERROR (pair)"}},
	})
}

// TestConfigCheckContrib: the example files in contrib/ pass config check,
// each detected as its kind; the files they name are given through the
// environment, as a packaged install would have them in place.
func TestConfigCheckContrib(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	writeTestFile(t, keyFile, "contrib_key_0123456789\n")
	t.Setenv("GEARBRIDGE_KEYFILE", keyFile)
	t.Setenv("GEARBRIDGE_AUTHZ", filepath.Join(contribDir, "authz.yaml"))
	bridgeYAML, workerYAML, authz := filepath.Join(contribDir, "bridge.yaml"), filepath.Join(contribDir, "worker.yaml"), filepath.Join(contribDir, "authz.yaml")
	runConfigCases(t, []configCase{
		{"contrib", []string{bridgeYAML, workerYAML, authz}, 0,
			[]string{bridgeYAML + ": OK (bridge)", workerYAML + ": OK (worker)", authz + ": OK (authz)"}},
	})
}
