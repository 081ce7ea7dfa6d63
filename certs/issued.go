package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// IssuedFile is the name of the list of issued certificates in a CA
// directory. It lets `certs list` show what exists and `certs revoke NAME`
// find the serials of an identity.
const IssuedFile = "issued.json"

// caLockFile serialises the CA's read-modify-write cycles of issued.json
// and revoked.json between processes: the certs command and a bridge that
// enrolls and renews with the same CA directory. Signing happens under it
// too, so that a revocation and a renewal of the same identity cannot
// interleave.
const caLockFile = ".issued.lock"

// lock takes the CA lock.
func (ca *CA) lock() (func(), error) {
	unlock, err := lockFile(filepath.Join(ca.dir, caLockFile))
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", ca.dir, err)
	}
	return unlock, nil
}

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

// recordLocked appends cert to the CA's issued.json. The caller holds the
// CA lock.
func (ca *CA) recordLocked(cert *x509.Certificate, role Role, name string) error {
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

// RevokeResult is what a revocation changed.
type RevokeResult struct {
	// Identities are the identities revoked by name, as now recorded.
	Identities []IdentityRevocation
	// Serials are the certificates revoked by serial: the one asked for,
	// or the unexpired certificates of the revoked identities.
	Serials []string
	// UnknownSerial is set when the serial revoked is not in issued.json.
	UnknownSerial bool
	// File is the revocation list that was written.
	File string
}

// RevokeName revokes the identity name in every client role it was issued
// or given a token for: each certificate of the identity issued up to now,
// including renewals no list knows yet, is refused from now on, and the CA
// issues nothing more for it (no renewal, no enrollment with an older
// token) until the operator re-enrolls the name (IssueFiles or CreateToken
// with reenroll). The unexpired certificates are listed by serial as well.
func (ca *CA) RevokeName(name, reason string) (RevokeResult, error) {
	if err := validateName(name); err != nil {
		return RevokeResult{}, fmt.Errorf("revoke: %w", err)
	}
	unlock, err := ca.lock()
	if err != nil {
		return RevokeResult{}, err
	}
	defer unlock()
	issued, err := ca.Issued()
	if err != nil {
		return RevokeResult{}, err
	}
	toks, err := ca.Tokens().List()
	if err != nil {
		return RevokeResult{}, err
	}
	// The cut-off is now, or the latest NotBefore of the identity if that
	// is later: a certificate issued just after a re-enrollment can start
	// a second after the previous cut-off.
	latest := map[Role]time.Time{}
	for _, ic := range issued {
		if ic.Name == name && ic.Role.isClient() {
			latest[ic.Role] = later(latest[ic.Role], ic.NotBefore)
		}
	}
	for _, tr := range toks {
		if _, ok := latest[tr.Role]; tr.Name == name && !ok {
			latest[tr.Role] = time.Time{}
		}
	}
	if len(latest) == 0 {
		return RevokeResult{}, fmt.Errorf("revoke %q: no worker, sender or admin certificate or token was issued for this name", name)
	}
	rv, err := ca.Revocations()
	if err != nil {
		return RevokeResult{}, err
	}
	now := ca.clock()
	roles := slices.Sorted(maps.Keys(latest))
	res := RevokeResult{File: rv.Path()}
	for _, role := range roles {
		if err := rv.RevokeIdentity(role, name, reason, later(now, latest[role])); err != nil {
			return RevokeResult{}, err
		}
	}
	for _, ic := range issued {
		if ic.Name == name && ic.Role.isClient() && now.Before(ic.NotAfter) {
			n, ok := new(big.Int).SetString(ic.Serial, 16)
			if !ok || n.Sign() <= 0 {
				continue
			}
			if err := rv.Revoke(n, name, reason); err != nil {
				return RevokeResult{}, err
			}
			res.Serials = append(res.Serials, ic.Serial)
		}
	}
	if err := rv.Save(); err != nil {
		return RevokeResult{}, err
	}
	for _, role := range roles {
		ir, _ := rv.Identity(role, name)
		res.Identities = append(res.Identities, ir)
	}
	return res, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// RevokeSerial revokes the one certificate with serial (hex, as certs list
// shows it; colons and upper case are accepted). The identity and its other
// certificates stay valid. A serial that issued.json does not know (issued
// before the list existed) can be revoked too.
func (ca *CA) RevokeSerial(serial, reason string) (RevokeResult, error) {
	key := strings.ToLower(strings.ReplaceAll(serial, ":", ""))
	n, ok := new(big.Int).SetString(key, 16)
	if !ok || n.Sign() <= 0 || serialKey(n) != key {
		return RevokeResult{}, fmt.Errorf("revoke serial %q: not a positive hex number without leading zeros", serial)
	}
	unlock, err := ca.lock()
	if err != nil {
		return RevokeResult{}, err
	}
	defer unlock()
	issued, err := ca.Issued()
	if err != nil {
		return RevokeResult{}, err
	}
	name, known := "", false
	for _, ic := range issued {
		if ic.Serial == key {
			name, known = ic.Name, true
		}
	}
	rv, err := ca.Revocations()
	if err != nil {
		return RevokeResult{}, err
	}
	if err := rv.Revoke(n, name, reason); err != nil {
		return RevokeResult{}, err
	}
	if err := rv.Save(); err != nil {
		return RevokeResult{}, err
	}
	return RevokeResult{Serials: []string{key}, UnknownSerial: !known, File: rv.Path()}, nil
}

// RevokeSerialOrName revokes the certificate with the given serial if what
// is the serial of an issued certificate, and otherwise the identity what
// (RevokeName); a name that was never issued but reads as a long serial is
// revoked as a serial. It returns the serials revoked.
func (ca *CA) RevokeSerialOrName(what, reason string) ([]string, error) {
	issued, err := ca.Issued()
	if err != nil {
		return nil, err
	}
	key := strings.ToLower(strings.ReplaceAll(what, ":", ""))
	if slices.ContainsFunc(issued, func(ic IssuedCert) bool { return ic.Serial == key }) {
		res, err := ca.RevokeSerial(what, reason)
		return res.Serials, err
	}
	res, err := ca.RevokeName(what, reason)
	if err != nil {
		if n, ok := new(big.Int).SetString(key, 16); ok && len(key) >= 16 && serialKey(n) == key {
			res, err := ca.RevokeSerial(what, reason)
			return res.Serials, err
		}
		return nil, err
	}
	return res.Serials, nil
}

// Expiring returns the certificates of issued that expire after now and
// at most within from now, soonest first: for each identity only its newest
// certificate (an older one a renewal replaced does not matter), and none
// that rv revokes.
func Expiring(issued []IssuedCert, rv *Revocations, now time.Time, within time.Duration) []IssuedCert {
	newest := map[identityKey]IssuedCert{}
	for _, ic := range issued {
		k := identityKey{ic.Role, ic.Name}
		if cur, ok := newest[k]; !ok || ic.NotBefore.After(cur.NotBefore) ||
			(ic.NotBefore.Equal(cur.NotBefore) && ic.NotAfter.After(cur.NotAfter)) {
			newest[k] = ic
		}
	}
	var out []IssuedCert
	for _, ic := range newest {
		if rv != nil && rv.IsRevokedIssued(ic) {
			continue
		}
		if now.Before(ic.NotAfter) && !ic.NotAfter.After(now.Add(within)) {
			out = append(out, ic)
		}
	}
	slices.SortFunc(out, func(a, b IssuedCert) int {
		if c := a.NotAfter.Compare(b.NotAfter); c != 0 {
			return c
		}
		return strings.Compare(a.Serial, b.Serial)
	})
	return out
}

// SerialOf returns a certificate's serial in the format of revoked.json and
// issued.json.
func SerialOf(cert *x509.Certificate) string { return serialKey(cert.SerialNumber) }
