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

// ErrIdentityRevoked is returned when a certificate is asked for an identity
// that was revoked by name and not re-enrolled since. It wraps ErrRevoked.
var ErrIdentityRevoked = fmt.Errorf("%w: identity revoked", ErrRevoked)

// maxSeenCerts bounds the certificates a Revocations remembers from
// VerifyPeer (see IsRevokedSerial). A bridge sees a few certificates per
// peer; the bound only matters against a flood of distinct valid
// certificates, which would need the CA key.
const maxSeenCerts = 1 << 16

// Revocation records one revoked certificate.
type Revocation struct {
	// Serial is the certificate's serial number in lower-case hex without
	// separators.
	Serial    string    `json:"serial"`
	Name      string    `json:"name,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	RevokedAt time.Time `json:"revoked_at"`
}

// IdentityRevocation records an identity revoked by name. Every
// certificate of the identity whose NotBefore is at or before RevokedAt is
// refused, so a revocation also covers certificates renewed from a revoked
// one before the revocation, and the CA issues nothing more for the
// identity until the operator re-enrolls it (ReenrolledAt).
type IdentityRevocation struct {
	Role Role   `json:"role"`
	Name string `json:"name"`
	// RevokedAt is the cut-off: certificates of the identity issued (by
	// NotBefore) at or before it are refused.
	RevokedAt time.Time `json:"revoked_at"`
	Reason    string    `json:"reason,omitempty"`
	// ReenrolledAt is set when the operator allowed the identity new
	// certificates again (certs issue or certs token with --reenroll);
	// certificates issued from then on have a NotBefore after RevokedAt.
	// A later revocation clears it.
	ReenrolledAt *time.Time `json:"reenrolled_at,omitempty"`
	// Generation counts the re-enrollments.
	Generation int `json:"generation,omitempty"`
}

// Disabled reports whether the CA refuses new certificates for the
// identity: it was revoked and not re-enrolled since.
func (ir IdentityRevocation) Disabled() bool { return ir.ReenrolledAt == nil }

// refuses reports whether a certificate that became valid at notBefore is
// revoked by ir.
func (ir IdentityRevocation) refuses(notBefore time.Time) bool {
	return !notBefore.After(ir.RevokedAt)
}

type identityKey struct {
	role Role
	name string
}

// revocationsDoc is the JSON document in revoked.json. Files written before
// identities could be revoked have only "revoked".
type revocationsDoc struct {
	Revoked    []Revocation         `json:"revoked"`
	Identities []IdentityRevocation `json:"identities,omitempty"`
}

// revocationState is one parsed revoked.json.
type revocationState struct {
	bySerial   map[string]Revocation // keyed by Revocation.Serial
	byIdentity map[identityKey]IdentityRevocation
}

// seenCert is what VerifyPeer remembers of a certificate it was shown.
type seenCert struct {
	id        identityKey
	notBefore time.Time
	notAfter  time.Time
}

// Revocations is the CA's list of revoked certificate serials and
// identities, kept in a JSON file. It is meant for a fleet of tens to
// thousands of certificates, not a public CA: the whole list lives in
// memory and Save rewrites the file. Its methods are safe for concurrent
// use. Writers in different processes are serialised by the CA's lock (see
// the CA's Revoke methods); use those rather than Save on a shared file.
type Revocations struct {
	path string
	now  func() time.Time // nil means time.Now

	mu    sync.RWMutex
	state revocationState

	// seen maps the serials VerifyPeer accepted or refused to their
	// identity and validity, so that IsRevokedSerial (which a bridge calls
	// with the serial of a live session) can apply identity revocations.
	seenMu sync.Mutex
	seen   map[string]seenCert
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
	r, err := LoadRevocations(filepath.Join(ca.dir, RevocationsFile))
	if err != nil {
		return nil, err
	}
	r.now = ca.now
	return r, nil
}

// Path returns the file the list is read from and saved to.
func (r *Revocations) Path() string { return r.path }

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
	st, err := parseRevocations(data)
	if err != nil {
		return fmt.Errorf("load revocations from %s: %w", r.path, err)
	}
	r.mu.Lock()
	r.state = st
	r.mu.Unlock()
	return nil
}

// parseRevocations decodes a revoked.json document strictly: unknown fields,
// malformed or duplicate serials or identities and trailing data are
// errors. Empty input is an empty list.
func parseRevocations(data []byte) (revocationState, error) {
	st := revocationState{bySerial: map[string]Revocation{}, byIdentity: map[identityKey]IdentityRevocation{}}
	if len(bytes.TrimSpace(data)) == 0 {
		return st, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc revocationsDoc
	if err := dec.Decode(&doc); err != nil {
		return revocationState{}, fmt.Errorf("parse: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return revocationState{}, errors.New("parse: trailing data after JSON document")
	}
	for i, rv := range doc.Revoked {
		n, ok := new(big.Int).SetString(rv.Serial, 16)
		if !ok || n.Sign() <= 0 || rv.Serial != serialKey(n) {
			return revocationState{}, fmt.Errorf("entry %d: serial %q is not a positive lower-case hex number", i+1, rv.Serial)
		}
		if _, dup := st.bySerial[rv.Serial]; dup {
			return revocationState{}, fmt.Errorf("entry %d: serial %s listed twice", i+1, rv.Serial)
		}
		st.bySerial[rv.Serial] = rv
	}
	for i, ir := range doc.Identities {
		if !ir.Role.isClient() {
			return revocationState{}, fmt.Errorf("identity %d: role %q: want worker, sender or admin", i+1, ir.Role)
		}
		if err := validateName(ir.Name); err != nil {
			return revocationState{}, fmt.Errorf("identity %d: %w", i+1, err)
		}
		if ir.RevokedAt.IsZero() {
			return revocationState{}, fmt.Errorf("identity %d (%s %q): revoked_at is missing", i+1, ir.Role, ir.Name)
		}
		if ir.Generation < 0 {
			return revocationState{}, fmt.Errorf("identity %d (%s %q): generation %d is negative", i+1, ir.Role, ir.Name, ir.Generation)
		}
		k := identityKey{ir.Role, ir.Name}
		if _, dup := st.byIdentity[k]; dup {
			return revocationState{}, fmt.Errorf("identity %d: %s %q listed twice", i+1, ir.Role, ir.Name)
		}
		st.byIdentity[k] = ir
	}
	return st, nil
}

func (r *Revocations) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// Revoke adds serial to the list in memory; call Save to persist it.
// Revoking a serial again keeps the first record.
func (r *Revocations) Revoke(serial *big.Int, name, reason string) error {
	if serial == nil || serial.Sign() <= 0 {
		return fmt.Errorf("revoke %q: serial must be positive", name)
	}
	now := r.clock()
	key := serialKey(serial)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.bySerial == nil {
		r.state.bySerial = make(map[string]Revocation)
	}
	if _, ok := r.state.bySerial[key]; !ok {
		r.state.bySerial[key] = Revocation{Serial: key, Name: name, Reason: reason, RevokedAt: now.UTC()}
	}
	return nil
}

// RevokeIdentity revokes role and name in memory, with cutoff as the
// latest NotBefore that is refused; call Save to persist it. A revoked
// identity is revoked again with the later cut-off, and a re-enrollment is
// undone.
func (r *Revocations) RevokeIdentity(role Role, name, reason string, cutoff time.Time) error {
	if !role.isClient() {
		return fmt.Errorf("revoke %s %q: only worker, sender and admin identities can be revoked", role, name)
	}
	if err := validateName(name); err != nil {
		return fmt.Errorf("revoke %s: %w", role, err)
	}
	k := identityKey{role, name}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.byIdentity == nil {
		r.state.byIdentity = make(map[identityKey]IdentityRevocation)
	}
	ir := r.state.byIdentity[k]
	ir.Role, ir.Name, ir.Reason, ir.ReenrolledAt = role, name, reason, nil
	if cutoff.After(ir.RevokedAt) {
		ir.RevokedAt = cutoff.UTC()
	}
	r.state.byIdentity[k] = ir
	return nil
}

// reenroll marks a revoked identity as allowed new certificates again, in
// memory. It reports whether the identity was disabled.
func (r *Revocations) reenroll(role Role, name string) bool {
	k := identityKey{role, name}
	now := r.clock().UTC()
	r.mu.Lock()
	defer r.mu.Unlock()
	ir, ok := r.state.byIdentity[k]
	if !ok || !ir.Disabled() {
		return false
	}
	ir.ReenrolledAt = &now
	ir.Generation++
	r.state.byIdentity[k] = ir
	return true
}

// Identity returns the revocation record of an identity, if it has one.
func (r *Revocations) Identity(role Role, name string) (IdentityRevocation, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ir, ok := r.state.byIdentity[identityKey{role, name}]
	return ir, ok
}

// Identities returns the revoked identities ordered by role and name.
func (r *Revocations) Identities() []IdentityRevocation {
	r.mu.RLock()
	list := make([]IdentityRevocation, 0, len(r.state.byIdentity))
	for _, ir := range r.state.byIdentity {
		list = append(list, ir)
	}
	r.mu.RUnlock()
	slices.SortFunc(list, func(a, b IdentityRevocation) int {
		if c := strings.Compare(string(a.Role), string(b.Role)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return list
}

// IsRevoked reports whether serial is on the list.
func (r *Revocations) IsRevoked(serial *big.Int) bool {
	if serial == nil {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.state.bySerial[serialKey(serial)]
	return ok
}

// IsRevokedSerial is IsRevoked for a serial in the lower-case hex form of
// SerialOf. It also reports a certificate revoked by its identity if
// VerifyPeer has seen it, which is the case for every certificate a bridge
// admitted.
func (r *Revocations) IsRevokedSerial(serial string) bool {
	if serial == "" {
		return false
	}
	r.seenMu.Lock()
	sc, seen := r.seen[serial]
	r.seenMu.Unlock()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.state.bySerial[serial]; ok {
		return true
	}
	if !seen {
		return false
	}
	ir, ok := r.state.byIdentity[sc.id]
	return ok && ir.refuses(sc.notBefore)
}

// IsRevokedIssued reports whether the certificate ic describes is revoked,
// by serial or by identity.
func (r *Revocations) IsRevokedIssued(ic IssuedCert) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.state.bySerial[ic.Serial]; ok {
		return true
	}
	ir, ok := r.state.byIdentity[identityKey{ic.Role, ic.Name}]
	return ok && ir.refuses(ic.NotBefore)
}

// List returns the revoked serials ordered by time, then serial.
func (r *Revocations) List() []Revocation {
	r.mu.RLock()
	list := make([]Revocation, 0, len(r.state.bySerial))
	for _, rv := range r.state.bySerial {
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

func (r *Revocations) doc() revocationsDoc {
	return revocationsDoc{Revoked: r.List(), Identities: r.Identities()}
}

// Save writes the list to its file atomically, mode 0644.
func (r *Revocations) Save() error {
	data, err := json.MarshalIndent(r.doc(), "", "  ")
	if err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	if err := WriteFileAtomic(r.path, append(data, '\n'), CertFileMode); err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	return nil
}

// VerifyPeer returns an error wrapping ErrRevoked if cert is revoked: by
// its serial, or because its identity was revoked at or after its
// NotBefore. It has the signature of the verifyPeer hook of
// Reloader.ServerConfig and VerifyClient.
func (r *Revocations) VerifyPeer(cert *x509.Certificate) error {
	if r.IsRevoked(cert.SerialNumber) {
		return fmt.Errorf("serial %s (CN %q): %w", serialKey(cert.SerialNumber), cert.Subject.CommonName, ErrRevoked)
	}
	role, name, err := IdentityOf(cert)
	if err != nil {
		// Not a gearbridge identity: nothing to revoke by name; the
		// caller refuses it for lack of an identity.
		return nil
	}
	id := identityKey{role, name}
	r.remember(SerialOf(cert), seenCert{id: id, notBefore: cert.NotBefore, notAfter: cert.NotAfter})
	if ir, ok := r.Identity(role, name); ok && ir.refuses(cert.NotBefore) {
		return fmt.Errorf("serial %s: %s %q was revoked at %s, and this certificate is from %s: %w",
			serialKey(cert.SerialNumber), role, name, ir.RevokedAt.UTC().Format(time.RFC3339),
			cert.NotBefore.UTC().Format(time.RFC3339), ErrRevoked)
	}
	return nil
}

// Remember records the identity of a certificate that VerifyPeer has not
// seen, such as one the bridge renewed for a live session, so that
// IsRevokedSerial applies identity revocations to its serial as well.
func (r *Revocations) Remember(cert *x509.Certificate) {
	role, name, err := IdentityOf(cert)
	if err != nil {
		return
	}
	r.remember(SerialOf(cert), seenCert{id: identityKey{role, name}, notBefore: cert.NotBefore, notAfter: cert.NotAfter})
}

// remember records a certificate VerifyPeer saw, forgetting expired ones
// when the memory is full.
func (r *Revocations) remember(serial string, sc seenCert) {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	if r.seen == nil {
		r.seen = make(map[string]seenCert)
	}
	if _, ok := r.seen[serial]; !ok && len(r.seen) >= maxSeenCerts {
		now := r.clock()
		for k, v := range r.seen {
			if now.After(v.notAfter) {
				delete(r.seen, k)
			}
		}
		for k := range r.seen {
			if len(r.seen) < maxSeenCerts {
				break
			}
			delete(r.seen, k)
		}
	}
	r.seen[serial] = sc
}

func serialKey(serial *big.Int) string { return serial.Text(16) }
