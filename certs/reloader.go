package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
)

// Reloader holds a certificate, its key and the CA pool to trust, read from
// files, and swaps them atomically on Reload. The tls.Configs it builds look
// the current material up on every handshake, so renewing a certificate on
// disk and calling Reload takes effect for new connections without a restart;
// established connections are not touched.
//
// Reloader is safe for concurrent use.
type Reloader struct {
	certFile, keyFile, caFile string
	current                   atomic.Pointer[tlsMaterial]
}

// tlsMaterial is one consistent snapshot of the files.
type tlsMaterial struct {
	cert  *tls.Certificate // Leaf is set
	roots *x509.CertPool   // only the gearbridge CA, never system roots
}

// NewReloader reads certFile (PEM, leaf first, optionally followed by its
// chain), keyFile (PEM PKCS #8) and caFile (PEM CA certificates to trust).
func NewReloader(certFile, keyFile, caFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, caFile: caFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again. If any of them is missing or invalid it
// returns an error and keeps serving the previous material, so a botched
// renewal does not take a running bridge down.
func (r *Reloader) Reload() error {
	m, err := loadTLSMaterial(r.certFile, r.keyFile, r.caFile)
	if err != nil {
		return fmt.Errorf("reload TLS material: %w", err)
	}
	r.current.Store(m)
	return nil
}

// Leaf returns the certificate currently in use, for example to report when
// it expires.
func (r *Reloader) Leaf() *x509.Certificate { return r.current.Load().cert.Leaf }

func loadTLSMaterial(certFile, keyFile, caFile string) (*tlsMaterial, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load key pair %s, %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil { // set by LoadX509KeyPair since Go 1.23
		return nil, fmt.Errorf("load key pair %s: no parsed leaf", certFile)
	}
	roots, err := loadCAPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tlsMaterial{cert: &cert, roots: roots}, nil
}

// loadCAPool returns a pool holding only the CA certificates in file.
func loadCAPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load CA file: %w", err)
	}
	cas, err := parseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("load CA file %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("load CA file %s: %q is not a CA certificate", file, c.Subject.CommonName)
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// ServerConfig returns the bridge's tls.Config: TLS 1.3 only, and a client
// certificate that verifies against the CA pool is required. Its
// GetConfigForClient builds each handshake's config from the current
// material, so Reload also replaces the trusted CA pool.
//
// After the chain is verified, the connection is refused unless the client
// certificate carries a valid identity with a client role, and then unless
// verifyPeer, if not nil, accepts the leaf; pass Revocations.VerifyPeer to
// refuse revoked certificates.
//
// Because the per-handshake config is built here, ALPN protocols set on the
// returned config by the caller are not seen by it. gRPC's credentials.NewTLS
// handles this by also setting them on the config GetConfigForClient returns.
func (r *Reloader) ServerConfig(verifyPeer func(leaf *x509.Certificate) error) *tls.Config {
	verify := func(cs tls.ConnectionState) error {
		role, name, err := PeerIdentity(cs)
		if err != nil {
			return fmt.Errorf("verify client: %w", err)
		}
		if !role.isClient() {
			return fmt.Errorf("verify client %q: role %q may not connect as a client", name, role)
		}
		if verifyPeer != nil {
			if err := verifyPeer(cs.VerifiedChains[0][0]); err != nil {
				return fmt.Errorf("verify client %s %q: %w", role, name, err)
			}
		}
		return nil
	}
	forHandshake := func() *tls.Config {
		m := r.current.Load()
		return &tls.Config{
			MinVersion: tls.VersionTLS13,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return m.cert, nil
			},
			ClientAuth:       tls.RequireAndVerifyClientCert,
			ClientCAs:        m.roots,
			VerifyConnection: verify,
			// A resumed session skips chain verification, so a client
			// could keep using a certificate from before a CA change.
			// gRPC connections are long-lived, so full handshakes cost
			// little.
			SessionTicketsDisabled: true,
		}
	}
	cfg := forHandshake()
	// The outer config is complete and safe on its own; GetConfigForClient
	// only makes sure every handshake sees the latest material.
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return r.current.Load().cert, nil
	}
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return forHandshake(), nil
	}
	return cfg
}

// ClientConfig returns a worker's, sender's or admin's tls.Config for
// dialling the bridge at serverName (a DNS name or IP in the bridge
// certificate; it may be empty if the transport fills it in from the dial
// target, as gRPC does). TLS 1.3 only; the bridge is verified against the CA
// pool and must carry the bridge role. The client certificate is looked up
// on every handshake, so Reload replaces it for new connections.
//
// The CA pool is read when ClientConfig is called: tls.Config has no
// per-handshake hook for RootCAs on the client side. After the CA itself
// changes, build a new config.
func (r *Reloader) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		RootCAs:    r.current.Load().roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.current.Load().cert, nil
		},
		VerifyConnection: verifyBridge,
	}
}

// verifyBridge refuses a server whose verified certificate is not the
// bridge's, such as a certificate from the same CA issued for another role.
func verifyBridge(cs tls.ConnectionState) error {
	role, name, err := PeerIdentity(cs)
	if err != nil {
		return fmt.Errorf("verify bridge: %w", err)
	}
	if role != RoleBridge {
		return fmt.Errorf("verify bridge: server is %s %q, not the bridge", role, name)
	}
	return nil
}

// ServerTLSConfig is NewReloader followed by ServerConfig(nil): the bridge's
// config from certFile, keyFile and caFile. Use NewReloader directly to
// reload the files or add a verifyPeer hook.
func ServerTLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	r, err := NewReloader(certFile, keyFile, caFile)
	if err != nil {
		return nil, fmt.Errorf("server TLS config: %w", err)
	}
	return r.ServerConfig(nil), nil
}

// ClientTLSConfig is NewReloader followed by ClientConfig(serverName). Use
// NewReloader directly to reload the client certificate after renewal.
func ClientTLSConfig(certFile, keyFile, caFile, serverName string) (*tls.Config, error) {
	r, err := NewReloader(certFile, keyFile, caFile)
	if err != nil {
		return nil, fmt.Errorf("client TLS config: %w", err)
	}
	return r.ClientConfig(serverName), nil
}
