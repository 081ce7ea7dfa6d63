package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names of the files in a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Defaults for CAOptions.
const (
	DefaultCACommonName = "gearbridge CA"

	// DefaultCALifetime is ten years. Replacing the CA means re-enrolling
	// every worker and sender, so it should outlive the hardware it runs on;
	// the short-lived leaf certificates, not the CA, limit the damage of a
	// leaked key.
	DefaultCALifetime = 10 * 365 * 24 * time.Hour
)

// CAOptions configures InitCA. The zero value gives a CA with the defaults.
type CAOptions struct {
	// CommonName is the CA certificate's subject CN. Default
	// DefaultCACommonName.
	CommonName string
	// Lifetime is how long the CA certificate is valid. Zero means
	// DefaultCALifetime.
	Lifetime time.Duration
}

// Validate reports whether o is usable. It does not fill in defaults.
func (o CAOptions) Validate() error {
	if o.Lifetime < 0 {
		return fmt.Errorf("CA lifetime %v is negative", o.Lifetime)
	}
	if len(o.CommonName) > maxNameLen {
		return fmt.Errorf("CA common name is %d bytes long, at most %d allowed", len(o.CommonName), maxNameLen)
	}
	if strings.ContainsFunc(o.CommonName, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("CA common name %q contains control characters", o.CommonName)
	}
	return nil
}

func (o CAOptions) withDefaults() CAOptions {
	if o.CommonName == "" {
		o.CommonName = DefaultCACommonName
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultCALifetime
	}
	return o
}

// CAExistsError is returned by InitCA when the directory already holds a CA
// file. It matches fs.ErrExist with errors.Is.
type CAExistsError struct {
	Path string // the file that is already there
}

func (e *CAExistsError) Error() string {
	return fmt.Sprintf("CA already exists: %s is present; refusing to overwrite it", e.Path)
}

// Is makes errors.Is(err, fs.ErrExist) true.
func (e *CAExistsError) Is(target error) bool { return target == fs.ErrExist }

// CA is a loaded certificate authority. Its methods are safe for concurrent
// use.
type CA struct {
	dir     string
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer

	// now is the clock used for validity periods; nil means time.Now.
	// Tests set it to mint certificates that have already expired.
	now func() time.Time
	// afterWrite, if set, runs after IssueFiles or RenewFiles wrote their
	// files and before the certificate is recorded (tests).
	afterWrite func()
}

// InitCA creates a new CA in dir (created 0700 if missing): an ECDSA P-256
// key in ca.key (0600), a self-signed certificate in ca.crt (0644) and an
// empty revocation list, revoked.json (0644). It refuses, with a
// *CAExistsError, to touch a directory that already holds ca.crt or ca.key.
func InitCA(dir string, opts CAOptions) (*CA, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("init CA in %s: %w", dir, err)
	}
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{certPath, keyPath} {
		_, err := os.Lstat(p)
		if err == nil {
			return nil, fmt.Errorf("init CA in %s: %w", dir, &CAExistsError{Path: p})
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("init CA in %s: %w", dir, err)
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("init CA: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: opts.CommonName},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(opts.Lifetime),

		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaves directly; it can never delegate to an
		// intermediate.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("init CA: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("init CA: parse new certificate: %w", err)
	}
	keyPEM, err := marshalKeyPEM(key)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	certPEM := encodePEM(pemCertificate, der)

	// The key goes first: a directory with a certificate but no key would
	// look like a usable CA to a reader.
	if err := writeFileNew(keyPath, keyPEM, KeyFileMode); err != nil {
		return nil, fmt.Errorf("init CA in %s: %w", dir, existsOr(err, keyPath))
	}
	if err := writeFileNew(certPath, certPEM, CertFileMode); err != nil {
		os.Remove(keyPath) // ours: written just above
		return nil, fmt.Errorf("init CA in %s: %w", dir, existsOr(err, certPath))
	}
	// An empty revocation list from the start, so that a bridge pointed at
	// it (--revocations) finds the file it will have to watch.
	if err := writeFileNew(filepath.Join(dir, RevocationsFile), []byte("{\n  \"revoked\": []\n}\n"), CertFileMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("init CA in %s: %w", dir, err)
	}
	return &CA{dir: dir, cert: cert, certPEM: certPEM, key: key}, nil
}

// existsOr turns an fs.ErrExist from a racing writer into a CAExistsError.
func existsOr(err error, path string) error {
	if errors.Is(err, fs.ErrExist) {
		return &CAExistsError{Path: path}
	}
	return err
}

// LoadCA loads the CA that InitCA created in dir and checks that the key
// belongs to the certificate and that the certificate is a CA.
func LoadCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	certs, err := parseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate %s: %w", certPath, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("load CA certificate %s: holds %d certificates, want 1", certPath, len(certs))
	}
	cert := certs[0]
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("load CA certificate %s: not a CA certificate", certPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA key %s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("load CA from %s: %s does not belong to %s", dir, CAKeyFile, CACertFile)
	}
	return &CA{dir: dir, cert: cert, certPEM: certPEM, key: key}, nil
}

// Dir returns the directory the CA was created in or loaded from.
func (ca *CA) Dir() string { return ca.dir }

// Certificate returns the CA certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate, PEM encoded, as peers need it in their
// CA file.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// Fingerprint returns "sha256:" followed by the lower-case hex SHA-256 of
// the CA certificate's DER encoding. Peers pin the CA by this value during
// enrollment; see PinnedClientTLSConfig.
func (ca *CA) Fingerprint() string { return FingerprintOf(ca.cert) }

// FingerprintOf returns the fingerprint of any certificate in the format of
// CA.Fingerprint.
func FingerprintOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return fingerprintPrefix + hex.EncodeToString(sum[:])
}

const fingerprintPrefix = "sha256:"

// parseFingerprint accepts "sha256:" and 64 hex digits of either case.
func parseFingerprint(fp string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h, ok := strings.CutPrefix(fp, fingerprintPrefix)
	if !ok {
		return sum, fmt.Errorf("fingerprint %q: want prefix %q", fp, fingerprintPrefix)
	}
	if hex.DecodedLen(len(h)) != sha256.Size {
		return sum, fmt.Errorf("fingerprint %q: want %d hex digits", fp, 2*sha256.Size)
	}
	if _, err := hex.Decode(sum[:], []byte(h)); err != nil {
		return sum, fmt.Errorf("fingerprint %q: %w", fp, err)
	}
	return sum, nil
}

// clock returns the current time for validity periods.
func (ca *CA) clock() time.Time {
	if ca.now != nil {
		return ca.now()
	}
	return time.Now()
}

// newSerial returns a random positive 128-bit serial number. Random serials
// need no counter shared between CA invocations, and make certificate
// contents unpredictable to the requester.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 { // RFC 5280 §4.1.2.2: serials are positive
			return n, nil
		}
	}
}
