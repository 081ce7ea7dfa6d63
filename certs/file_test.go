package certs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	tests := []struct {
		name     string
		existing *os.FileMode // mode of a file already at path, if any
		perm     os.FileMode
	}{
		{name: "new key", perm: KeyFileMode},
		{name: "new certificate", perm: CertFileMode},
		{name: "replace world-readable file with key", existing: ptr(os.FileMode(0o644)), perm: KeyFileMode},
		{name: "replace key with certificate", existing: ptr(os.FileMode(0o600)), perm: CertFileMode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "file.pem")
			if tt.existing != nil {
				if err := os.WriteFile(path, []byte("old content that is longer"), *tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFileAtomic(path, []byte("new"), tt.perm); err != nil {
				t.Fatalf("WriteFileAtomic: %v", err)
			}
			if got := string(readFile(t, path)); got != "new" {
				t.Errorf("content %q, want %q", got, "new")
			}
			checkMode(t, path, tt.perm)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want 1 (temporary file left behind?)", len(entries))
			}
		})
	}
}

func TestWriteFileAtomicErrors(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), []byte("x"), KeyFileMode); err == nil {
		t.Error("write into a missing directory succeeded")
	}
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(target, []byte("x"), KeyFileMode); err == nil {
		t.Error("replacing a directory succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after failed writes, want 1", len(entries))
	}
}

func TestWriteFileNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.key")
	if err := writeFileNew(path, []byte("first"), KeyFileMode); err != nil {
		t.Fatal(err)
	}
	if err := writeFileNew(path, []byte("second"), KeyFileMode); err == nil {
		t.Fatal("second exclusive write succeeded")
	}
	if got := string(readFile(t, path)); got != "first" {
		t.Errorf("content %q, want %q", got, "first")
	}
	checkMode(t, path, KeyFileMode)
}

func ptr[T any](v T) *T { return &v }
