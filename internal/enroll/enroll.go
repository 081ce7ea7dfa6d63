// Package enroll is the client side of gearbridge's EnrollService: it turns
// a one-time token into a certificate whose key never leaves the machine,
// keeps the result in a state directory, and renews the certificate over
// the peer's mutual-TLS connection before it expires. Workers and senders
// share it.
package enroll

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// Names of the files in a state directory.
const (
	CertFile = "cert.pem" // own certificate (0644)
	KeyFile  = "key.pem"  // own private key (0600); generated here, never sent
	CAFile   = "ca.pem"   // the gearbridge CA, pinned at enrollment (0644)
)

// DefaultTimeout bounds one enrollment: dial, handshake and the call.
const DefaultTimeout = 30 * time.Second

// Paths returns the certificate, key and CA file of the state directory.
func Paths(dir string) (cert, key, ca string) {
	return filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), filepath.Join(dir, CAFile)
}

// Options configure Enroll.
type Options struct {
	// Bridge is the bridge address, host:port. The host must be a name or
	// IP in the bridge's certificate.
	Bridge string
	// Token is the one-time token from `gearbridge certs token`.
	Token string
	// CAFingerprint is the CA's "sha256:<hex>" from `certs init` or
	// `certs token`: the bridge is trusted only if its CA matches.
	CAFingerprint string
	// StateDir receives the key, the certificate and the CA. It may exist
	// but must not hold a key yet.
	StateDir string
	// Role is what the caller expects to become (worker or sender); a
	// token for another role is refused after the fact and nothing is
	// written.
	Role certs.Role
	// Timeout bounds the whole enrollment; zero means DefaultTimeout.
	Timeout time.Duration
	// DialOptions are added to the gRPC dial options (tests).
	DialOptions []grpc.DialOption
}

// Validate checks o without changing it.
func (o Options) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(o.Bridge); err != nil {
		errs = append(errs, fmt.Errorf("bridge: want HOST:PORT: %w", err))
	}
	if _, err := certs.ParseToken(o.Token); err != nil {
		errs = append(errs, fmt.Errorf("token: %w", err))
	}
	if o.CAFingerprint == "" {
		errs = append(errs, errors.New("ca-fingerprint: required (printed by gearbridge certs token)"))
	}
	if o.StateDir == "" {
		errs = append(errs, errors.New("state-dir: required"))
	}
	if o.Role != certs.RoleWorker && o.Role != certs.RoleSender {
		errs = append(errs, fmt.Errorf("role %q: want worker or sender", o.Role))
	}
	if o.Timeout < 0 {
		errs = append(errs, errors.New("timeout: must not be negative"))
	}
	return errors.Join(errs...)
}

// Enroll generates a key in the state directory's place, sends a CSR with
// the token to the bridge (which it trusts only by the CA fingerprint), and
// stores the key (0600), the issued certificate and the CA in StateDir.
// It returns what was issued.
func Enroll(ctx context.Context, o Options) (certs.IssuedPair, error) {
	if err := o.Validate(); err != nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll: %w", err)
	}
	certPath, keyPath, caPath := Paths(o.StateDir)
	if _, err := os.Lstat(keyPath); err == nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll: %s exists: this state directory is enrolled already; use a fresh one", keyPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return certs.IssuedPair{}, fmt.Errorf("enroll: %w", err)
	}
	host, _, _ := net.SplitHostPort(o.Bridge)
	tc, err := certs.PinnedClientTLSConfig(o.CAFingerprint, host)
	if err != nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll: %w", err)
	}
	keyPEM, csrPEM, err := certs.NewKeyAndCSR()
	if err != nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll: %w", err)
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}, o.DialOptions...)
	cc, err := grpc.NewClient(o.Bridge, opts...)
	if err != nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll at %s: %w", o.Bridge, err)
	}
	defer cc.Close()
	resp, err := enrollRetrying(ctx, pb.NewEnrollServiceClient(cc), &pb.EnrollRequest{Token: o.Token, CsrPem: csrPEM})
	if err != nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll at %s: %w", o.Bridge, err)
	}
	pair, err := certs.VerifyIssued(resp.GetCertificatePem(), resp.GetCaPem(), keyPEM, o.CAFingerprint)
	if err != nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll at %s: the bridge's answer is not usable: %w", o.Bridge, err)
	}
	if pair.Role != o.Role {
		return certs.IssuedPair{}, fmt.Errorf("enroll: the token was for a %s, not a %s; nothing was written", pair.Role, o.Role)
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll: %w", err)
	}
	// CA first, key last: a directory with a key is "enrolled".
	if err := certs.WriteFileAtomic(caPath, certs.CAPEMOf(pair.CA), certs.CertFileMode); err != nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll: %w", err)
	}
	if err := certs.WriteFileAtomic(certPath, resp.GetCertificatePem(), certs.CertFileMode); err != nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll: %w", err)
	}
	if err := certs.WriteFileAtomic(keyPath, keyPEM, certs.KeyFileMode); err != nil {
		return certs.IssuedPair{}, fmt.Errorf("enroll: %w", err)
	}
	return pair, nil
}

// enrollRetrying calls Enroll, and calls it again with backoff while the
// bridge answers ResourceExhausted: it limits enrollments per address, and
// a limited request uses no token. Every other answer is final.
func enrollRetrying(ctx context.Context, client pb.EnrollServiceClient, req *pb.EnrollRequest) (*pb.EnrollResponse, error) {
	wait := time.Second
	for {
		resp, err := client.Enroll(ctx, req)
		if status.Code(err) != codes.ResourceExhausted {
			return resp, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait = min(2*wait, 10*time.Second)
	}
}
