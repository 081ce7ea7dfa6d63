package bridge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// syncBuffer is a log sink tests can read while the bridge writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newCertsEnv is newTestEnv for a bridge with a certs directory: it serves
// EnrollService and verifies client certificates per call.
func newCertsEnv(t *testing.T, mutate func(*Config)) (*testEnv, *syncBuffer) {
	t.Helper()
	return newServedEnv(t, func(dir string, c *Config) {
		c.CertsDir = dir
		c.Authz = &Authz{Rules: []Rule{
			{Identity: "w*", Role: RoleWorker, Queues: []string{"service", "host"}},
			{Identity: "s*", Role: RoleSender, Hosts: []string{"*"}},
		}}
		if mutate != nil {
			mutate(c)
		}
	})
}

// dialPinned connects without a client certificate, trusting the CA by
// fingerprint, as an enrolling peer does.
func (e *testEnv) dialPinned() *grpc.ClientConn {
	e.t.Helper()
	tc, err := certs.PinnedClientTLSConfig(e.ca.Fingerprint(), "bridge.test")
	if err != nil {
		e.t.Fatal(err)
	}
	return e.dialTLS(tc)
}

// dialPair connects with the given client certificate and key.
func (e *testEnv) dialPair(certPEM, keyPEM []byte) *grpc.ClientConn {
	e.t.Helper()
	dir := e.t.TempDir()
	writeFile(e.t, filepath.Join(dir, "c.crt"), certPEM, 0o644)
	writeFile(e.t, filepath.Join(dir, "c.key"), keyPEM, 0o600)
	tc, err := certs.ClientTLSConfig(filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key"), filepath.Join(e.caDir, "ca.crt"), "bridge.test")
	if err != nil {
		e.t.Fatal(err)
	}
	return e.dialTLS(tc)
}

func (e *testEnv) token(spec certs.TokenSpec, ttl time.Duration) string {
	e.t.Helper()
	tok, _, err := e.ca.Tokens().Create(spec, ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func enrollCall(cc *grpc.ClientConn, token string, csr []byte) (*pb.EnrollResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pb.NewEnrollServiceClient(cc).Enroll(ctx, &pb.EnrollRequest{Token: token, CsrPem: csr})
}

func TestEnrollIssuesTheTokensIdentityOnce(t *testing.T) {
	e, logs := newCertsEnv(t, nil)
	tok := e.token(certs.TokenSpec{Role: certs.RoleWorker, Name: "remote1", Queues: []string{"hostgroup_site"}}, time.Hour)
	// The CSR asks for an admin identity; the token decides.
	keyPEM, csr, err := certs.GenerateKeyAndCSR(certs.RoleAdmin, "root")
	if err != nil {
		t.Fatal(err)
	}
	cc := e.dialPinned()
	resp, err := enrollCall(cc, tok, csr)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := certs.VerifyIssued(resp.GetCertificatePem(), resp.GetCaPem(), keyPEM, e.ca.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if pair.Role != certs.RoleWorker || pair.Name != "remote1" {
		t.Fatalf("issued %s/%s, want worker/remote1", pair.Role, pair.Name)
	}
	// The token's queues became a rule: the new worker may serve its queue.
	st, w, _ := e.session(e.dialPair(resp.GetCertificatePem(), keyPEM), hello(1, "hostgroup_site"))
	if w == nil {
		_, err := st.Recv()
		t.Fatalf("enrolled worker refused: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.caDir, EnrolledAuthzFile)); err != nil {
		t.Fatal(err)
	}
	// Second use.
	_, csr2, _ := certs.NewKeyAndCSR()
	if _, err := enrollCall(cc, tok, csr2); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("second use: err = %v, want Unauthenticated", err)
	}
	if !strings.Contains(logs.String(), "token already used") {
		t.Fatalf("log does not say why:\n%s", logs)
	}
}

func TestEnrollRefusals(t *testing.T) {
	e, logs := newCertsEnv(t, nil)
	cc := e.dialPinned()
	_, csr, _ := certs.NewKeyAndCSR()
	expired := e.token(certs.TokenSpec{Role: certs.RoleWorker, Name: "w-exp"}, time.Millisecond)
	time.Sleep(10 * time.Millisecond)
	valid := e.token(certs.TokenSpec{Role: certs.RoleWorker, Name: "w-ok"}, time.Hour)
	for _, tc := range []struct {
		name, token string
		csr         []byte
		code        codes.Code
		log         string
	}{
		{"expired token", expired, csr, codes.Unauthenticated, "token expired"},
		{"unknown token", "gbt_" + strings.Repeat("A", 43), csr, codes.Unauthenticated, "unknown token"},
		{"malformed token", "hello", csr, codes.Unauthenticated, "malformed token"},
		{"garbage CSR", valid, []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), codes.InvalidArgument, "CSR"},
		{"no CSR", valid, nil, codes.InvalidArgument, "CSR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := enrollCall(cc, tc.token, tc.csr)
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Fatalf("log lacks %q:\n%s", tc.log, logs)
			}
		})
	}
	// A bad CSR did not burn the token.
	if _, err := enrollCall(cc, valid, csr); err != nil {
		t.Fatalf("valid token after bad CSRs: %v", err)
	}
}

func TestEnrollIsRateLimited(t *testing.T) {
	e, _ := newCertsEnv(t, nil)
	cc := e.dialPinned()
	var limited bool
	for range enrollPerIPBurst + 2 {
		_, err := enrollCall(cc, "bad", nil)
		if status.Code(err) == codes.ResourceExhausted {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("no ResourceExhausted after the burst")
	}
}

func TestRateLimiterRefills(t *testing.T) {
	l := newRateLimiter()
	now := time.Unix(1000, 0)
	for range enrollPerIPBurst {
		if !l.allow("1.2.3.4", now) {
			t.Fatal("refused within the burst")
		}
	}
	if l.allow("1.2.3.4", now) {
		t.Fatal("allowed beyond the burst")
	}
	if !l.allow("5.6.7.8", now) {
		t.Fatal("another IP was refused")
	}
	if !l.allow("1.2.3.4", now.Add(time.Second)) {
		t.Fatal("not refilled after a second")
	}
}

func TestNoClientCertOnlyEnrolls(t *testing.T) {
	e, _ := newCertsEnv(t, nil)
	cc := e.dialPinned()
	st, w, _ := e.session(cc, hello(1, "service"))
	if w != nil {
		t.Fatal("a worker session without a client certificate")
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("work: err = %v, want Unauthenticated", err)
	}
	ctx := context.Background()
	if _, err := pb.NewAdminServiceClient(cc).GetStatus(ctx, &pb.GetStatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("admin: err = %v, want Unauthenticated", err)
	}
	if _, err := pb.NewResultServiceClient(cc).SubmitResult(ctx, &pb.SubmitResultRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("result: err = %v, want Unauthenticated", err)
	}
	_, csr, _ := certs.NewKeyAndCSR()
	if _, err := pb.NewEnrollServiceClient(cc).Renew(ctx, &pb.RenewRequest{CsrPem: csr}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("renew: err = %v, want Unauthenticated", err)
	}
}

func TestRenewKeepsIdentity(t *testing.T) {
	e, _ := newCertsEnv(t, nil)
	crt, key, err := e.ca.IssueClient(certs.RoleWorker, "w7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cc := e.dialPair(crt, key)
	newKey, csr, _ := certs.GenerateKeyAndCSR(certs.RoleAdmin, "root")
	resp, err := pb.NewEnrollServiceClient(cc).Renew(context.Background(), &pb.RenewRequest{CsrPem: csr})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := certs.VerifyIssued(resp.GetCertificatePem(), resp.GetCaPem(), newKey, e.ca.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if pair.Role != certs.RoleWorker || pair.Name != "w7" {
		t.Fatalf("renewed as %s/%s, want worker/w7", pair.Role, pair.Name)
	}
}

// mint signs a client certificate with the key in caDir (or self-signs it
// when caDir is empty) with the given validity period.
func mint(t *testing.T, caDir string, role certs.Role, name string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := url.Parse("gearbridge://" + string(role) + "/" + name)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore, NotAfter: notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
	}
	parent, signer := tmpl, crypto.Signer(key)
	if caDir != "" {
		parent, signer = loadCA(t, caDir)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func loadCA(t *testing.T, dir string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	cb, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(cb)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = pem.Decode(kb)
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c, k.(crypto.Signer)
}

// dialAnyCert connects with a client certificate the client does not check
// itself, so that the bridge's verdict is what the test sees.
func (e *testEnv) dialAnyCert(certPEM, keyPEM []byte) *grpc.ClientConn {
	e.t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		e.t.Fatal(err)
	}
	tc, err := certs.PinnedClientTLSConfig(e.ca.Fingerprint(), "bridge.test")
	if err != nil {
		e.t.Fatal(err)
	}
	tc.Certificates = []tls.Certificate{pair}
	return e.dialTLS(tc)
}

// TestCertMatrix opens a worker session with each kind of bad certificate:
// every one is refused with Unauthenticated or PermissionDenied, and the
// bridge log says why.
func TestCertMatrix(t *testing.T) {
	e, logs := newCertsEnv(t, nil)
	now := time.Now()
	other := t.TempDir()
	if _, err := certs.InitCA(other, certs.CAOptions{}); err != nil {
		t.Fatal(err)
	}
	revCert, revKey, err := e.ca.IssueClient(certs.RoleWorker, "w-revoked", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ca.RevokeSerialOrName("w-revoked", "test"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Reload(); err != nil {
		t.Fatal(err)
	}
	// A self-signed certificate that copies a real worker's subject and
	// identity.
	realCert, _, _ := e.ca.IssueClient(certs.RoleWorker, "w-real", time.Hour)
	forged, forgedKey := mint(t, "", certs.RoleWorker, "w-real", now.Add(-time.Hour), now.Add(time.Hour))
	if rc, _ := certs.ParseCertificatePEM(realCert); rc.Subject.CommonName != "w-real" {
		t.Fatal("setup")
	}
	senderCert, senderKey, _ := e.ca.IssueClient(certs.RoleSender, "s1", time.Hour)
	okCert, okKey, _ := e.ca.IssueClient(certs.RoleWorker, "w-ok", time.Hour)

	for _, tc := range []struct {
		name      string
		cert, key []byte
		queues    []string
		code      codes.Code
		log       string
	}{
		{"expired", nil, nil, []string{"service"}, codes.Unauthenticated, "expired"},
		{"not yet valid", nil, nil, []string{"service"}, codes.Unauthenticated, "not yet valid"},
		{"revoked", revCert, revKey, []string{"service"}, codes.Unauthenticated, "certificate revoked"},
		{"other CA", nil, nil, []string{"service"}, codes.Unauthenticated, "unknown authority"},
		{"wrong role", senderCert, senderKey, []string{"service"}, codes.PermissionDenied, `has role \"sender\"`},
		{"queue not allowed", okCert, okKey, []string{"hostgroup_secret"}, codes.PermissionDenied, `not allowed to work on queue \"hostgroup_secret\"`},
		{"self-signed copy", forged, forgedKey, []string{"service"}, codes.Unauthenticated, "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, key := tc.cert, tc.key
			switch tc.name {
			case "expired":
				cert, key = mint(t, e.caDir, certs.RoleWorker, "w-exp", now.Add(-2*time.Hour), now.Add(-time.Hour))
			case "not yet valid":
				cert, key = mint(t, e.caDir, certs.RoleWorker, "w-future", now.Add(time.Hour), now.Add(2*time.Hour))
			case "other CA":
				cert, key = mint(t, other, certs.RoleWorker, "w-other", now.Add(-time.Hour), now.Add(time.Hour))
			}
			before := len(logs.String())
			st, w, _ := e.session(e.dialAnyCert(cert, key), hello(1, tc.queues...))
			if w != nil {
				t.Fatal("session accepted")
			}
			_, err := st.Recv()
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
			if l := logs.String()[before:]; !strings.Contains(l, tc.log) {
				t.Fatalf("bridge log lacks %q:\n%s", tc.log, l)
			}
		})
	}
}

// TestRevokingClosesLiveSession revokes the certificate of an attached
// worker that holds a job: the session ends within seconds and the job goes
// back to the queue.
func TestRevokingClosesLiveSession(t *testing.T) {
	e, logs := newCertsEnv(t, nil)
	e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
	crt, key, err := e.ca.IssueClient(certs.RoleWorker, "w-victim", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st, w, _ := e.session(e.dialPair(crt, key), hello(1, "service"))
	if w == nil {
		t.Fatal("session refused")
	}
	if m := recvMsg(t, st, 5*time.Second); m.GetJob() == nil {
		t.Fatalf("got %v, want a job", m)
	}
	if e.fake.queued("service") != 0 {
		t.Fatal("job not grabbed")
	}
	start := time.Now()
	if _, err := e.ca.RevokeSerialOrName("w-victim", "stolen"); err != nil {
		t.Fatal(err)
	}
	// The watcher notices revoked.json; no explicit reload.
	waitStreamEnds(t, st, 5*time.Second, "session still open 5s after revocation")
	eventually(t, 5*time.Second-time.Since(start), "job requeued", func() bool { return e.fake.queued("service") == 1 })
	// The close is logged after gearmand saw the connection go, so the
	// requeue can be observed before the line is written.
	eventually(t, 5*time.Second, "close reason logged", func() bool {
		return strings.Contains(logs.String(), revokedSessionReason)
	})
}

// TestReloadKeepsSessions reloads everything while a session is attached.
func TestReloadKeepsSessions(t *testing.T) {
	e, _ := newCertsEnv(t, nil)
	crt, key, _ := e.ca.IssueClient(certs.RoleWorker, "w1", time.Hour)
	st, w, _ := e.session(e.dialPair(crt, key), hello(1, "service"))
	if w == nil {
		t.Fatal("session refused")
	}
	if err := e.b.Reload(); err != nil {
		t.Fatal(err)
	}
	// A new bridge certificate on disk is picked up by the watcher for new
	// handshakes.
	newCrt, newKey, err := e.ca.IssueServer([]string{"bridge.test"}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(e.caDir, "bridge.key"), newKey, 0o600)
	writeFile(t, filepath.Join(e.caDir, "bridge.crt"), newCrt, 0o644)
	want, _ := certs.ParseCertificatePEM(newCrt[:bytes.Index(newCrt, []byte("-----END CERTIFICATE-----"))+len("-----END CERTIFICATE-----\n")])
	eventually(t, 5*time.Second, "new bridge certificate served", func() bool {
		var p peer.Peer
		cc := e.dialPair(crt, key)
		_, _ = pb.NewAdminServiceClient(cc).GetStatus(context.Background(), &pb.GetStatusRequest{}, grpc.Peer(&p))
		_ = cc.Close()
		ti, ok := p.AuthInfo.(credentials.TLSInfo)
		return ok && len(ti.State.PeerCertificates) > 0 && ti.State.PeerCertificates[0].SerialNumber.Cmp(want.SerialNumber) == 0
	})
	e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
	if m := recvMsg(t, st, 5*time.Second); m.GetJob() == nil {
		t.Fatalf("got %v, want a job after the reloads", m)
	}
}

// TestAuthzFileWatched: a changed --authz file takes effect without a
// signal.
func TestAuthzFileWatched(t *testing.T) {
	az := filepath.Join(t.TempDir(), "authz.yaml")
	writeFile(t, az, []byte("rules:\n  - {identity: \"w1\", role: worker, queues: [\"host\"]}\n"), 0o644)
	e, logs := newCertsEnv(t, func(c *Config) {
		c.Authz = nil
		c.AuthzFile = az
	})
	crt, key, _ := e.ca.IssueClient(certs.RoleWorker, "w1", time.Hour)
	cc := e.dialPair(crt, key)
	if _, w, _ := e.session(cc, hello(1, "service")); w != nil {
		t.Fatal("queue allowed before the change")
	}
	writeFile(t, az, []byte("rules:\n  - {identity: \"w1\", role: worker, queues: [\"host\", \"service\"]}\n"), 0o644)
	eventually(t, 5*time.Second, "authz reloaded", func() bool { return e.b.authz().AllowQueue("w1", "service") })
	if _, w, _ := e.session(cc, hello(1, "service")); w == nil {
		t.Fatalf("queue still refused after the change:\n%s", logs)
	}
	// A broken file keeps the rules in force.
	writeFile(t, az, []byte("rules: [{identity: \"\", role: nobody}]\n"), 0o644)
	eventually(t, 5*time.Second, "reload error logged", func() bool { return strings.Contains(logs.String(), "keeping the old authz rules") })
	if !e.b.authz().AllowQueue("w1", "service") {
		t.Fatal("a broken authz file dropped the rules")
	}
}

// renewCall renews the certificate cc presents.
func renewCall(cc *grpc.ClientConn) (certPEM, keyPEM []byte, err error) {
	keyPEM, csr, err := certs.NewKeyAndCSR()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := pb.NewEnrollServiceClient(cc).Renew(ctx, &pb.RenewRequest{CsrPem: csr})
	return resp.GetCertificatePem(), keyPEM, err
}

// refusedSession opens a worker session with the pair and requires the
// bridge to refuse it as revoked.
func (e *testEnv) refusedSession(t *testing.T, what string, cc *grpc.ClientConn) {
	t.Helper()
	st, w, _ := e.session(cc, hello(1, "service"))
	if w != nil {
		t.Fatalf("%s: session accepted", what)
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("%s: err = %v, want Unauthenticated, revoked", what, err)
	}
}

// TestRevokeByNameRefusesRenewedCertificates: revoking a name refuses the
// certificate renewed from the original before the revocation, refuses a
// renewal asked for right after it (before the bridge reloaded its list),
// and refuses a certificate of the identity that no list knows.
func TestRevokeByNameRefusesRenewedCertificates(t *testing.T) {
	// A slow watcher: only the on-disk check refuses the late renewal.
	e, logs := newCertsEnv(t, func(c *Config) { c.WatchInterval = time.Hour })
	crt, key, err := e.ca.IssueClient(certs.RoleWorker, "w-r", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	renewed, renewedKey, err := renewCall(e.dialPair(crt, key))
	if err != nil {
		t.Fatalf("renewal before the revocation: %v", err)
	}
	renewedConn := e.dialPair(renewed, renewedKey)
	st, w, _ := e.session(renewedConn, hello(1, "service"))
	if w == nil {
		t.Fatal("session with the renewed certificate refused")
	}
	if _, err := e.ca.RevokeName("w-r", "stolen"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := renewCall(renewedConn); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("renewal after the revocation: err = %v, want Unauthenticated", err)
	}
	if !strings.Contains(logs.String(), "refused renewal") {
		t.Fatalf("refusal not logged:\n%s", logs)
	}
	if err := e.b.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err == nil {
		t.Fatal("the renewed certificate's session survived the revocation")
	}
	now := time.Now()
	unlistedCrt, unlistedKey := mint(t, e.caDir, certs.RoleWorker, "w-r", now.Add(-time.Minute), now.Add(time.Hour))
	for _, tc := range []struct {
		what     string
		crt, key []byte
	}{
		{"original", crt, key},
		{"renewed before the revocation", renewed, renewedKey},
		{"unlisted", unlistedCrt, unlistedKey},
	} {
		e.refusedSession(t, tc.what, e.dialPair(tc.crt, tc.key))
	}
}

// TestRenewIsRateLimitedPerIdentity: an identity renews at most a burst of
// renewalBurst at once; others are not affected.
func TestRenewIsRateLimitedPerIdentity(t *testing.T) {
	e, _ := newCertsEnv(t, nil)
	crt, key, _ := e.ca.IssueClient(certs.RoleWorker, "w-busy", time.Hour)
	cc := e.dialPair(crt, key)
	for i := range renewBurst {
		if _, _, err := renewCall(cc); err != nil {
			t.Fatalf("renewal %d: %v", i+1, err)
		}
	}
	if _, _, err := renewCall(cc); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("renewal beyond the burst: err = %v, want ResourceExhausted", err)
	}
	other, otherKey, _ := e.ca.IssueClient(certs.RoleWorker, "w-calm", time.Hour)
	if _, _, err := renewCall(e.dialPair(other, otherKey)); err != nil {
		t.Fatalf("another identity: %v", err)
	}
}

func TestRenewLimiterRefills(t *testing.T) {
	l := newRateLimiter()
	now := time.Unix(1000, 0)
	for range renewBurst {
		if !l.allowRenew("worker/w", now) {
			t.Fatal("refused within the burst")
		}
	}
	if l.allowRenew("worker/w", now.Add(renewInterval/2)) {
		t.Fatal("allowed beyond the burst")
	}
	if !l.allowRenew("worker/w", now.Add(renewInterval)) {
		t.Fatal("not refilled after the interval")
	}
}

// TestEnrollLimiterFloodFromOneAddress: an address sending as fast as it
// can does not keep another address from enrolling.
func TestEnrollLimiterFloodFromOneAddress(t *testing.T) {
	l := newRateLimiter()
	start := time.Unix(1000, 0)
	now := start
	for i := range 6000 { // a minute at 100 requests a second
		now = start.Add(time.Duration(i) * 10 * time.Millisecond)
		l.allow("192.0.2.66", now)
	}
	for i := range 3 {
		if !l.allow("198.51.100.7", now.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("request %d from another address refused during the flood", i+1)
		}
	}
	// The global limit still holds against many addresses at once.
	refused := 0
	for i := range 500 {
		if !l.allow(fmt.Sprintf("203.0.113.%d", i%250), now) {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no global limit")
	}
}

// TestEnrollLimiterGroupsIPv6Networks: an IPv6 host can use any address of
// its /64, so the /64 is the address the limit counts.
func TestEnrollLimiterGroupsIPv6Networks(t *testing.T) {
	l := newRateLimiter()
	now := time.Unix(1000, 0)
	allowed := 0
	for i := range 100 {
		if l.allow(fmt.Sprintf("2001:db8::%x", i+1), now) {
			allowed++
		}
	}
	if allowed != enrollPerIPBurst {
		t.Fatalf("%d requests from one /64 allowed, want %d", allowed, enrollPerIPBurst)
	}
	if !l.allow("2001:db8:0:1::1", now) {
		t.Fatal("the next /64 was refused")
	}
}

// newRevocationsEnv is a bridge without a certs directory (--tls-* files)
// that reads the revocation list in the CA directory (--revocations).
func newRevocationsEnv(t *testing.T) (*testEnv, *syncBuffer) {
	t.Helper()
	return newServedEnv(t, func(dir string, c *Config) {
		c.RevocationsFile = filepath.Join(dir, certs.RevocationsFile)
		c.Authz = &Authz{Rules: []Rule{{Identity: "w*", Role: RoleWorker, Queues: []string{"service", "host"}}}}
	})
}

// TestRevocationsFileWithoutCertsDir: a bridge started with --tls-* files
// and --revocations closes the session of a revoked identity within
// seconds, and refuses it afterwards, also on the connection it already
// has and with a certificate no list knows.
func TestRevocationsFileWithoutCertsDir(t *testing.T) {
	e, logs := newRevocationsEnv(t)
	e.fake.add("service", serviceJob(t, "h", "s", time.Minute))
	crt, key, err := e.ca.IssueClient(certs.RoleWorker, "w-x", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cc := e.dialPair(crt, key)
	st, w, _ := e.session(cc, hello(1, "service"))
	if w == nil {
		t.Fatal("session refused")
	}
	if m := recvMsg(t, st, 5*time.Second); m.GetJob() == nil {
		t.Fatalf("got %v, want a job", m)
	}
	okCrt, okKey, _ := e.ca.IssueClient(certs.RoleWorker, "w-y", time.Hour)
	_, okW, _ := e.session(e.dialPair(okCrt, okKey), hello(1, "host"))
	if okW == nil {
		t.Fatal("control session refused")
	}

	start := time.Now()
	if _, err := e.ca.RevokeName("w-x", "stolen"); err != nil {
		t.Fatal(err)
	}
	waitStreamEnds(t, st, 2*time.Second, "session still open 2s after the revocation")
	eventually(t, 2*time.Second-time.Since(start), "job requeued", func() bool { return e.fake.queued("service") == 1 })
	eventually(t, 5*time.Second, "close reason logged", func() bool { return strings.Contains(logs.String(), revokedSessionReason) })

	// The same connection, a new one, and a certificate no list knows.
	e.refusedSession(t, "same connection", cc)
	e.refusedSession(t, "new connection", e.dialPair(crt, key))
	now := time.Now()
	unlistedCrt, unlistedKey := mint(t, e.caDir, certs.RoleWorker, "w-x", now.Add(-time.Minute), now.Add(time.Hour))
	e.refusedSession(t, "unlisted", e.dialPair(unlistedCrt, unlistedKey))
	if _, w, _ := e.session(e.dialPair(okCrt, okKey), hello(1, "host")); w == nil {
		t.Fatal("another identity was refused")
	}
}

func TestRevocationsFileConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Key = testKey
	cfg.CertsDir = dir
	cfg.RevocationsFile = filepath.Join(dir, "other.json")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "revocations") {
		t.Fatalf("Validate = %v, want an error about revocations", err)
	}
	cfg.RevocationsFile = filepath.Join(dir, ".", certs.RevocationsFile)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the certs directory's own list: %v", err)
	}
	// A list that does not parse stops the bridge from starting.
	bad := filepath.Join(t.TempDir(), "revoked.json")
	writeFile(t, bad, []byte("{"), 0o644)
	cfg = DefaultConfig()
	cfg.Key = testKey
	cfg.RevocationsFile = bad
	if _, err := New(cfg, Deps{Gearman: newFakeGearman(), Registerer: prometheus.NewRegistry()}); err == nil {
		t.Fatal("New accepted a broken revocation list")
	}
}

// TestRevokedIdentityClosesRenewedSession: a session that the bridge moved
// to the certificate it renewed for it is closed when the identity is
// revoked, even by a list that names no serial.
func TestRevokedIdentityClosesRenewedSession(t *testing.T) {
	e, _ := newCertsEnv(t, nil)
	crt, key, err := e.ca.IssueClient(certs.RoleWorker, "w-moved", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cc := e.dialPair(crt, key)
	st, w, _ := e.session(cc, hello(1, "service"))
	if w == nil {
		t.Fatal("session refused")
	}
	if _, _, err := renewCall(cc); err != nil {
		t.Fatal(err)
	}
	// A list with the identity only, as a copy edited by hand or written
	// by another tool would be.
	rv, err := certs.LoadRevocations(filepath.Join(e.caDir, certs.RevocationsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := rv.RevokeIdentity(certs.RoleWorker, "w-moved", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := rv.Save(); err != nil {
		t.Fatal(err)
	}
	waitStreamEnds(t, st, 3*time.Second, "session on the renewed certificate survived the revocation of its identity")
}

// waitStreamEnds reads st until the bridge ends it, and fails the test with
// msg when that takes longer than timeout.
func waitStreamEnds(t *testing.T, st pb.WorkerService_WorkClient, timeout time.Duration, msg string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case <-errc:
	case <-time.After(timeout):
		t.Fatal(msg)
	}
}
