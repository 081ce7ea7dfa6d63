package enroll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// DefaultRenewInterval is how often a Renewer looks at the certificate's
// remaining lifetime. A minute costs nothing and is far below any sensible
// lifetime.
const DefaultRenewInterval = time.Minute

// renewTimeout bounds one Renew call.
const renewTimeout = 30 * time.Second

// Renewer renews the certificate of a state directory, or of files from
// `gearbridge certs issue`, over the peer's existing mutual-TLS connection
// once less than a third of its lifetime is left, writes the new key and
// certificate atomically and reloads the Reloader, so new handshakes use
// them while the running connection stays as it is.
type Renewer struct {
	files    Files
	tls      *certs.Reloader
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time
	dialOpts []grpc.DialOption // for the fallback connection; tests

	mu sync.Mutex // one renewal at a time
}

// NewRenewer returns a Renewer for the state directory dir whose files tls
// reads. An interval of zero means DefaultRenewInterval; a nil logger
// discards.
func NewRenewer(dir string, tls *certs.Reloader, log *slog.Logger, interval time.Duration) *Renewer {
	return NewFilesRenewer(StateFiles(dir), tls, log, interval)
}

// NewFilesRenewer is NewRenewer for any Files, such as IssuedFiles: tls
// must read files.Cert, files.Key and files.CA. The renewed certificate
// must come from the CA in files.CA.
func NewFilesRenewer(files Files, tls *certs.Reloader, log *slog.Logger, interval time.Duration) *Renewer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = DefaultRenewInterval
	}
	return &Renewer{files: files, tls: tls, log: log, interval: interval, now: time.Now}
}

// Run checks at once and then every interval until ctx ends, renewing over
// cc when due. Failures are logged and retried at the next check. Its
// signature fits worker.Deps.Renew.
func (r *Renewer) Run(ctx context.Context, cc grpc.ClientConnInterface) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		if _, err := r.Check(ctx, cc); err != nil && ctx.Err() == nil {
			r.log.Error("renew certificate; retrying later", "in", r.interval, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check renews the certificate over cc if less than a third of its
// lifetime is left, and reports whether it did.
func (r *Renewer) Check(ctx context.Context, cc grpc.ClientConnInterface) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !certs.NeedsRenewal(r.tls.Leaf(), r.now()) {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, renewTimeout)
	defer cancel()
	unlock, err := lockFiles(ctx, r.files)
	if err != nil {
		return false, fmt.Errorf("renew: %w", err)
	}
	defer unlock()
	// Another process sharing the directory may have renewed meanwhile.
	if err := r.tls.Reload(); err != nil {
		return false, fmt.Errorf("renew: %w", err)
	}
	leaf := r.tls.Leaf()
	if !certs.NeedsRenewal(leaf, r.now()) {
		r.log.Info("certificate renewed by another process", "serial", certs.SerialOf(leaf))
		return false, nil
	}
	caPath := r.files.CA
	keyPEM, csrPEM, err := certs.NewKeyAndCSR()
	if err != nil {
		return false, err
	}
	req := &pb.RenewRequest{CsrPem: csrPEM}
	resp, err := pb.NewEnrollServiceClient(cc).Renew(ctx, req)
	if status.Code(err) == codes.Unauthenticated {
		// A long-lived connection outlives the certificate it was opened
		// with: the second renewal is due after the first certificate has
		// expired. Renew over a new connection that presents the current
		// certificate.
		resp, err = r.renewFresh(ctx, cc, req)
	}
	if err != nil {
		return false, fmt.Errorf("renew: %w", err)
	}
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return false, fmt.Errorf("renew: %w", err)
	}
	ca, err := certs.ParseCertificatePEM(caPEM)
	if err != nil {
		return false, fmt.Errorf("renew: CA file %s: %w", caPath, err)
	}
	// The renewed certificate must come from the CA pinned at enrollment.
	pair, err := certs.VerifyIssued(resp.GetCertificatePem(), resp.GetCaPem(), keyPEM, certs.FingerprintOf(ca))
	if err != nil {
		return false, fmt.Errorf("renew: the bridge's answer is not usable: %w", err)
	}
	oldRole, oldName, err := certs.IdentityOf(leaf)
	if err != nil {
		return false, fmt.Errorf("renew: %w", err)
	}
	if pair.Role != oldRole || pair.Name != oldName {
		return false, fmt.Errorf("renew: the bridge issued %s %q, want %s %q", pair.Role, pair.Name, oldRole, oldName)
	}
	if err := writePair(r.files, keyPEM, resp.GetCertificatePem()); err != nil {
		return false, fmt.Errorf("renew: %w", err)
	}
	if err := r.tls.Reload(); err != nil {
		return false, fmt.Errorf("renew: %w", err)
	}
	r.log.Info("renewed certificate", "serial", certs.SerialOf(pair.Cert),
		"not_after", pair.Cert.NotAfter.UTC().Format(time.RFC3339), "old_serial", certs.SerialOf(leaf))
	return true, nil
}

// renewFresh calls Renew over a new connection to cc's target made with
// the current certificate.
func (r *Renewer) renewFresh(ctx context.Context, cc grpc.ClientConnInterface, req *pb.RenewRequest) (*pb.RenewResponse, error) {
	t, ok := cc.(interface{ Target() string })
	if !ok {
		return nil, errors.New("the session connection refuses renewal and has no target to dial anew")
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(r.tls.ClientConfig("")))}, r.dialOpts...)
	fresh, err := grpc.NewClient(t.Target(), opts...)
	if err != nil {
		return nil, err
	}
	defer fresh.Close()
	return pb.NewEnrollServiceClient(fresh).Renew(ctx, req)
}
