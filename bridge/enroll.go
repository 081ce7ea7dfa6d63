package bridge

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
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
// the bridge sign (and lock tokens.json) as fast as it can send. Each
// address is limited first, and only what it is allowed counts against the
// global limit: one address, however fast it sends, takes at most
// enrollPerIPRate of the global enrollGlobalRate, so it cannot keep another
// address from enrolling.
const (
	enrollPerIPRate   = 1.0 // requests per second per remote address, refilled
	enrollPerIPBurst  = 10
	enrollGlobalRate  = 20.0
	enrollGlobalBurst = 50
	// maxLimiterKeys bounds the buckets kept in memory per kind.
	maxLimiterKeys = 10000
)

// Renewal rate limit per identity. A worker renews once in a month; the
// burst of two lets a client that lost the answer to its renewal retry at
// once. Beyond that, a stolen certificate cannot make the bridge sign (and
// grow issued.json) in a loop.
const (
	renewInterval = 10 * time.Second
	renewBurst    = 2
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
		// A revoked identity is answered like a bad token: the caller
		// learns nothing about which names exist.
		if errors.Is(err, certs.ErrTokenInvalid) || errors.Is(err, certs.ErrRevoked) {
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
	spec, err := b.tokens.Consume(token, func(rec certs.TokenRecord) (string, error) {
		// The identity comes from the token; whatever the CSR names is
		// ignored by SignEnrollCSR, which also refuses an identity revoked
		// since the token was made.
		p, err := b.currentCA().SignEnrollCSR(csrPEM, rec, b.cfg.CertLifetime)
		if errors.Is(err, certs.ErrRevoked) {
			return "", err
		}
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
// verified, unrevoked client certificate. The worker decides when to renew;
// an identity may renew renewBurst times at once and then once per
// renewInterval. Revocation is checked against the list on disk, under the
// CA's lock, not only against the list the bridge last loaded: a renewal
// right after a revocation is refused, and one racing it is covered by it.
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
	if !b.limiter.allowRenew(id.String(), time.Now()) {
		b.log.Warn("refused renewal", "role", id.Role, "identity", id.Name, "err", "rate limited")
		return nil, status.Errorf(codes.ResourceExhausted, "renew: at most %d renewals per %v for one identity; try again later", renewBurst, renewInterval)
	}
	csr := req.GetCsrPem()
	if len(csr) > maxCSRLen {
		return nil, status.Errorf(codes.InvalidArgument, "renew: CSR longer than %d bytes", maxCSRLen)
	}
	if err := certs.CheckCSR(csr); err != nil {
		b.log.Warn("refused renewal", "identity", id.Name, "err", err)
		return nil, status.Errorf(codes.InvalidArgument, "renew: CSR: %v", err)
	}
	leaf := peerLeaf(ctx)
	if leaf == nil {
		return nil, status.Error(codes.Unauthenticated, "renew: no client certificate")
	}
	certPEM, err := b.currentCA().RenewCSR(csr, leaf, b.cfg.CertLifetime)
	if errors.Is(err, certs.ErrRevoked) {
		b.log.Warn("refused renewal", "role", id.Role, "identity", id.Name, "serial", id.Serial, "err", err)
		return nil, status.Errorf(codes.Unauthenticated, "renew: %v", err)
	}
	if err != nil {
		b.log.Error("renewal failed", "identity", id.Name, "err", err)
		return nil, status.Error(codes.Internal, "renew failed; see the bridge log")
	}
	b.log.Info("renewed certificate", "role", id.Role, "identity", id.Name, "old_serial", id.Serial, "serial", serialOfPEM(certPEM))
	// The revocation list learns the new certificate's identity before
	// sessions move to its serial, so that revoking the identity closes
	// them.
	if c, err := certs.ParseCertificatePEM(certPEM); err == nil && b.revoked != nil {
		b.revoked.Remember(c)
	}
	b.sessionsRenewed(id, certPEM)
	return &pb.RenewResponse{CertificatePem: certPEM, CaPem: b.currentCA().CertPEM()}, nil
}

// peerLeaf is the client certificate of the call, which identityFrom has
// verified.
func peerLeaf(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	if ch := info.State.VerifiedChains; len(ch) > 0 && len(ch[0]) > 0 {
		return ch[0][0]
	}
	if len(info.State.PeerCertificates) > 0 {
		return info.State.PeerCertificates[0]
	}
	return nil
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

// limiterKey is the address a rate limit counts: the IP, or for IPv6 its
// /64, since a host usually has a whole /64 to pick addresses from.
func limiterKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return a.String()
}

// rateLimiter holds token buckets per remote address plus a global one for
// enrollment, and per identity for renewals.
type rateLimiter struct {
	mu      sync.Mutex
	global  bucket
	perIP   map[string]*bucket
	renewal map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter() *rateLimiter {
	return &rateLimiter{
		global:  bucket{tokens: enrollGlobalBurst},
		perIP:   map[string]*bucket{},
		renewal: map[string]*bucket{},
	}
}

// refill adds the tokens earned since the bucket's last use.
func (b *bucket) refill(now time.Time, rate float64, burst int) {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	if now.After(b.last) {
		b.last = now
	}
}

// take refills b and takes one token.
func (b *bucket) take(now time.Time, rate float64, burst int) bool {
	b.refill(now, rate, burst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// keyed returns the bucket of key in m, creating a full one. When m holds
// maxLimiterKeys buckets, full ones are forgotten (they hold nothing worth
// keeping); if none is, it returns nil.
func keyed(m map[string]*bucket, key string, now time.Time, rate float64, burst int) *bucket {
	if bk := m[key]; bk != nil {
		return bk
	}
	if len(m) >= maxLimiterKeys {
		for k, v := range m {
			if now.Sub(v.last).Seconds()*rate+v.tokens >= float64(burst) {
				delete(m, k)
			}
		}
		if len(m) >= maxLimiterKeys {
			return nil
		}
	}
	bk := &bucket{tokens: float64(burst)}
	m[key] = bk
	return bk
}

// allow reports whether an enrollment from ip may go ahead: its address's
// bucket is checked first, and only a request the address is allowed takes
// from the global bucket.
func (l *rateLimiter) allow(ip string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	bk := keyed(l.perIP, limiterKey(ip), now, enrollPerIPRate, enrollPerIPBurst)
	if bk == nil {
		return false
	}
	bk.refill(now, enrollPerIPRate, enrollPerIPBurst)
	if bk.tokens < 1 {
		return false
	}
	if !l.global.take(now, enrollGlobalRate, enrollGlobalBurst) {
		return false
	}
	bk.tokens--
	return true
}

// allowRenew reports whether identity may renew now.
func (l *rateLimiter) allowRenew(identity string, now time.Time) bool {
	const rate = 1 / float64(renewInterval/time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	bk := keyed(l.renewal, identity, now, rate, renewBurst)
	return bk != nil && bk.take(now, rate, renewBurst)
}
