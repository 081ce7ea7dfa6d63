package worker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// failure is how the loop retries after a connection attempt or a session
// stream failed.
type failure int

const (
	// failureTemporary: the network, a restarting or draining bridge.
	// Retried soon, so that a restarted bridge sees its workers back
	// within seconds.
	failureTemporary failure = iota
	// failureRefused: the bridge refuses this worker, or the worker the
	// bridge: not authorized, a bad hello, a certificate that is unknown,
	// revoked or expired. Only an operator can change that, so retries
	// back off to Config.RefusedBackoffMax and are logged as a summary.
	failureRefused
)

// certErrorTexts mark TLS handshake failures about certificates. gRPC
// reports them as Unavailable and keeps only the text of the TLS error.
var certErrorTexts = []string{
	"remote error: tls: ", // the bridge's TLS alert: our certificate is bad, unknown, revoked or expired
	"tls: failed to verify certificate",
	"x509: ",         // the bridge's certificate does not verify against our CA
	"verify bridge:", // it verifies, but is not a bridge's (certs.Reloader.ClientConfig)
}

// classifyFailure tells a refusal from a temporary failure. It is the only
// place that does.
//
// A bridge that refuses the client certificate during the handshake sends
// a TLS alert, but TLS 1.3 lets the client finish its side first, so the
// worker sometimes sees only the connection closing under its first write
// ("broken pipe"): such an attempt counts as temporary, and the next one
// usually reads the alert.
func classifyFailure(err error) failure {
	if err == nil {
		return failureTemporary
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
		return failureRefused
	}
	var (
		verifyErr   *tls.CertificateVerificationError
		alert       tls.AlertError
		unknownAuth x509.UnknownAuthorityError
		invalid     x509.CertificateInvalidError
		hostname    x509.HostnameError
	)
	if errors.As(err, &verifyErr) || errors.As(err, &alert) || errors.As(err, &unknownAuth) ||
		errors.As(err, &invalid) || errors.As(err, &hostname) {
		return failureRefused
	}
	msg := err.Error()
	for _, s := range certErrorTexts {
		if strings.Contains(msg, s) {
			return failureRefused
		}
	}
	return failureTemporary
}

// refusals is a run of failed attempts that began with a refusal and lasts
// until the next welcome. Temporary failures within it count too: they are
// often the same refusal seen from the other side (see classifyFailure).
type refusals struct {
	active   bool
	since    time.Time
	attempts int
	lastLog  time.Time
	bo       retryBackoff
}

// noteRefusal counts an attempt of a refusal run, starting the run if
// needed, and logs the first one and then a summary every
// Config.RefusedLogInterval.
func (l *loop) noteRefusal(c *conn, err error) {
	r := &l.refused
	now := time.Now()
	if !r.active {
		// The first pause of the run is the longest temporary one, and
		// each one doubles from there.
		*r = refusals{active: true, since: now, attempts: 1, lastLog: now,
			bo: newRetryBackoff(l.cfg.BackoffMax, l.cfg.RefusedBackoffMax)}
		l.m.refused.Set(1)
		l.log.Error("the bridge refuses this worker; retrying less often until an operator fixes it",
			"bridge", c.addr, "retry_up_to", l.cfg.RefusedBackoffMax, "err", err)
		return
	}
	r.attempts++
	if now.Sub(r.lastLog) < l.cfg.RefusedLogInterval {
		l.log.Debug("refused by the bridge", "bridge", c.addr, "err", err)
		return
	}
	r.lastLog = now
	l.log.Error("still refused by the bridge", "attempts", r.attempts, "since", r.since.UTC().Format(time.RFC3339),
		"bridge", c.addr, "err", err)
}

// endRefusals ends a refusal run at a welcome.
func (l *loop) endRefusals(c *conn) {
	r := &l.refused
	if !r.active {
		return
	}
	l.log.Info("the bridge accepts this worker again", "bridge", c.addr, "attempts", r.attempts,
		"since", r.since.UTC().Format(time.RFC3339))
	*r = refusals{}
	l.m.refused.Set(0)
}
