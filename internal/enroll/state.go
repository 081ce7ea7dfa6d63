package enroll

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/gearbridge/gearbridge/certs"
)

// nextSuffix marks the new key and certificate while a renewal replaces
// the pair; see writePair.
const nextSuffix = ".next"

// writePair replaces the key and the certificate of dir. Two files cannot
// be replaced in one atomic step, so both are first written beside the old
// ones as *.next and then renamed into place, key first. If the process
// dies in between, Recover finishes the job at the next start.
func writePair(dir string, keyPEM, certPEM []byte) error {
	certPath, keyPath, _ := Paths(dir)
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
	certPath, keyPath, _ := Paths(dir)
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
