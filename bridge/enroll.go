package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// EnrolledAuthzFile is the file in the certs directory where the bridge
// keeps the allow rules that enrollment tokens carried (their queues or
// hosts). The rules are merged with the operator's --authz rules.
const EnrolledAuthzFile = "enrolled-authz.json"

// Limits on enrollment requests. A token is 48 bytes and a P-256 CSR is
// under 1 KiB; anything much larger is not a gearbridge client.
const (
	maxTokenLen = 256
	maxCSRLen   = 16 << 10
)

// Enrollment rate limits. Tokens have 256 bits of entropy, so the limits do
// not protect the tokens; they keep an unauthenticated caller from making
// the bridge sign (and lock tokens.json) as fast as it can send.
const (
	enrollPerIPRate   = 1.0 // requests per second per remote IP, refilled
	enrollPerIPBurst  = 10
	enrollGlobalRate  = 20.0
	enrollGlobalBurst = 50
	// maxLimiterIPs bounds the per-IP buckets kept in memory.
	maxLimiterIPs = 10000
)

type enrollService struct {
	pb.UnimplementedEnrollServiceServer
	b *Bridge
}

// Enroll signs a CSR for the identity an unused, unexpired one-time token
// names. It needs no client certificate. Every token problem is answered
// with the same Unauthenticated status; the reason is only logged.
func (e *enrollService) Enroll(ctx context.Context, req *pb.EnrollRequest) (*pb.EnrollResponse, error) {
	b := e.b
	addr := peerAddr(ctx)
	if !b.limiter.allow(hostOf(addr), time.Now()) {
		b.log.Warn("refused enrollment", "peer", addr, "err", "rate limited")
		return nil, status.Error(codes.ResourceExhausted, "enrollment: too many requests; try again later")
	}
	certPEM, spec, err := b.enroll(req.GetToken(), req.GetCsrPem())
	if err != nil {
		b.log.Warn("refused enrollment", "peer", addr, "err", err)
		if errors.Is(err, certs.ErrTokenInvalid) {
			return nil, status.Error(codes.Unauthenticated, "enrollment: token invalid, used or expired")
		}
		if status.Code(err) != codes.Unknown {
			return nil, err
		}
		return nil, status.Error(codes.Internal, "enrollment failed; see the bridge log")
	}
	b.log.Info("enrolled", "peer", addr, "role", spec.Role, "identity", spec.Name)
	return &pb.EnrollResponse{CertificatePem: certPEM, CaPem: b.currentCA().CertPEM()}, nil
}

// enroll checks the request, uses up the token and signs the CSR.
func (b *Bridge) enroll(token string, csrPEM []byte) ([]byte, certs.TokenSpec, error) {
	if len(token) > maxTokenLen {
		return nil, certs.TokenSpec{}, fmt.Errorf("%w: token longer than %d bytes", certs.ErrTokenInvalid, maxTokenLen)
	}
	if _, err := certs.ParseToken(token); err != nil {
		return nil, certs.TokenSpec{}, err
	}
	if len(csrPEM) > maxCSRLen {
		return nil, certs.TokenSpec{}, status.Errorf(codes.InvalidArgument, "enrollment: CSR longer than %d bytes", maxCSRLen)
	}
	// Check the CSR before the token is used up, so a client bug does not
	// burn the token.
	if err := certs.CheckCSR(csrPEM); err != nil {
		return nil, certs.TokenSpec{}, status.Errorf(codes.InvalidArgument, "enrollment: CSR: %v", err)
	}
	var certPEM []byte
	spec, err := b.tokens.Consume(token, func(spec certs.TokenSpec) (string, error) {
		// The identity comes from the token; whatever the CSR names is
		// ignored by SignCSR.
		p, err := b.currentCA().SignCSR(csrPEM, spec.Role, spec.Name, b.cfg.CertLifetime)
		if err != nil {
			return "", status.Errorf(codes.InvalidArgument, "enrollment: %v", err)
		}
		certPEM = p
		return serialOfPEM(p), nil
	})
	if err != nil {
		return nil, certs.TokenSpec{}, err
	}
	if len(spec.Queues) > 0 || len(spec.Hosts) > 0 {
		if err := b.addEnrolledRule(spec); err != nil {
			return nil, certs.TokenSpec{}, err
		}
	}
	return certPEM, spec, nil
}

