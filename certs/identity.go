package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Role is what a certificate holder may do on the bridge.
type Role string

// The roles a gearbridge certificate can carry.
const (
	RoleWorker Role = "worker" // executes checks for the bridge
	RoleSender Role = "sender" // submits passive results
	RoleAdmin  Role = "admin"  // operator tools such as top and check
	RoleBridge Role = "bridge" // the bridge itself; the only server role
)

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	switch r {
	case RoleWorker, RoleSender, RoleAdmin, RoleBridge:
		return true
	}
	return false
}

// isClient reports whether r is a role that connects to the bridge.
func (r Role) isClient() bool {
	return r.Valid() && r != RoleBridge
}

const (
	identityScheme = "gearbridge"
	identityPrefix = identityScheme + "://"

	// maxNameLen is RFC 5280's upper bound for a common name (ub-common-name),
	// because the name is also written into the CN.
	maxNameLen = 64
)

// IdentityURI returns the URI SAN that identifies name in role:
// gearbridge://<role>/<name>.
func IdentityURI(role Role, name string) (*url.URL, error) {
	if !role.Valid() {
		return nil, fmt.Errorf("unknown role %q", role)
	}
	if err := validateName(name); err != nil {
		return nil, err
	}
	return &url.URL{Scheme: identityScheme, Host: string(role), Path: "/" + name}, nil
}

// ParseIdentityURI parses an identity URI of the form
// gearbridge://<role>/<name>. It accepts exactly the strings IdentityURI
// produces: lower-case scheme, a known role, and a name of 1 to 64 letters,
// digits, '.', '-' or '_' starting with a letter or digit. Anything else
// (ports, user info, further path segments, queries, fragments, escapes) is
// an error, so that two different strings never map to the same identity.
func ParseIdentityURI(s string) (Role, string, error) {
	rest, ok := strings.CutPrefix(s, identityPrefix)
	if !ok {
		return "", "", fmt.Errorf("identity URI %q: want prefix %q", s, identityPrefix)
	}
	role, name, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", fmt.Errorf("identity URI %q: missing /<name>", s)
	}
	if !Role(role).Valid() {
		return "", "", fmt.Errorf("identity URI %q: unknown role %q", s, role)
	}
	if err := validateName(name); err != nil {
		return "", "", fmt.Errorf("identity URI %q: %w", s, err)
	}
	return Role(role), name, nil
}

// IdentityOf returns the role and name a certificate was issued for, read
// from its single gearbridge URI SAN. It does not verify the certificate;
// call it on a certificate that TLS has already verified.
func IdentityOf(cert *x509.Certificate) (role Role, name string, err error) {
	if cert == nil {
		return "", "", errors.New("identity of certificate: no certificate")
	}
	switch len(cert.URIs) {
	case 0:
		return "", "", fmt.Errorf("identity of certificate %q: no URI SAN", cert.Subject.CommonName)
	case 1:
	default:
		return "", "", fmt.Errorf("identity of certificate %q: %d URI SANs, want exactly one", cert.Subject.CommonName, len(cert.URIs))
	}
	role, name, err = ParseIdentityURI(cert.URIs[0].String())
	if err != nil {
		return "", "", fmt.Errorf("identity of certificate %q: %w", cert.Subject.CommonName, err)
	}
	return role, name, nil
}

// PeerIdentity returns the identity of the verified peer certificate of a
// completed handshake, as the bridge sees its clients.
func PeerIdentity(cs tls.ConnectionState) (Role, string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", "", errors.New("peer identity: no verified peer certificate")
	}
	return IdentityOf(cs.VerifiedChains[0][0])
}

// validateName checks that name can be used as an identity name and a CN.
func validateName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("name is %d bytes long, at most %d allowed", len(name), maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '-' || c == '_'):
		default:
			return fmt.Errorf("name %q: byte %d (%q) not allowed; use letters, digits, '.', '-', '_', starting with a letter or digit", name, i, c)
		}
	}
	return nil
}
