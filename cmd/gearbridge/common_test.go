package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestNormalizeServers(t *testing.T) {
	got, err := normalizeServers([]string{"localhost:4730,localhost:4730,:4730,host:4730,", "other"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"localhost:4730", "0.0.0.0:4730", "host:4730", "other:4730"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"host:http", "host:0", "host:99999"} {
		if _, err := normalizeServers([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func TestResolveKey(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "key")
	if err := os.WriteFile(kf, []byte("abcdef \nmore text\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := resolveKey("", kf); err != nil || k != "abcdef" {
		t.Fatalf("keyfile: %q %v", k, err)
	}
	if k, err := resolveKey("direct", ""); err != nil || k != "direct" {
		t.Fatalf("key: %q %v", k, err)
	}
	if _, err := resolveKey("a", kf); err == nil {
		t.Fatal("key and keyfile together must be refused")
	}
	if _, err := resolveKey("", filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing keyfile must be an error")
	}
}

// A bridge given without a port is on the bridge's default port 4731, not
// on gRPC's default 443.
func TestCommonBridgeAddr(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "bridge.example.com", want: "bridge.example.com:4731"},
		{in: "bridge.example.com:5000", want: "bridge.example.com:5000"},
		{in: " 192.0.2.10 ", want: "192.0.2.10:4731"},
		{in: "192.0.2.10:4731", want: "192.0.2.10:4731"},
		{in: "::1", want: "[::1]:4731"},
		{in: "[::1]", want: "[::1]:4731"},
		{in: "[2001:db8::1]:4000", want: "[2001:db8::1]:4000"},
		{in: "dns:///bridge.example.com:4731", want: "dns:///bridge.example.com:4731"},
		{in: "unix:///run/gearbridge.sock", want: "unix:///run/gearbridge.sock"},
		{in: "", err: "empty"},
		{in: "bridge:https", err: `port "https" is not a number 1..65535`},
		{in: "bridge:0", err: `port "0" is not a number 1..65535`},
		{in: "bridge:", err: `port "" is not a number 1..65535`},
	}
	for _, tt := range tests {
		got, err := bridgeAddr(tt.in)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: got %q, %v; want an error with %q", tt.in, got, err, tt.err)
			}
		case err != nil || got != tt.want:
			t.Errorf("%q: got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// walkCommands calls fn for root and every command below it.
func walkCommands(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walkCommands(sub, fn)
	}
}

// TestFlagsOneMeaningOneSpelling: no command redefines a global flag (so
// --key is the payload key everywhere), and every flag answers to both
// its dashed and its classic underscore spelling.
func TestFlagsOneMeaningOneSpelling(t *testing.T) {
	root := newRootCmd(streams{})
	globals := root.PersistentFlags()
	walkCommands(root, func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if globals.Lookup(f.Name) != nil && c != root {
				t.Errorf("%s: --%s shadows the global flag of that name", c.CommandPath(), f.Name)
			}
		})
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Name, "_") {
				t.Errorf("%s: --%s is not in its dashed spelling", c.CommandPath(), f.Name)
			}
			if u := strings.ReplaceAll(f.Name, "-", "_"); c.Flags().Lookup(u) != f {
				t.Errorf("%s: --%s does not answer to --%s", c.CommandPath(), f.Name, u)
			}
		})
	})
}
