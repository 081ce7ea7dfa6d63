package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultLeafLifetime is the validity of issued certificates when the caller
// passes a lifetime of zero. Ninety days keeps a stolen key useful only for
// a while, yet leaves weeks of slack to renew a certificate of a worker that
// was offline.
const DefaultLeafLifetime = 90 * 24 * time.Hour

// clockSkew is how far NotBefore is set into the past. Remote workers run on
// machines whose clocks we do not control; without the margin, a worker whose
// clock is a little behind the CA's would reject a certificate it has just
// received as "not yet valid".
const clockSkew = 5 * time.Minute

// leafSpec is what goes into a leaf certificate besides the validity period.
type leafSpec struct {
	role  Role
	name  string
	dns   []string
	ips   []net.IP
	pub   crypto.PublicKey
	usage x509.ExtKeyUsage
}

// IssueServer issues a certificate and a new ECDSA P-256 key for the bridge.
// names lists the DNS names and IP addresses workers will dial; each entry
// that parses as an IP becomes an IP SAN, every other one a DNS SAN. The
// identity is gearbridge://bridge/<first DNS name>, or
// gearbridge://bridge/bridge if names holds only IPs.
//
// certPEM holds the leaf followed by the CA certificate, so that the bridge
// presents its CA during the handshake: a peer enrolling for the first time
// has only the CA fingerprint and needs the CA certificate to check it
// against (see PinnedClientTLSConfig).
//
// A lifetime of zero means DefaultLeafLifetime.
func (ca *CA) IssueServer(names []string, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	dns, ips, err := splitServerNames(names)
	if err != nil {
		return nil, nil, fmt.Errorf("issue bridge certificate: %w", err)
	}
	name := string(RoleBridge)
	if len(dns) > 0 {
		name = dns[0]
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue bridge certificate: generate key: %w", err)
	}
	keyPEM, err = marshalKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue bridge certificate: %w", err)
	}
	der, err := ca.issue(leafSpec{
		role: RoleBridge, name: name, dns: dns, ips: ips,
		pub: key.Public(), usage: x509.ExtKeyUsageServerAuth,
	}, lifetime, issueAuth{})
	if err != nil {
		return nil, nil, fmt.Errorf("issue bridge certificate for %q: %w", name, err)
	}
	return ca.serverCertPEM(der), keyPEM, nil
}

// serverCertPEM is a bridge certificate followed by the CA certificate.
func (ca *CA) serverCertPEM(der []byte) []byte {
	return append(encodePEM(pemCertificate, der), ca.certPEM...)
}

// IssueClient issues a client certificate and a new ECDSA P-256 key for name
// in role, which must be worker, sender or admin. Prefer SignCSR, which lets
// the key be generated where it is used; IssueClient is for setups where the
// operator hands out both. A lifetime of zero means DefaultLeafLifetime.
func (ca *CA) IssueClient(role Role, name string, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	if !role.isClient() {
		return nil, nil, fmt.Errorf("issue client certificate: role %q cannot be a client", role)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate: generate key: %w", err)
	}
	der, err := ca.issue(leafSpec{
		role: role, name: name,
		pub: key.Public(), usage: x509.ExtKeyUsageClientAuth,
	}, lifetime, issueAuth{})
	if err != nil {
		return nil, nil, fmt.Errorf("issue %s certificate for %q: %w", role, name, err)
	}
	keyPEM, err = marshalKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %s certificate: %w", role, err)
	}
	return encodePEM(pemCertificate, der), keyPEM, nil
}

// SignCSR issues a client certificate for the public key in a PEM
// "CERTIFICATE REQUEST". It checks the request's self-signature, which
// proves the requester holds the private key, and accepts only ECDSA P-256
// and Ed25519 keys. Everything else in the request (subject, SANs,
// extensions) is ignored: the identity is role and name as the caller, who
// has authenticated the requester, passes them. A lifetime of zero means
// DefaultLeafLifetime. It refuses an identity revoked by name
// (ErrIdentityRevoked).
func (ca *CA) SignCSR(csrPEM []byte, role Role, name string, lifetime time.Duration) (certPEM []byte, err error) {
	return ca.signCSR(csrPEM, role, name, lifetime, issueAuth{})
}

