package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// CertificateFingerprintPin returns a tls.Config.VerifyConnection function
// for a client that does not have the CA certificate yet but knows its
// fingerprint (CA.Fingerprint, "sha256:<hex>"), as a worker does on first
// enrollment: trust on first use, with the operator carrying the fingerprint
// instead of the whole certificate.
//
// Go's verification needs a root pool, which the client does not have, so
// the config must set InsecureSkipVerify and let this function do the whole
// verification (PinnedClientTLSConfig builds such a config). For each
// handshake it
//
//  1. finds, among the certificates the server sent after its leaf, the one
//     whose SHA-256 matches the fingerprint, and requires it to be a CA;
//  2. verifies the leaf against that CA alone, exactly as Go would with a
//     root pool: signature, validity period, serverName (DNS name or IP)
//     and ExtKeyUsageServerAuth;
//  3. requires the leaf to carry the bridge identity.
//
// A server that merely includes the right CA certificate in its chain, next
// to a leaf the CA did not sign, is refused in step 2. The bridge sends its
// CA because IssueServer puts it into the certificate file.
//
// After the handshake, PinnedCA returns the verified CA certificate for the
// client to save as its CA file.
func CertificateFingerprintPin(fingerprint, serverName string) (func(tls.ConnectionState) error, error) {
	want, err := parseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	if serverName == "" {
		// Without a name the leaf check would accept any certificate the
		// CA has issued for a server.
		return nil, errors.New("pinned CA: server name required")
	}
	return func(cs tls.ConnectionState) error {
		ca, err := findPinned(cs.PeerCertificates, want)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(x509.VerifyOptions{
			Roots:     roots,
			DNSName:   serverName,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			return fmt.Errorf("pinned CA: verify bridge certificate: %w", err)
		}
		role, name, err := IdentityOf(leaf)
		if err != nil {
			return fmt.Errorf("pinned CA: %w", err)
		}
		if role != RoleBridge {
			return fmt.Errorf("pinned CA: server is %s %q, not the bridge", role, name)
		}
		return nil
	}, nil
}

// PinnedClientTLSConfig returns a TLS 1.3 client config that trusts only the
// CA with the given fingerprint, for dialling the bridge at serverName
// before the client has a CA file or a certificate of its own. See
// CertificateFingerprintPin for what it verifies.
func PinnedClientTLSConfig(fingerprint, serverName string) (*tls.Config, error) {
	verify, err := CertificateFingerprintPin(fingerprint, serverName)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		// Not "insecure": Go's verification is replaced, because it needs a
		// root pool the client does not have yet, by VerifyConnection,
		// which verifies the chain against the pinned CA.
		InsecureSkipVerify: true,
		VerifyConnection:   verify,
	}, nil
}

// PinnedCA returns the certificate with the given fingerprint from the
// server's chain in cs, for a client to save after a handshake verified with
// CertificateFingerprintPin.
func PinnedCA(cs tls.ConnectionState, fingerprint string) (*x509.Certificate, error) {
	want, err := parseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	return findPinned(cs.PeerCertificates, want)
}

// findPinned returns the CA certificate after the leaf in chain whose
// SHA-256 is want.
func findPinned(chain []*x509.Certificate, want [sha256.Size]byte) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, errors.New("pinned CA: server sent no certificate")
	}
	for _, c := range chain[1:] {
		if sum := sha256.Sum256(c.Raw); bytes.Equal(sum[:], want[:]) {
			if !c.BasicConstraintsValid || !c.IsCA {
				return nil, fmt.Errorf("pinned CA: certificate %q matches the fingerprint but is not a CA", c.Subject.CommonName)
			}
			return c, nil
		}
	}
	return nil, fmt.Errorf("pinned CA: no certificate in the server's chain matches fingerprint sha256:%x", want)
}
