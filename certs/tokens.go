package certs

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// TokensFile is the name of the enrollment token list in a CA directory.
const TokensFile = "tokens.json"

// tokensLockFile serialises read-modify-write cycles of tokens.json between
// the certs command (which adds tokens) and the bridge (which uses them).
const tokensLockFile = ".tokens.lock"

// tokenPrefix marks gearbridge enrollment tokens, so that a token pasted
// into the wrong place is recognisable and secret scanners can find it.
const tokenPrefix = "gbt_"

// tokenBytes is the token's entropy: 256 bits.
const tokenBytes = 32

// maxTokenTTL bounds how long a token may stay usable. A token is a
// bearer credential for a certificate; a day is enough to get it to a
// remote site.
const maxTokenTTL = 7 * 24 * time.Hour

// usedTokenMemory is how long used and expired tokens stay in tokens.json
// (as hashes) for `certs list` before they are pruned.
const usedTokenMemory = 30 * 24 * time.Hour

// Token errors a caller may branch on. Every refusal of Consume wraps
// ErrTokenInvalid, so that the bridge can answer all of them alike and does
// not tell a guesser which tokens exist.
var (
	ErrTokenInvalid = errors.New("enrollment token invalid")
	ErrTokenUnknown = fmt.Errorf("%w: unknown token", ErrTokenInvalid)
	ErrTokenUsed    = fmt.Errorf("%w: token already used", ErrTokenInvalid)
	ErrTokenExpired = fmt.Errorf("%w: token expired", ErrTokenInvalid)
	ErrTokenRevoked = fmt.Errorf("%w: its identity was revoked", ErrTokenInvalid)
)

// TokenSpec is what an enrollment token grants: a certificate for Name in
// Role and, optionally, the queues (worker) or hosts (sender) the bridge
// adds to its authorization rules for that identity.
type TokenSpec struct {
	Role   Role     `json:"role"`
	Name   string   `json:"name"`
	Queues []string `json:"queues,omitempty"`
	Hosts  []string `json:"hosts,omitempty"`
}

// Validate checks the spec without changing it.
func (s TokenSpec) Validate() error {
	switch s.Role {
	case RoleWorker:
		if len(s.Hosts) > 0 {
			return errors.New("token: hosts apply to sender tokens only")
		}
	case RoleSender:
		if len(s.Queues) > 0 {
			return errors.New("token: queues apply to worker tokens only")
		}
	default:
		return fmt.Errorf("token: role %q: want worker or sender", s.Role)
	}
	if err := validateName(s.Name); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	for _, p := range slices.Concat(s.Queues, s.Hosts) {
		if p == "" || len(p) > 511 || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("token: pattern %q is empty, too long or has control characters", p)
		}
	}
	return nil
}

// TokenRecord is one token as tokens.json keeps it: the SHA-256 of the
// token, never the token itself.
type TokenRecord struct {
	Hash string `json:"sha256"`
	TokenSpec
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
	// Serial is the serial of the certificate issued with the token.
	Serial string `json:"serial,omitempty"`
}

type tokensDoc struct {
	Tokens []TokenRecord `json:"tokens"`
}

// Tokens is the one-time enrollment token list of a CA directory. Writers
// in different processes are serialised with a lock file, so the certs
// command can add tokens while the bridge uses them.
type Tokens struct {
	path string
	lock string
	now  func() time.Time // nil means time.Now
}

// Tokens returns the token list of the CA's directory.
func (ca *CA) Tokens() *Tokens { return OpenTokens(ca.dir) }

// OpenTokens returns the token list of the CA directory dir. The file is
// read on every call, so nothing is cached between processes.
func OpenTokens(dir string) *Tokens {
	return &Tokens{path: filepath.Join(dir, TokensFile), lock: filepath.Join(dir, tokensLockFile)}
}

