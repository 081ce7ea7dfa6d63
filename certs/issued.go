package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// IssuedFile is the name of the list of issued certificates in a CA
// directory. It lets `certs list` show what exists and `certs revoke NAME`
// find the serials of an identity.
const IssuedFile = "issued.json"

const issuedLockFile = ".issued.lock"

// IssuedCert records one certificate the CA signed.
type IssuedCert struct {
	Serial    string    `json:"serial"` // lower-case hex, as in revoked.json
	Role      Role      `json:"role"`
	Name      string    `json:"name"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

type issuedDoc struct {
	Issued []IssuedCert `json:"issued"`
}

// record appends cert to the CA's issued.json.
func (ca *CA) record(cert *x509.Certificate, role Role, name string) error {
	unlock, err := lockFile(filepath.Join(ca.dir, issuedLockFile))
	if err != nil {
		return fmt.Errorf("record issued certificate: %w", err)
	}
	defer unlock()
	list, err := ca.Issued()
	if err != nil {
		return err
	}
	list = append(list, IssuedCert{
		Serial: serialKey(cert.SerialNumber), Role: role, Name: name,
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
	})
	data, err := json.MarshalIndent(issuedDoc{Issued: list}, "", "  ")
	if err != nil {
		return fmt.Errorf("record issued certificate: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(ca.dir, IssuedFile), append(data, '\n'), CertFileMode); err != nil {
		return fmt.Errorf("record issued certificate: %w", err)
	}
	return nil
}

// Issued returns the certificates the CA has signed, oldest first.
func (ca *CA) Issued() ([]IssuedCert, error) {
	path := filepath.Join(ca.dir, IssuedFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(bytes.TrimSpace(data)) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("issued certificates: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc issuedDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("issued certificates %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("issued certificates %s: trailing data", path)
	}
	return doc.Issued, nil
}

// RevokeSerialOrName revokes the certificate with the given serial (hex,
// as `certs list` shows it), or, if what is not a serial of an issued
// certificate, every unexpired certificate issued for the name what. It
// saves revoked.json and returns the revoked serials.
func (ca *CA) RevokeSerialOrName(what, reason string) ([]string, error) {
	issued, err := ca.Issued()
	if err != nil {
		return nil, err
	}
	rv, err := ca.Revocations()
	if err != nil {
		return nil, err
	}
	type target struct {
		serial *big.Int
		name   string
	}
	var targets []target
	serial := strings.ToLower(strings.ReplaceAll(what, ":", ""))
	for _, ic := range issued {
		if ic.Serial == serial {
			n, _ := new(big.Int).SetString(ic.Serial, 16)
			targets = append(targets, target{n, ic.Name})
		}
	}
	if len(targets) == 0 {
		now := ca.clock()
		for _, ic := range issued {
			if ic.Name == what && ic.Role != RoleBridge && now.Before(ic.NotAfter) {
				n, ok := new(big.Int).SetString(ic.Serial, 16)
				if ok {
					targets = append(targets, target{n, ic.Name})
				}
			}
		}
	}
	if len(targets) == 0 {
		// A serial the list does not know (issued before issued.json
		// existed) can still be revoked.
		if n, ok := new(big.Int).SetString(serial, 16); ok && n.Sign() > 0 && serialKey(n) == serial && len(serial) >= 16 {
			targets = append(targets, target{n, ""})
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("revoke %q: no unexpired certificate has this serial or name", what)
	}
	var out []string
	for _, tg := range targets {
		if err := rv.Revoke(tg.serial, tg.name, reason); err != nil {
			return nil, err
		}
		out = append(out, serialKey(tg.serial))
	}
	if err := rv.Save(); err != nil {
		return nil, err
	}
	return out, nil
}

// SerialOf returns a certificate's serial in the format of revoked.json and
// issued.json.
func SerialOf(cert *x509.Certificate) string { return serialKey(cert.SerialNumber) }