// SignEnrollCSR is SignCSR for an enrollment with token: the identity is
// the token's, and it is refused if the identity was revoked by name after
// the token was created, even if it was re-enrolled since.
func (ca *CA) SignEnrollCSR(csrPEM []byte, token TokenRecord, lifetime time.Duration) (certPEM []byte, err error) {
	if token.CreatedAt.IsZero() {
		return nil, errors.New("sign CSR: token has no creation time")
	}
	return ca.signCSR(csrPEM, token.Role, token.Name, lifetime, issueAuth{since: token.CreatedAt})
}

// RenewCSR is SignCSR for a peer renewing with its current certificate:
// the identity is current's. Under the CA's lock it reads the revocation
// list from disk and refuses (ErrRevoked) if current is revoked, by serial
// or by identity, so a renewal racing a revocation either completes before
// the revocation, which then covers the new certificate, or is refused.
func (ca *CA) RenewCSR(csrPEM []byte, current *x509.Certificate, lifetime time.Duration) (certPEM []byte, err error) {
	if current == nil {
		return nil, errors.New("renew: no current certificate")
	}
	if err := current.CheckSignatureFrom(ca.cert); err != nil {
		return nil, fmt.Errorf("renew: current certificate was not issued by this CA: %w", err)
	}
	role, name, err := IdentityOf(current)
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	return ca.signCSR(csrPEM, role, name, lifetime, issueAuth{since: current.NotBefore, renewing: current})
}

func (ca *CA) signCSR(csrPEM []byte, role Role, name string, lifetime time.Duration, auth issueAuth) ([]byte, error) {
	if !role.isClient() {
		return nil, fmt.Errorf("sign CSR: role %q cannot be a client", role)
	}
	csr, err := parseCSRPEM(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("sign CSR for %s %q: %w", role, name, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign CSR for %s %q: bad request signature: %w", role, name, err)
	}
	if err := checkLeafKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("sign CSR for %s %q: %w", role, name, err)
	}
	der, err := ca.issue(leafSpec{
		role: role, name: name,
		pub: csr.PublicKey, usage: x509.ExtKeyUsageClientAuth,
	}, lifetime, auth)
	if err != nil {
		return nil, fmt.Errorf("sign CSR for %s %q: %w", role, name, err)
	}
	return encodePEM(pemCertificate, der), nil
}

// GenerateKeyAndCSR creates an ECDSA P-256 key and a certificate request for
// it naming gearbridge://<role>/<name>. The request's identity is only a
// hint for the operator; SignCSR takes the identity from its caller.
func GenerateKeyAndCSR(role Role, name string) (keyPEM, csrPEM []byte, err error) {
	if !role.isClient() {
		return nil, nil, fmt.Errorf("generate CSR: role %q cannot be a client", role)
	}
	uri, err := IdentityURI(role, name)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CSR: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CSR: generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name},
		URIs:    []*url.URL{uri},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CSR for %s %q: %w", role, name, err)
	}
	keyPEM, err = marshalKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CSR: %w", err)
	}
	return keyPEM, encodePEM(pemCSR, der), nil
}

// issueAuth says on what authority a certificate is issued.
type issueAuth struct {
	// since is when the request was authorised: when the token an
	// enrollment presents was created, or the NotBefore of the certificate
	// a renewal presents. Zero is the operator, now.
	since time.Time
	// renewing is the certificate a renewal presents; it must not be
	// revoked.
	renewing *x509.Certificate
	// reenroll lets the operator issue for an identity revoked by name,
	// which re-enrolls it.
	reenroll bool
	// write stores the new certificate (and its key) under the CA lock,
	// before the certificate is recorded in issued.json.
	write func(der []byte) error
}

// issue signs a leaf certificate and returns its DER encoding. It holds the
// CA lock while it checks the revocation list, signs and records, so that
// a revocation is either before it (and refuses it) or after it (and
// covers the new certificate).
func (ca *CA) issue(spec leafSpec, lifetime time.Duration, auth issueAuth) ([]byte, error) {
	unlock, err := ca.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return ca.issueLocked(spec, lifetime, auth)
}