func (t *Tokens) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// Create makes a new token for spec, valid for ttl, and records its hash.
// The token is returned once; it cannot be recovered from the file.
func (t *Tokens) Create(spec TokenSpec, ttl time.Duration) (string, TokenRecord, error) {
	if err := spec.Validate(); err != nil {
		return "", TokenRecord{}, err
	}
	if err := validateTTL(ttl); err != nil {
		return "", TokenRecord{}, err
	}
	var secret [tokenBytes]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", TokenRecord{}, fmt.Errorf("token: %w", err)
	}
	token := tokenPrefix + encodeSecret(secret[:])
	now := t.clock().UTC()
	rec := TokenRecord{
		Hash:      hashSecret(secret[:]),
		TokenSpec: spec,
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
	}
	err := t.update(func(doc *tokensDoc) error {
		doc.Tokens = append(doc.Tokens, rec)
		return nil
	})
	if err != nil {
		return "", TokenRecord{}, err
	}
	return token, rec, nil
}

func validateTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > maxTokenTTL {
		return fmt.Errorf("token: ttl %v must be positive and at most %v", ttl, maxTokenTTL)
	}
	return nil
}

// CreateToken is Tokens.Create for the certs command: it also refuses the
// reserved name and a name that a certificate or token of another role
// has (ErrNameReserved, ErrNameTaken), and an identity revoked by name
// unless reenroll is set, which re-enrolls the identity.
func (ca *CA) CreateToken(spec TokenSpec, ttl time.Duration, reenroll bool) (string, TokenRecord, error) {
	if err := spec.Validate(); err != nil {
		return "", TokenRecord{}, err
	}
	if err := validateTTL(ttl); err != nil {
		return "", TokenRecord{}, err
	}
	// The CA lock is released before Tokens.Create takes the tokens lock:
	// enrollment takes them in the other order.
	err := func() error {
		unlock, err := ca.lock()
		if err != nil {
			return err
		}
		defer unlock()
		if err := ca.checkNewName(spec.Role, spec.Name); err != nil {
			return fmt.Errorf("token: %w", err)
		}
		rv, err := ca.Revocations()
		if err != nil {
			return err
		}
		ir, ok := rv.Identity(spec.Role, spec.Name)
		if !ok || !ir.Disabled() {
			return nil
		}
		if !reenroll {
			return fmt.Errorf("token: %w: %s %q was revoked at %s; create the token with --reenroll to allow it again",
				ErrIdentityRevoked, spec.Role, spec.Name, ir.RevokedAt.UTC().Format(time.RFC3339))
		}
		rv.reenroll(spec.Role, spec.Name)
		return rv.Save()
	}()
	if err != nil {
		return "", TokenRecord{}, err
	}
	return ca.Tokens().Create(spec, ttl)
}

// Consume checks token and marks it used, all under the lock, so a token
// can be used exactly once even by concurrent callers. A token whose
// identity was revoked by name after it was created (or is revoked now) is
// refused with ErrTokenRevoked. issue is called with the token's record
// while the lock is held; only if it succeeds is the token marked used,
// together with the serial issue returns. A failed issue leaves the token
// usable.
func (t *Tokens) Consume(token string, issue func(TokenRecord) (serial string, err error)) (TokenSpec, error) {
	secret, err := ParseToken(token)
	if err != nil {
		return TokenSpec{}, err
	}
	h := hashSecret(secret[:])
	var spec TokenSpec
	err = t.update(func(doc *tokensDoc) error {
		i := slices.IndexFunc(doc.Tokens, func(r TokenRecord) bool { return r.Hash == h })
		if i < 0 {
			return ErrTokenUnknown
		}
		rec := &doc.Tokens[i]
		now := t.clock()
		switch {
		case rec.UsedAt != nil:
			return fmt.Errorf("%w (used %s)", ErrTokenUsed, rec.UsedAt.UTC().Format(time.RFC3339))
		case !now.Before(rec.ExpiresAt):
			return fmt.Errorf("%w (expired %s)", ErrTokenExpired, rec.ExpiresAt.UTC().Format(time.RFC3339))
		}
		rv, err := LoadRevocations(filepath.Join(filepath.Dir(t.path), RevocationsFile))
		if err != nil {
			return err
		}
		if ir, ok := rv.Identity(rec.Role, rec.Name); ok && (ir.Disabled() || ir.refuses(rec.CreatedAt)) {
			return fmt.Errorf("%w (%s %q revoked %s, token created %s)", ErrTokenRevoked, rec.Role, rec.Name,
				ir.RevokedAt.UTC().Format(time.RFC3339), rec.CreatedAt.UTC().Format(time.RFC3339))
		}
		serial, err := issue(*rec)
		if err != nil {
			return err
		}
		used := now.UTC()
		rec.UsedAt = &used
		rec.Serial = serial
		spec = rec.TokenSpec
		return nil
	})
	if err != nil {
		return TokenSpec{}, err
	}
	return spec, nil
}

