package certs

import (
	"fmt"
	"os"
	"path/filepath"
)

// File modes for what this package writes. Private keys are readable by
// their owner only; certificates and the revocation list are public.
const (
	KeyFileMode  os.FileMode = 0o600
	CertFileMode os.FileMode = 0o644
)

// WriteFileAtomic replaces path with data so that readers see either the old
// or the new content, never a mix, and a crash cannot leave a truncated file.
// It writes a temporary file in the same directory, syncs it, sets perm
// (exactly, regardless of umask), renames it over path and syncs the
// directory so the rename itself is durable.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, false)
}

// writeFileNew is WriteFileAtomic that fails with an error matching
// fs.ErrExist instead of replacing an existing file. It publishes the
// temporary file with a hard link, which, unlike rename, never replaces its
// target, so two concurrent writers cannot both succeed.
func writeFileNew(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, true)
}

func writeFile(path string, data []byte, perm os.FileMode, exclusive bool) error {
	tmp, err := stageFile(path, data, perm)
	if err != nil {
		return err
	}
	if err := publish(tmp, path, exclusive); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
