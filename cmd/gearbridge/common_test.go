package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
