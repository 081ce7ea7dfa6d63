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
	"slices"
	"strings"
	"sync"
	"time"
)

// RevocationsFile is the name of the revocation list in a CA directory.
const RevocationsFile = "revoked.json"

// ErrRevoked is returned by Revocations.VerifyPeer for a revoked certificate.
var ErrRevoked = errors.New("certificate revoked")

// Revocation records one revoked certificate.
type Revocation struct {
	// Serial is the certificate's serial number in lower-case hex without
	// separators.
	Serial    string    `json:"serial"`
	Name      string    `json:"name,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	RevokedAt time.Time `json:"revoked_at"`
}

// revocationsDoc is the JSON document in revoked.json.
type revocationsDoc struct {
	Revoked []Revocation `json:"revoked"`
}

// Revocations is the CA's list of revoked certificate serials, kept in a JSON
// file. It is meant for a fleet of tens to thousands of certificates, not a
// public CA: the whole list lives in memory and Save rewrites the file. Its
// methods are safe for concurrent use; writers in different processes are
// not coordinated, so only one program (the certs command) should revoke.
type Revocations struct {
	path string
	now  func() time.Time // nil means time.Now

	mu       sync.RWMutex
	bySerial map[string]Revocation // keyed by Revocation.Serial
}

// LoadRevocations reads the revocation list at path. A missing file is an
// empty list, since nothing has been revoked yet.
func LoadRevocations(path string) (*Revocations, error) {
	r := &Revocations{path: path}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Revocations loads the revocation list of the CA's directory.
func (ca *CA) Revocations() (*Revocations, error) {
	return LoadRevocations(filepath.Join(ca.dir, RevocationsFile))
}

// Reload replaces the in-memory list with the file's content. On error the
// list is unchanged, so a server keeps enforcing the revocations it knew.
func (r *Revocations) Reload() error {
	data, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("load revocations: %w", err)
	}
	m, err := parseRevocations(data)
	if err != nil {
		return fmt.Errorf("load revocations from %s: %w", r.path, err)
	}
	r.mu.Lock()
	r.bySerial = m
	r.mu.Unlock()
	return nil
}

// parseRevocations decodes a revoked.json document strictly: unknown fields,
// malformed or duplicate serials and trailing data are errors. Empty input is
// an empty list.
func parseRevocations(data []byte) (map[string]Revocation, error) {
	m := make(map[string]Revocation)
	if len(bytes.TrimSpace(data)) == 0 {
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc revocationsDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("parse: trailing data after JSON document")
	}
	for i, rv := range doc.Revoked {
		n, ok := new(big.Int).SetString(rv.Serial, 16)
		if !ok || n.Sign() <= 0 || rv.Serial != serialKey(n) {
			return nil, fmt.Errorf("entry %d: serial %q is not a positive lower-case hex number", i+1, rv.Serial)
		}
		if _, dup := m[rv.Serial]; dup {
			return nil, fmt.Errorf("entry %d: serial %s listed twice", i+1, rv.Serial)
		}
		m[rv.Serial] = rv
	}
	return m, nil
}

// Revoke adds serial to the list in memory; call Save to persist it.
// Revoking a serial again keeps the first record.
func (r *Revocations) Revoke(serial *big.Int, name, reason string) error {
	if serial == nil || serial.Sign() <= 0 {
		return fmt.Errorf("revoke %q: serial must be positive", name)
	}
	now := time.Now
	if r.now != nil {
		now = r.now
	}
	key := serialKey(serial)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bySerial == nil {
		r.bySerial = make(map[string]Revocation)
	}
	if _, ok := r.bySerial[key]; !ok {
		r.bySerial[key] = Revocation{Serial: key, Name: name, Reason: reason, RevokedAt: now().UTC()}
	}
	return nil
}

// IsRevoked reports whether serial is on the list.
func (r *Revocations) IsRevoked(serial *big.Int) bool {
	if serial == nil {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.bySerial[serialKey(serial)]
	return ok
}

// List returns the revocations ordered by time, then serial.
func (r *Revocations) List() []Revocation {
	r.mu.RLock()
	list := make([]Revocation, 0, len(r.bySerial))
	for _, rv := range r.bySerial {
		list = append(list, rv)
	}
	r.mu.RUnlock()
	slices.SortFunc(list, func(a, b Revocation) int {
		if c := a.RevokedAt.Compare(b.RevokedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Serial, b.Serial)
	})
	return list
}

// Save writes the list to its file atomically, mode 0644.
func (r *Revocations) Save() error {
	data, err := json.MarshalIndent(revocationsDoc{Revoked: r.List()}, "", "  ")
	if err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	if err := WriteFileAtomic(r.path, append(data, '\n'), CertFileMode); err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	return nil
}

// VerifyPeer returns an error wrapping ErrRevoked if cert is revoked. It has
// the signature of the verifyPeer hook of Reloader.ServerConfig.
func (r *Revocations) VerifyPeer(cert *x509.Certificate) error {
	if r.IsRevoked(cert.SerialNumber) {
		return fmt.Errorf("serial %s (CN %q): %w", serialKey(cert.SerialNumber), cert.Subject.CommonName, ErrRevoked)
	}
	return nil
}

func serialKey(serial *big.Int) string { return serial.Text(16) }