// List returns the token records, oldest first.
func (t *Tokens) List() ([]TokenRecord, error) {
	doc, err := t.read()
	if err != nil {
		return nil, err
	}
	return doc.Tokens, nil
}

// ParseToken checks the form of an enrollment token and returns its
// secret. It accepts exactly what Create produces.
func ParseToken(token string) ([tokenBytes]byte, error) {
	var secret [tokenBytes]byte
	b64, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return secret, fmt.Errorf("%w: malformed token: want prefix %q", ErrTokenInvalid, tokenPrefix)
	}
	if len(b64) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return secret, fmt.Errorf("%w: malformed token: wrong length", ErrTokenInvalid)
	}
	n, err := base64.RawURLEncoding.Strict().Decode(secret[:], []byte(b64))
	if err != nil || n != tokenBytes {
		return secret, fmt.Errorf("%w: malformed token: not base64url", ErrTokenInvalid)
	}
	return secret, nil
}

func hashSecret(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:])
}

// update runs fn on the document under the lock file and writes the result
// atomically. Used and expired records older than usedTokenMemory are
// pruned on the way.
func (t *Tokens) update(fn func(*tokensDoc) error) error {
	unlock, err := lockFile(t.lock)
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	defer unlock()
	doc, err := t.read()
	if err != nil {
		return err
	}
	if err := fn(&doc); err != nil {
		return err
	}
	cutoff := t.clock().Add(-usedTokenMemory)
	doc.Tokens = slices.DeleteFunc(doc.Tokens, func(r TokenRecord) bool {
		return r.ExpiresAt.Before(cutoff)
	})
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	// 0600: the hashes are not secret, but the list tells who may enroll.
	if err := WriteFileAtomic(t.path, append(data, '\n'), KeyFileMode); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	return nil
}

func (t *Tokens) read() (tokensDoc, error) {
	data, err := os.ReadFile(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		return tokensDoc{}, nil
	}
	if err != nil {
		return tokensDoc{}, fmt.Errorf("tokens: %w", err)
	}
	doc, err := parseTokens(data)
	if err != nil {
		return tokensDoc{}, fmt.Errorf("tokens %s: %w", t.path, err)
	}
	return doc, nil
}

// parseTokens decodes tokens.json strictly.
func parseTokens(data []byte) (tokensDoc, error) {
	var doc tokensDoc
	if len(bytes.TrimSpace(data)) == 0 {
		return doc, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return doc, fmt.Errorf("parse: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return doc, errors.New("parse: trailing data after JSON document")
	}
	for i, r := range doc.Tokens {
		if b, err := hex.DecodeString(r.Hash); err != nil || len(b) != sha256.Size {
			return doc, fmt.Errorf("entry %d: sha256 %q is not 64 hex digits", i+1, r.Hash)
		}
		if err := r.TokenSpec.Validate(); err != nil {
			return doc, fmt.Errorf("entry %d: %w", i+1, err)
		}
	}
	return doc, nil
}

// lockFile takes an exclusive flock on path (created 0600) and returns the
// function that releases it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, KeyFileMode)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func encodeSecret(secret []byte) string { return base64.RawURLEncoding.EncodeToString(secret) }