// Renew signs a CSR for the caller's own identity and role, taken from its
// verified, unrevoked client certificate. The worker decides when to renew.
func (e *enrollService) Renew(ctx context.Context, req *pb.RenewRequest) (*pb.RenewResponse, error) {
	b := e.b
	id, err := b.identityFrom(ctx)
	if err != nil {
		b.log.Warn("refused renewal", "peer", peerAddr(ctx), "err", err)
		return nil, err
	}
	if _, err := b.authorize(ctx, id.Role); err != nil {
		return nil, err
	}
	csr := req.GetCsrPem()
	if len(csr) > maxCSRLen {
		return nil, status.Errorf(codes.InvalidArgument, "renew: CSR longer than %d bytes", maxCSRLen)
	}
	if err := certs.CheckCSR(csr); err != nil {
		b.log.Warn("refused renewal", "identity", id.Name, "err", err)
		return nil, status.Errorf(codes.InvalidArgument, "renew: CSR: %v", err)
	}
	certPEM, err := b.currentCA().SignCSR(csr, certs.Role(id.Role), id.Name, b.cfg.CertLifetime)
	if err != nil {
		b.log.Error("renewal failed", "identity", id.Name, "err", err)
		return nil, status.Error(codes.Internal, "renew failed; see the bridge log")
	}
	b.log.Info("renewed certificate", "role", id.Role, "identity", id.Name, "old_serial", id.Serial, "serial", serialOfPEM(certPEM))
	b.sessionsRenewed(id, certPEM)
	return &pb.RenewResponse{CertificatePem: certPEM, CaPem: b.currentCA().CertPEM()}, nil
}

func serialOfPEM(p []byte) string {
	pair, err := certs.ParseCertificatePEM(p)
	if err != nil {
		return ""
	}
	return certs.SerialOf(pair)
}

// enrolledDoc is the enrolled-authz.json document.
type enrolledDoc struct {
	Rules []enrolledRule `json:"rules"`
}

type enrolledRule struct {
	Identity string   `json:"identity"`
	Role     Role     `json:"role"`
	Queues   []string `json:"queues,omitempty"`
	Hosts    []string `json:"hosts,omitempty"`
}

// addEnrolledRule records the token's queues or hosts as an allow rule for
// its identity, replacing an older rule of the same identity and role, and
// applies it.
func (b *Bridge) addEnrolledRule(spec certs.TokenSpec) error {
	b.enrolledMu.Lock()
	defer b.enrolledMu.Unlock()
	path := filepath.Join(b.cfg.CertsDir, EnrolledAuthzFile)
	doc, err := readEnrolled(path)
	if err != nil {
		return err
	}
	r := enrolledRule{Identity: spec.Name, Role: Role(spec.Role), Queues: spec.Queues, Hosts: spec.Hosts}
	doc.Rules = slices.DeleteFunc(doc.Rules, func(x enrolledRule) bool { return x.Identity == r.Identity && x.Role == r.Role })
	doc.Rules = append(doc.Rules, r)
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := certs.WriteFileAtomic(path, append(data, '\n'), certs.CertFileMode); err != nil {
		return fmt.Errorf("save enrolled rules: %w", err)
	}
	b.enrolledRules.Store(toAuthz(doc))
	b.applyAuthz()
	return nil
}

func readEnrolled(path string) (enrolledDoc, error) {
	var doc enrolledDoc
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return doc, fmt.Errorf("enrolled rules: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return doc, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return doc, fmt.Errorf("enrolled rules %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return doc, fmt.Errorf("enrolled rules %s: trailing data", path)
	}
	if err := toAuthz(doc).Validate(); err != nil {
		return doc, fmt.Errorf("enrolled rules %s: %w", path, err)
	}
	return doc, nil
}

func toAuthz(doc enrolledDoc) *Authz {
	a := &Authz{}
	for _, r := range doc.Rules {
		a.Rules = append(a.Rules, Rule{Identity: r.Identity, Role: r.Role, Queues: r.Queues, Hosts: r.Hosts})
	}
	return a
}

// peerAddr is the caller's address for logs and rate limits.
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// rateLimiter is a token bucket per remote IP plus a global one.
type rateLimiter struct {
	mu     sync.Mutex
	global bucket
	perIP  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter() *rateLimiter {
	return &rateLimiter{global: bucket{tokens: enrollGlobalBurst}, perIP: map[string]*bucket{}}
}

// take refills b for the time since its last use and takes one token.
func (b *bucket) take(now time.Time, rate float64, burst int) bool {
	if !b.last.IsZero() {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *rateLimiter) allow(ip string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	bk := l.perIP[ip]
	if bk == nil {
		if len(l.perIP) >= maxLimiterIPs {
			// Forget buckets that have refilled: they hold no state
			// worth keeping.
			for k, v := range l.perIP {
				if now.Sub(v.last).Seconds()*enrollPerIPRate >= enrollPerIPBurst {
					delete(l.perIP, k)
				}
			}
			if len(l.perIP) >= maxLimiterIPs {
				return false
			}
		}
		bk = &bucket{tokens: enrollPerIPBurst}
		l.perIP[ip] = bk
	}
	if !bk.take(now, enrollPerIPRate, enrollPerIPBurst) {
		return false
	}
	return l.global.take(now, enrollGlobalRate, enrollGlobalBurst)
}
