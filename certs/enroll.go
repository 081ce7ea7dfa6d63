package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// NewKeyAndCSR creates an ECDSA P-256 key and a certificate request for it
// that names no identity: an enrolling peer does not choose its identity,
// the token it presents does.
func NewKeyAndCSR() (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CSR: generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CSR: %w", err)
	}
	keyPEM, err = marshalKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CSR: %w", err)
	}
	return keyPEM, encodePEM(pemCSR, der), nil
}

// CheckCSR parses a PEM certificate request and checks its self-signature
// and key type, as SignCSR does, without signing anything. The bridge calls
// it before it uses up an enrollment token.
func CheckCSR(csrPEM []byte) error {
	csr, err := parseCSRPEM(csrPEM)
	if err != nil {
		return err
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("bad request signature: %w", err)
	}
	return checkLeafKey(csr.PublicKey)
}

// IssuedPair is what an enrolling or renewing peer received, checked.
type IssuedPair struct {
	Cert *x509.Certificate
	CA   *x509.Certificate
	Role Role
	Name string
}

// VerifyIssued checks what the bridge returned for a CSR: caPEM holds
// exactly one CA certificate, with the given fingerprint if it is not empty;
// certPEM holds a client certificate that this CA signed, that is valid
// now, carries a client role, and whose public key is the one in keyPEM.
func VerifyIssued(certPEM, caPEM, keyPEM []byte, fingerprint string) (IssuedPair, error) {
	cas, err := parseCertsPEM(caPEM)
	if err != nil {
		return IssuedPair{}, fmt.Errorf("CA certificate: %w", err)
	}
	if len(cas) != 1 || !cas[0].IsCA || !cas[0].BasicConstraintsValid {
		return IssuedPair{}, errors.New("CA certificate: want exactly one CA certificate")
	}
	ca := cas[0]
	if fingerprint != "" {
		want, err := parseFingerprint(fingerprint)
		if err != nil {
			return IssuedPair{}, err
		}
		if FingerprintOf(ca) != fingerprintPrefix+fmt.Sprintf("%x", want) {
			return IssuedPair{}, fmt.Errorf("CA certificate: fingerprint %s, want %s", FingerprintOf(ca), fingerprint)
		}
	}
	leaves, err := parseCertsPEM(certPEM)
	if err != nil {
		return IssuedPair{}, fmt.Errorf("certificate: %w", err)
	}
	if len(leaves) != 1 {
		return IssuedPair{}, fmt.Errorf("certificate: %d certificates, want 1", len(leaves))
	}
	leaf := leaves[0]
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return IssuedPair{}, fmt.Errorf("certificate: %w", err)
	}
	role, name, err := IdentityOf(leaf)
	if err != nil {
		return IssuedPair{}, err
	}
	if !role.isClient() {
		return IssuedPair{}, fmt.Errorf("certificate: role %q is not a client role", role)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return IssuedPair{}, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return IssuedPair{}, errors.New("certificate: not issued for our key")
	}
	return IssuedPair{Cert: leaf, CA: ca, Role: role, Name: name}, nil
}

// CAPEMOf encodes a certificate as PEM.
func CAPEMOf(cert *x509.Certificate) []byte { return encodePEM(pemCertificate, cert.Raw) }

// NeedsRenewal reports whether cert has less than a third of its lifetime
// left at now: renewing then leaves a third of the lifetime (a month of a
// 90-day certificate) to retry through outages. The lifetime counts from
// the issue time, not from NotBefore, which this CA backdates by a few
// minutes for clock skew.
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	issued := cert.NotBefore.Add(clockSkew)
	if !issued.Before(cert.NotAfter) {
		issued = cert.NotBefore // not one of ours
	}
	life := cert.NotAfter.Sub(issued)
	return cert.NotAfter.Sub(now) < life/3
}

// OptionalClientServerConfig is ServerConfig for a bridge that also serves
// enrollment: a client certificate is requested but not required, and TLS
// does not verify it. The caller must verify the client on every request
// with VerifyClient and refuse requests without a verified identity, except
// enrollment. Doing the check per request rather than in the handshake lets
// the bridge answer a bad certificate with a gRPC status and a reason
// (expired, revoked, unknown CA) instead of a bare TLS alert.
func (r *Reloader) OptionalClientServerConfig() *tls.Config {
	forHandshake := func() *tls.Config {
		m := r.current.Load()
		return &tls.Config{
			MinVersion: tls.VersionTLS13,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return m.cert, nil
			},
			ClientAuth:             tls.RequestClientCert,
			SessionTicketsDisabled: true,
		}
	}
	cfg := forHandshake()
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return r.current.Load().cert, nil
	}
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return forHandshake(), nil
	}
	return cfg
}

// ErrNoClientCert is returned by VerifyClient for a connection without a
// client certificate.
var ErrNoClientCert = errors.New("no client certificate")

// VerifyClient verifies the client certificate of cs as ServerConfig's
// handshake would: against the current CA pool, valid at now, for client
// authentication, with a client role, and accepted by verifyPeer if it is
// not nil. It returns the verified leaf.
func (r *Reloader) VerifyClient(cs tls.ConnectionState, now time.Time, verifyPeer func(*x509.Certificate) error) (*x509.Certificate, Role, string, error) {
	if len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		// TLS has verified it already (ServerConfig).
		leaf := cs.VerifiedChains[0][0]
		role, name, err := IdentityOf(leaf)
		if err != nil {
			return nil, "", "", err
		}
		if verifyPeer != nil {
			if err := verifyPeer(leaf); err != nil {
				return nil, "", "", fmt.Errorf("%s %q: %w", role, name, err)
			}
		}
		return leaf, role, name, nil
	}
	if len(cs.PeerCertificates) == 0 {
		return nil, "", "", ErrNoClientCert
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         r.current.Load().roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, "", "", fmt.Errorf("client certificate %q (serial %s): %w", leaf.Subject.CommonName, serialKey(leaf.SerialNumber), err)
	}
	role, name, err := IdentityOf(leaf)
	if err != nil {
		return nil, "", "", err
	}
	if !role.isClient() {
		return nil, "", "", fmt.Errorf("client %q: role %q may not connect as a client", name, role)
	}
	if verifyPeer != nil {
		if err := verifyPeer(leaf); err != nil {
			return nil, "", "", fmt.Errorf("client %s %q: %w", role, name, err)
		}
	}
	return leaf, role, name, nil
}

// ParseCertificatePEM parses a PEM file holding exactly one certificate.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	cs, err := parseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	if len(cs) != 1 {
		return nil, fmt.Errorf("%d certificates, want 1", len(cs))
	}
	return cs[0], nil
}

// Files returns the certificate, key and CA files the Reloader reads, for
// callers that watch them for changes.
func (r *Reloader) Files() []string { return []string{r.certFile, r.keyFile, r.caFile} }
