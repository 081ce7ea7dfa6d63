package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// The files in contrib/ are what admins copy: they must stay loadable with
// the current option names and values.

const contribDir = "../../contrib"

// TestContribBridgeConfig loads contrib/bridge.yaml as `bridge --config`
// does, with the site-specific paths pointed at real files by flags, as an
// admin overriding them would.
func TestContribBridgeConfig(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	writeTestFile(t, keyFile, "contrib_key_0123456789\n")
	cmd := command(t, "bridge", "--keyfile", keyFile, "--authz", filepath.Join(contribDir, "authz.yaml"))
	opts, err := loadBridgeOptions(cmd.Flags(), filepath.Join(contribDir, "bridge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := opts.bridgeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if opts.Listen != ":4731" || opts.CertsDir != "" || opts.TLSKey != "/etc/gearbridge/tls/bridge.key" ||
		cfg.RevocationsFile != "/etc/gearbridge/ca/revoked.json" || cfg.Key != "contrib_key_0123456789" {
		t.Fatalf("options %+v", opts)
	}
	if err := cfg.Authz.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.Authz.AllowQueue("site-a-1", "hostgroup_site_a") || cfg.Authz.AllowQueue("site-b-1", "hostgroup_site_a") {
		t.Fatal("contrib/authz.yaml does not say what its comments say")
	}
}

// TestContribWorkerConfig loads contrib/worker.yaml as `worker --config`
// does.
func TestContribWorkerConfig(t *testing.T) {
	cmd := command(t, "worker")
	opts, notes, err := loadWorkerOptions(cmd.Flags(), filepath.Join(contribDir, "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) > 0 {
		t.Fatalf("notes: %v", notes)
	}
	opts.useStateDir()
	cfg, err := opts.workerConfig(os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Identifier != "site-a-1" || cfg.Slots != 50 || !opts.renews() {
		t.Fatalf("config %+v", cfg)
	}
}

// TestContribSystemdUnits checks that every ExecStart of the example units
// names a gearbridge command and flags that exist, and a config file that
// contrib/ ships.
func TestContribSystemdUnits(t *testing.T) {
	units, err := filepath.Glob(filepath.Join(contribDir, "systemd", "*.service"))
	if err != nil || len(units) != 4 {
		t.Fatalf("units %v, %v", units, err)
	}
	for _, u := range units {
		f, err := os.Open(u)
		if err != nil {
			t.Fatal(err)
		}
		var execs []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
				execs = append(execs, line)
			}
		}
		f.Close()
		if len(execs) != 1 {
			t.Fatalf("%s: %d ExecStart lines", u, len(execs))
		}
		args := strings.Fields(execs[0])
		if filepath.Base(args[0]) != "gearbridge" {
			t.Fatalf("%s: runs %s", u, args[0])
		}
		c := command(t, args[1:]...)
		if cfgFile, _ := c.Flags().GetString("config"); cfgFile != "" {
			if _, err := os.Stat(filepath.Join(contribDir, filepath.Base(cfgFile))); err != nil {
				t.Fatalf("%s: --config %s is not shipped in contrib/", u, cfgFile)
			}
		}
	}
}

// command finds the command of args in the real command tree and parses
// its flags, as cobra does before running it.
func command(t *testing.T, args ...string) *cobra.Command {
	t.Helper()
	root := newRootCmd(streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard})
	c, rest, err := root.Find(args)
	if err != nil || c == root {
		t.Fatalf("no command in %q: %v", args, err)
	}
	if err := c.ParseFlags(rest); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return c
}

// TestBridgeKeyFlagBeatsKeyfileInFile: --key on the command line replaces
// keyfile: from the config file, as the help says flags do; the two are
// one setting.
func TestBridgeKeyFlagBeatsKeyfileInFile(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	writeTestFile(t, keyFile, "from-keyfile\n")
	file := filepath.Join(dir, "bridge.yaml")
	writeTestFile(t, file, "keyfile: "+keyFile+"\n")
	cmd := command(t, "bridge", "--key", "from-flag")
	opts, err := loadBridgeOptions(cmd.Flags(), file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := opts.bridgeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Key != "from-flag" {
		t.Fatalf("key %q, want the flag's", cfg.Key)
	}
}

// TestContribCentralWorkerConfig loads contrib/worker-gearman.yaml, the
// central worker's configuration, as `worker --config` does.
func TestContribCentralWorkerConfig(t *testing.T) {
	cmd := command(t, "worker", "--transport=gearman")
	opts, notes, err := loadWorkerOptions(cmd.Flags(), filepath.Join(contribDir, "worker-gearman.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) > 0 {
		t.Fatalf("notes: %v", notes)
	}
	if opts.Transport != transportGearman || opts.KeyFile != "/etc/mod_gearman/secret.key" || opts.MetricsListen != "127.0.0.1:9467" {
		t.Fatalf("options %+v", opts)
	}
	if _, err := opts.workerConfig(os.Hostname); err != nil {
		t.Fatal(err)
	}
}

// TestContribSystemdUnitsHardened: every unit runs the packaged binary
// (make install rewrites /usr/bin/gearbridge to its BINDIR) as the
// packaged user, with the settings the security rating rests on
// (scripts/pkg-smoke.sh measures the rating as root).
func TestContribSystemdUnitsHardened(t *testing.T) {
	units, err := filepath.Glob(filepath.Join(contribDir, "systemd", "*.service"))
	if err != nil || len(units) == 0 {
		t.Fatalf("units %v, %v", units, err)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for _, want := range []string{"ExecStart=/usr/bin/gearbridge ", "User=gearbridge", "Group=gearbridge",
			"NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=", "SystemCallFilter=@system-service"} {
			if !slices.ContainsFunc(lines, func(l string) bool { return l == want || strings.HasPrefix(l, want) && strings.HasSuffix(want, " ") }) {
				t.Errorf("%s: no line %q", filepath.Base(u), want)
			}
		}
	}
}
