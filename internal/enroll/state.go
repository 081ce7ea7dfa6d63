package enroll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/certs"
)

// nextSuffix marks the new key and certificate while a renewal replaces
// the pair; see writePair.
const nextSuffix = ".next"

// LockFile is the lock file in a state directory. Several processes may
// share one directory (cron-started `send` runs beside a `send --daemon`),
// so renewing and loading the pair both hold it: nobody reads a key that
// belongs to a certificate not yet renamed into place, and two processes
// never renew at once.
const LockFile = "state.lock"

// lockSuffix names the lock file beside an issued certificate.
const lockSuffix = ".lock"

// Files are the files of one certificate: the certificate and key that a
// renewal replaces, the CA it reads, and the lock file that keeps
// renewals and loads of several processes apart.
type Files struct {
	Cert, Key, CA, Lock string
}

// StateFiles are the files of the state directory dir.
func StateFiles(dir string) Files {
	crt, key, ca := Paths(dir)
	return Files{Cert: crt, Key: key, CA: ca, Lock: filepath.Join(dir, LockFile)}
}

// IssuedFiles are the files of a certificate from `gearbridge certs
// issue`, wherever the operator put them. The lock is the certificate's
// file name with ".lock" appended.
func IssuedFiles(cert, key, ca string) Files {
	return Files{Cert: cert, Key: key, CA: ca, Lock: cert + lockSuffix}
}

// CheckWritable reports whether a renewal can replace the certificate and
// the key: each is written beside its old self and renamed over it, which
// takes a writable directory, and the lock file must be creatable.
func (f Files) CheckWritable() error {
	dirs := []string{filepath.Dir(f.Cert), filepath.Dir(f.Key), filepath.Dir(f.Lock)}
	for i, d := range dirs {
		if slices.Contains(dirs[:i], d) {
			continue
		}
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("renewal replaces files in %s: %w", d, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("renewal replaces files in %s: not a directory", d)
		}
		if err := syscall.Access(d, 2|1); err != nil { // W_OK|X_OK
			return fmt.Errorf("renewal replaces files in %s: the directory is not writable: %w", d, err)
		}
	}
	return nil
}

// lockState takes the state directory's lock and returns the function that
// releases it. It waits for the other holder until ctx ends.
func lockState(ctx context.Context, dir string) (func(), error) {
	return lockFiles(ctx, StateFiles(dir))
}

// lockFiles takes f's lock and returns the function that releases it. It
// waits for the other holder until ctx ends.
func lockFiles(ctx context.Context, files Files) (func(), error) {
	path := files.Lock
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: held by another process: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// openTimeout bounds the wait for another process's renewal in Open; one
// renewal takes at most renewTimeout.
const openTimeout = renewTimeout + 5*time.Second

// Open loads the key, certificate and CA of the state directory dir, after
// finishing a renewal that a crash interrupted (Recover); caFile, if not
// empty, is read instead of the directory's CA. It holds the directory's
// lock meanwhile, so a renewal by another process sharing dir is never
// seen half done.
func Open(dir, caFile string) (*certs.Reloader, error) {
	files := StateFiles(dir)
	if caFile != "" {
		files.CA = caFile
	}
	return OpenFiles(files)
}

// OpenFiles is Open for any Files, such as IssuedFiles.
func OpenFiles(files Files) (*certs.Reloader, error) {
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	unlock, err := lockFiles(ctx, files)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := recoverFiles(files); err != nil {
		return nil, err
	}
	return certs.NewReloader(files.Cert, files.Key, files.CA)
}

// writePair replaces the key and the certificate of files. Two files
// cannot be replaced in one atomic step, so both are first written beside
// the old ones as *.next and then renamed into place, key first. If the
// process dies in between, Recover (OpenFiles) finishes the job at the
// next start.
func writePair(files Files, keyPEM, certPEM []byte) error {
	certPath, keyPath := files.Cert, files.Key
	if err := writeNext(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNext(certPath, certPEM, 0o644); err != nil {
		return err
	}
	if err := os.Rename(keyPath+nextSuffix, keyPath); err != nil {
		return fmt.Errorf("replace key: %w", err)
	}
	if err := os.Rename(certPath+nextSuffix, certPath); err != nil {
		return fmt.Errorf("replace certificate: %w", err)
	}
	return nil
}

func writeNext(path string, data []byte, mode os.FileMode) error {
	return certs.WriteFileAtomic(path+nextSuffix, data, mode)
}

// Recover completes a renewal that was interrupted between writing the
// new key and certificate and renaming them into place, or removes its
// leftovers if the new pair is incomplete. Call it before loading the
// state directory.
func Recover(dir string) error {
	return recoverFiles(StateFiles(dir))
}

func recoverFiles(files Files) error {
	certPath, keyPath := files.Cert, files.Key
	dir := filepath.Dir(certPath)
	certNext, keyNext := certPath+nextSuffix, keyPath+nextSuffix
	newCert, errC := os.ReadFile(certNext)
	if errors.Is(errC, fs.ErrNotExist) {
		// The certificate was renamed last (or nothing was pending): a
		// leftover key.next belongs to an unfinished attempt.
		if err := os.Remove(keyNext); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("recover %s: %w", dir, err)
		}
		return nil
	}
	if errC != nil {
		return fmt.Errorf("recover %s: %w", dir, errC)
	}
	keyFile := keyNext
	if _, err := os.Stat(keyNext); errors.Is(err, fs.ErrNotExist) {
		keyFile = keyPath // the key was renamed already
	}
	newKey, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("recover %s: %w", dir, err)
	}
	if _, err := tls.X509KeyPair(newCert, newKey); err != nil {
		// The new certificate does not belong to the key we would use:
		// drop the unfinished attempt, the old pair is intact.
		if keyFile == keyNext {
			_ = os.Remove(keyNext)
		}
		_ = os.Remove(certNext)
		return nil
	}
	if keyFile == keyNext {
		if err := os.Rename(keyNext, keyPath); err != nil {
			return fmt.Errorf("recover %s: %w", dir, err)
		}
	}
	if err := os.Rename(certNext, certPath); err != nil {
		return fmt.Errorf("recover %s: %w", dir, err)
	}
	return nil
}