// issueLocked is issue for a caller that holds the CA lock.
func (ca *CA) issueLocked(spec leafSpec, lifetime time.Duration, auth issueAuth) ([]byte, error) {
	if lifetime < 0 {
		return nil, fmt.Errorf("lifetime %v is negative", lifetime)
	}
	if lifetime == 0 {
		lifetime = DefaultLeafLifetime
	}
	uri, err := IdentityURI(spec.role, spec.name)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	rv, err := ca.Revocations()
	if err != nil {
		return nil, err
	}
	if auth.renewing != nil {
		if err := rv.VerifyPeer(auth.renewing); err != nil {
			return nil, err
		}
	}
	now := ca.clock()
	// x509 keeps whole seconds; compare what the certificate will say.
	notBefore := now.Add(-clockSkew).Truncate(time.Second)
	ir, revoked := rv.Identity(spec.role, spec.name)
	if revoked {
		when := ir.RevokedAt.UTC().Format(time.RFC3339)
		if ir.Disabled() && !auth.reenroll {
			return nil, fmt.Errorf("%w: %s %q was revoked at %s; issue or create a token for it with --reenroll to allow it again",
				ErrIdentityRevoked, spec.role, spec.name, when)
		}
		if !auth.since.IsZero() && ir.refuses(auth.since) {
			return nil, fmt.Errorf("%w: %s %q was revoked at %s, after this request was authorised (%s)",
				ErrIdentityRevoked, spec.role, spec.name, when, auth.since.UTC().Format(time.RFC3339))
		}
		// A new certificate must not fall under the cut-off, which its
		// backdated NotBefore could.
		if ir.refuses(notBefore) {
			notBefore = ir.RevokedAt.Truncate(time.Second).Add(time.Second)
		}
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.cert.NotAfter) {
		return nil, fmt.Errorf("certificate would be valid until %s, after the CA certificate expires (%s)",
			notAfter.UTC().Format(time.RFC3339), ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,

		// ECDSA and Ed25519 keys only sign; KeyEncipherment is for RSA
		// key exchange (as in generate_cert.go).
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{spec.usage},
		BasicConstraintsValid: true,

		URIs:        []*url.URL{uri},
		DNSNames:    spec.dns,
		IPAddresses: spec.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, spec.pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new certificate: %w", err)
	}
	if auth.write != nil {
		if err := auth.write(der); err != nil {
			return nil, err
		}
		if ca.afterWrite != nil {
			ca.afterWrite()
		}
	}
	if revoked && auth.reenroll && rv.reenroll(spec.role, spec.name) {
		if err := rv.Save(); err != nil {
			return nil, fmt.Errorf("re-enroll %s %q: %w", spec.role, spec.name, err)
		}
	}
	if err := ca.recordLocked(cert, spec.role, spec.name); err != nil {
		return nil, err
	}
	return der, nil
}

// checkLeafKey accepts the key types gearbridge peers may use.
func checkLeafKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("unsupported key type: ECDSA on %s, want P-256", k.Curve.Params().Name)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	default:
		return fmt.Errorf("unsupported key type %T: want ECDSA P-256 or Ed25519", pub)
	}
}

func parseCSRPEM(data []byte) (*x509.CertificateRequest, error) {
	b, rest := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM certificate request found")
	}
	if b.Type != pemCSR {
		return nil, fmt.Errorf("unexpected PEM block %q, want %q", b.Type, pemCSR)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	return csr, nil
}

// splitServerNames sorts names into DNS names and IP addresses, in order and
// without duplicates.
func splitServerNames(names []string) (dns []string, ips []net.IP, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("no DNS names or IP addresses given")
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if err := validateDNSName(n); err != nil {
			return nil, nil, err
		}
		n = strings.ToLower(n)
		if !slices.Contains(dns, n) {
			dns = append(dns, n)
		}
	}
	if len(dns) > 0 {
		if err := validateName(dns[0]); err != nil {
			return nil, nil, fmt.Errorf("first DNS name becomes the bridge's name: %w", err)
		}
	}
	return dns, ips, nil
}

// validateDNSName accepts host names as in RFC 1123: dot-separated labels of
// letters, digits and hyphens, no wildcards.
func validateDNSName(name string) error {
	if name == "" {
		return errors.New("empty DNS name")
	}
	if len(name) > 253 {
		return fmt.Errorf("DNS name %.20q... is longer than 253 bytes", name)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is neither an IP address nor a valid DNS name", name)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%q is neither an IP address nor a valid DNS name", name)
			}
		}
	}
	return nil
}
