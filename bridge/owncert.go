package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gearbridge/gearbridge/certs"
)

// servedTLS is the TLS material the bridge serves: a Reloader whose
// certificate passed verifyServedCert, and the server configuration built
// on it.
type servedTLS struct {
	r   *certs.Reloader
	cfg *tls.Config
}

// verifyServedCert checks that the certificate r holds may serve as the
// bridge: it carries the bridge role, is for server authentication, is
// valid at now and chains to r's CA file. Clients refuse any other bridge
// (they check the role and the chain), so serving one would lock every
// worker out at once; the bridge rather refuses to start, or keeps its
// previous certificate on a reload. Errors name the certificate file.
func verifyServedCert(r *certs.Reloader, now time.Time) error {
	files := r.Files()
	certFile, caFile := files[0], files[2]
	leaf := r.Leaf()
	role, name, err := certs.IdentityOf(leaf)
	if err != nil {
		return fmt.Errorf("bridge certificate %s: %w", certFile, err)
	}
	if role != certs.RoleBridge {
		return fmt.Errorf("bridge certificate %s: it is the certificate of %s %q (role %q), not one of the bridge role; issue one with gearbridge certs issue --role bridge", certFile, role, name, role)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return fmt.Errorf("bridge certificate %s: %q is not for server authentication (no serverAuth extended key usage)", certFile, name)
	}
	roots, err := certs.ReadCertificates(caFile)
	if err != nil {
		return fmt.Errorf("bridge certificate %s: CA file: %w", certFile, err)
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	// The certificate file may carry its chain after the leaf.
	inter := x509.NewCertPool()
	if chain, err := certs.ReadCertificates(certFile); err == nil && len(chain) > 0 && chain[0].Equal(leaf) {
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && now.Before(leaf.NotBefore):
		return fmt.Errorf("bridge certificate %s: %q is not valid before %s", certFile, name, leaf.NotBefore.UTC().Format(time.RFC3339))
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("bridge certificate %s: %q expired on %s", certFile, name, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("bridge certificate %s: %q does not chain to the CA in %s: %w", certFile, name, caFile, err)
}

// newServedTLS builds what the bridge serves from r; enroll is set for a
// bridge with a certs directory.
func newServedTLS(r *certs.Reloader, enroll bool) *servedTLS {
	if enroll {
		// Clients without certificates may connect to enroll; every other
		// call verifies the certificate itself (see identityFrom).
		return &servedTLS{r: r, cfg: r.OptionalClientServerConfig()}
	}
	return &servedTLS{r: r, cfg: r.ServerConfig(nil)}
}

// servedTLS returns the material to serve. Reload re-reads the files into
// Deps.TLS; the first look after that checks the new certificate with
// verifyServedCert and either takes it or, refusing it, keeps serving the
// previous one. It returns nil without Deps.TLS.
func (b *Bridge) servedTLS() *servedTLS {
	if b.tlsR == nil {
		return nil
	}
	leaf := b.tlsR.Leaf()
	if b.tlsSeen.Load() == leaf {
		return b.served.Load()
	}
	b.tlsMu.Lock()
	defer b.tlsMu.Unlock()
	if b.tlsSeen.Load() != leaf {
		b.adoptTLS()
		b.tlsSeen.Store(leaf)
	}
	return b.served.Load()
}

// loadServedTLS reads the TLS files of from (Deps.TLS) into a Reloader of
// the bridge's own and checks its certificate with verifyServedCert.
// Nothing reloads that Reloader afterwards, so exactly what was checked is
// served until the next successful adoptTLS.
func loadServedTLS(from *certs.Reloader, enroll bool) (*servedTLS, error) {
	files := from.Files()
	r, err := certs.NewReloader(files[0], files[1], files[2])
	if err != nil {
		return nil, err
	}
	if err := verifyServedCert(r, time.Now()); err != nil {
		return nil, err
	}
	return newServedTLS(r, enroll), nil
}

// adoptTLS serves the reloaded TLS files if their certificate may serve as
// the bridge, and otherwise logs why not and keeps the previous material.
func (b *Bridge) adoptTLS() {
	st, err := loadServedTLS(b.tlsR, b.cfg.CertsDir != "")
	if err != nil {
		b.m.tlsReloadsRefused.Inc()
		b.log.Error("refused the reloaded bridge certificate; keeping the previous one", "file", b.tlsR.Files()[0], "err", err)
		return
	}
	if old := b.served.Load(); old == nil || !old.r.Leaf().Equal(st.r.Leaf()) {
		leaf := st.r.Leaf()
		b.log.Info("serving the reloaded bridge certificate", "file", b.tlsR.Files()[0], "serial", certs.SerialOf(leaf), "not_after", leaf.NotAfter)
	}
	b.served.Store(st)
}

// watchServedTLS looks for reloaded TLS material once per watch interval,
// so that a refused certificate is logged when it is reloaded, not only at
// the next handshake.
func (b *Bridge) watchServedTLS(ctx context.Context) {
	if b.tlsR == nil {
		return
	}
	t := time.NewTicker(b.cfg.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.servedTLS()
		}
	}
}
