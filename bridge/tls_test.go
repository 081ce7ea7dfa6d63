package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// TestRefusedWithoutValidCertificate: a worker without a client
// certificate, or with one from another CA, never gets a session.
func TestRefusedWithoutValidCertificate(t *testing.T) {
	e := newTestEnv(t, nil)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.ca.CertPEM())

	other, err := certs.InitCA(t.TempDir(), certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := other.IssueClient(certs.RoleWorker, "w1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "w.crt"), crt, 0o644)
	writeFile(t, filepath.Join(dir, "w.key"), key, 0o600)
	foreign, err := tls.LoadX509KeyPair(filepath.Join(dir, "w.crt"), filepath.Join(dir, "w.key"))
	if err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]*tls.Config{
		"no certificate":            {RootCAs: pool, ServerName: "bridge.test", MinVersion: tls.VersionTLS13},
		"certificate of another CA": {RootCAs: pool, ServerName: "bridge.test", MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{foreign}},
	} {
		t.Run(name, func(t *testing.T) {
			e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := pb.NewWorkerServiceClient(e.dialTLS(tc)).Work(ctx)
			if err == nil {
				_ = st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Hello{Hello: hello(1, "service")}})
				_, err = st.Recv()
			}
			if code := status.Code(err); code != codes.Unavailable && code != codes.Unauthenticated {
				t.Fatalf("err = %v, want the handshake refused", err)
			}
			if n := e.fake.queued("service"); n == 0 {
				t.Fatal("a job was handed out")
			}
		})
	}
}

// handshake runs one TLS handshake against the bridge with tc and reads
// until the bridge has decided (TLS 1.3 verifies the client's certificate
// after the client considers the handshake done).
func (e *testEnv) handshake(tc *tls.Config) {
	e.t.Helper()
	raw, err := e.lis.Dial()
	if err != nil {
		e.t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, tc)
	if err := c.Handshake(); err == nil {
		_, _ = c.Read(make([]byte, 1))
	}
}

// TestHandshakeFailuresLoggedAndCounted: every failed TLS handshake is
// counted by reason and logged with the peer's address and the reason,
// once per interval per peer and reason.
func TestHandshakeFailuresLoggedAndCounted(t *testing.T) {
	e, logs := newLoggedEnv(t, nil)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.ca.CertPEM())
	pair := func(certPEM, keyPEM []byte) []tls.Certificate {
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	now := time.Now()
	goodCrt, goodKey, err := e.ca.IssueClient(certs.RoleWorker, "w1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good := pair(goodCrt, goodKey)
	otherDir := t.TempDir()
	if _, err := certs.InitCA(otherDir, certs.CAOptions{}); err != nil {
		t.Fatal(err)
	}
	otherPool := x509.NewCertPool()
	otherCA, _ := loadCA(t, otherDir)
	otherPool.AddCert(otherCA)

	tests := []struct {
		reason string
		tc     *tls.Config // nil: not TLS at all
	}{
		{"no_certificate", &tls.Config{RootCAs: pool, ServerName: "bridge.test", MinVersion: tls.VersionTLS13}},
		{"unknown_ca", &tls.Config{RootCAs: pool, ServerName: "bridge.test", MinVersion: tls.VersionTLS13,
			Certificates: pair(mint(t, otherDir, certs.RoleWorker, "w1", now.Add(-time.Hour), now.Add(time.Hour)))}},
		{"expired", &tls.Config{RootCAs: pool, ServerName: "bridge.test", MinVersion: tls.VersionTLS13,
			Certificates: pair(mint(t, e.caDir, certs.RoleWorker, "w1", now.Add(-2*time.Hour), now.Add(-time.Hour)))}},
		// The client does not trust the bridge and says so with an alert.
		{"bad_certificate", &tls.Config{RootCAs: otherPool, ServerName: "bridge.test", MinVersion: tls.VersionTLS13, Certificates: good}},
		{"other", nil},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			c := e.b.m.handshakeFailures.WithLabelValues(tt.reason)
			before := testutil.ToFloat64(c)
			for range 3 {
				if tt.tc == nil {
					raw, err := e.lis.Dial()
					if err != nil {
						t.Fatal(err)
					}
					_, _ = raw.Write([]byte("GET / HTTP/1.1\r\nHost: bridge\r\n\r\n"))
					_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
					_, _ = io.Copy(io.Discard, raw)
					raw.Close()
					continue
				}
				e.handshake(tt.tc)
			}
			eventually(t, 5*time.Second, "3 failures counted as "+tt.reason, func() bool { return testutil.ToFloat64(c)-before == 3 })
			rx := regexp.MustCompile(`msg="TLS handshake failed" peer=bufconn reason=` + tt.reason + ` err=.*`)
			// The line follows the count.
			eventually(t, 5*time.Second, "failure logged", func() bool { return rx.MatchString(logs.String()) })
			if lines := rx.FindAllString(logs.String(), -1); len(lines) != 1 {
				t.Fatalf("%d log lines for %s, want 1 (rate-limited):\n%s", len(lines), tt.reason, logs)
			}
		})
	}
	// A good handshake is neither counted nor logged.
	total := 0.0
	for _, r := range handshakeFailureReasons {
		total += testutil.ToFloat64(e.b.m.handshakeFailures.WithLabelValues(r))
	}
	e.handshake(&tls.Config{RootCAs: pool, ServerName: "bridge.test", MinVersion: tls.VersionTLS13, Certificates: good, NextProtos: []string{"h2"}})
	time.Sleep(100 * time.Millisecond)
	after := 0.0
	for _, r := range handshakeFailureReasons {
		after += testutil.ToFloat64(e.b.m.handshakeFailures.WithLabelValues(r))
	}
	if after != total {
		t.Fatalf("a good handshake was counted as a failure:\n%s", logs)
	}
}

// TestHandshakeFailureReason classifies the errors crypto/tls returns.
func TestHandshakeFailureReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, "unknown_ca"},
		{&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}, "expired"},
		{&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}}, "bad_certificate"},
		{errors.New("tls: client didn't provide a certificate"), "no_certificate"},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: unknown certificate authority")}, "unknown_ca"},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: expired certificate")}, "expired"},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, "bad_certificate"},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}, "no_certificate"},
		{errors.New(`verify client "w1": role "bridge" may not connect as a client`), "bad_certificate"},
		{os.ErrDeadlineExceeded, "timeout"},
		{errors.New("tls: first record does not look like a TLS handshake"), "other"},
	}
	for _, tt := range tests {
		if got := handshakeFailureReason(tt.err); got != tt.want {
			t.Errorf("handshakeFailureReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
