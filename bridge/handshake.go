package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
)

// handshakeCreds are the bridge's transport credentials: the TLS ones, with
// every failed server handshake counted by reason and logged (rate-limited)
// with the peer's address. gRPC itself only traces them.
type handshakeCreds struct {
	credentials.TransportCredentials
	b *Bridge
}

func (c handshakeCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	// A connection closed before any TLS record (a port probe, a load
	// balancer's health check) is no failed handshake.
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, credentials.ErrConnDispatched) {
		c.b.handshakeFailed(raw.RemoteAddr(), err)
	}
	return conn, info, err
}

func (c handshakeCreds) Clone() credentials.TransportCredentials {
	return handshakeCreds{TransportCredentials: c.TransportCredentials.Clone(), b: c.b}
}

// handshakeFailed counts and logs one failed handshake; the log line is
// limited per peer host and reason, so a client retrying with a bad
// certificate, or a scan, costs one line per interval.
func (b *Bridge) handshakeFailed(addr net.Addr, err error) {
	reason := handshakeFailureReason(err)
	b.m.handshakeFailures.WithLabelValues(reason).Inc()
	peer := ""
	if addr != nil {
		peer = addr.String()
	}
	b.rl.Warn(b.log, reason+" "+hostOf(peer), "TLS handshake failed", "peer", peer, "reason", reason, "err", err)
}

// handshakeFailureReason classifies a failed server handshake: the client's
// certificate is from an unknown CA, expired, otherwise bad (including the
// bridge's own checks of role and revocation, and a client that refused
// the bridge's certificate), or missing; or the handshake did not finish
// in time; or anything else (not TLS at all, no common protocol version).
func handshakeFailureReason(err error) string {
	var (
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		verify  *tls.CertificateVerificationError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &unknown):
		return "unknown_ca"
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return "expired"
		}
		return "bad_certificate"
	case errors.As(err, &verify):
		return "bad_certificate"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	}
	// What the client says in its alert ("remote error: tls: ...") and
	// crypto/tls's own refusals, which have no types of their own.
	msg := err.Error()
	switch {
	case strings.Contains(msg, "didn't provide a certificate"), strings.Contains(msg, "certificate required"):
		return "no_certificate"
	case strings.Contains(msg, "unknown certificate authority"):
		return "unknown_ca"
	case strings.Contains(msg, "expired certificate"):
		return "expired"
	case strings.Contains(msg, "bad certificate"), strings.Contains(msg, "unsupported certificate"),
		strings.Contains(msg, "revoked certificate"), strings.HasPrefix(msg, "verify client"):
		return "bad_certificate"
	}
	return "other"
}
