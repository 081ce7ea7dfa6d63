package enroll

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// testBridge is a real bridge with a certs directory on loopback.
type testBridge struct {
	b     *bridge.Bridge
	addr  string
	caDir string
	ca    *certs.CA
}

func startBridge(t *testing.T, lifetime time.Duration) *testBridge {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.InitCA(dir, certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.IssueServer([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"bridge.crt": crt, "bridge.key": key} {
		if err := certs.WriteFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := certs.NewReloader(filepath.Join(dir, "bridge.crt"), filepath.Join(dir, "bridge.key"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := bridge.DefaultConfig()
	cfg.Key = "test_key_test_key"
	cfg.Servers = []string{"127.0.0.1:1"} // never dialled: no worker sessions here
	cfg.CertsDir = dir
	cfg.CertLifetime = lifetime
	// Certificates issued by hand (certs issue) need an operator's rule.
	az, err := bridge.ParseAuthz([]byte("rules:\n  - {identity: \"issued-*\", role: worker, queues: [service]}\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Authz = az
	cfg.DrainTimeout = time.Second
	b, err := bridge.New(cfg, bridge.Deps{TLS: r})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := b.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, lis, tc) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &testBridge{b: b, addr: lis.Addr().String(), caDir: dir, ca: ca}
}

func (tb *testBridge) token(t *testing.T, role certs.Role, name string) string {
	t.Helper()
	spec := certs.TokenSpec{Role: role, Name: name, Queues: []string{"service"}}
	if role == certs.RoleSender {
		spec.Queues, spec.Hosts = nil, []string{"*"}
	}
	tok, _, err := tb.ca.Tokens().Create(spec, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEnrollWritesStateDir(t *testing.T) {
	tb := startBridge(t, 0)
	state := filepath.Join(t.TempDir(), "state")
	opts := Options{Bridge: tb.addr, Token: tb.token(t, certs.RoleWorker, "site-a"), CAFingerprint: tb.ca.Fingerprint(), StateDir: state, Role: certs.RoleWorker}
	pair, err := Enroll(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if pair.Role != certs.RoleWorker || pair.Name != "site-a" {
		t.Fatalf("enrolled as %s/%s", pair.Role, pair.Name)
	}
	crt, key, ca := Paths(state)
	for path, mode := range map[string]os.FileMode{crt: 0o644, key: 0o600, ca: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	caPEM, _ := os.ReadFile(ca)
	if !bytes.Equal(caPEM, tb.ca.CertPEM()) {
		t.Error("stored CA differs from the bridge's CA")
	}
	// The stored files make a working client config.
	r, err := certs.NewReloader(crt, key, ca)
	if err != nil {
		t.Fatal(err)
	}
	if r.Leaf().NotAfter.Sub(time.Now()) < 80*24*time.Hour {
		t.Errorf("default lifetime too short: %v", r.Leaf().NotAfter)
	}

	// An enrolled state directory is not overwritten.
	opts.Token = tb.token(t, certs.RoleWorker, "site-a")
	if _, err := Enroll(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "enrolled already") {
		t.Fatalf("second enrollment into the same dir: %v", err)
	}
}

func TestEnrollRefusals(t *testing.T) {
	tb := startBridge(t, 0)
	other, err := certs.InitCA(t.TempDir(), certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts func(o *Options)
		want string
	}{
		{"wrong fingerprint", func(o *Options) { o.CAFingerprint = other.Fingerprint() }, "fingerprint"},
		{"token for a sender", func(o *Options) { o.Token = tb.token(t, certs.RoleSender, "s1") }, "token was for a sender"},
		{"used token", func(o *Options) {
			tok := tb.token(t, certs.RoleWorker, "w-used")
			if _, err := Enroll(context.Background(), Options{Bridge: tb.addr, Token: tok, CAFingerprint: tb.ca.Fingerprint(), StateDir: t.TempDir(), Role: certs.RoleWorker}); err != nil {
				t.Fatal(err)
			}
			o.Token = tok
		}, "Unauthenticated"},
		{"malformed token", func(o *Options) { o.Token = "nope" }, "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			o := Options{Bridge: tb.addr, Token: tb.token(t, certs.RoleWorker, "w1"), CAFingerprint: tb.ca.Fingerprint(),
				StateDir: state, Role: certs.RoleWorker, Timeout: 5 * time.Second}
			tc.opts(&o)
			_, err := Enroll(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(state); len(entries) != 0 {
				t.Fatalf("files written after a refusal: %v", entries)
			}
		})
	}
}

func TestRenewerRenewsOverConnection(t *testing.T) {
	// 90 s certificates are due for renewal after 60 s; the test moves the
	// renewer's clock instead of waiting.
	tb := startBridge(t, 90*time.Second)
	state := t.TempDir()
	if _, err := Enroll(context.Background(), Options{Bridge: tb.addr, Token: tb.token(t, certs.RoleWorker, "w-renew"),
		CAFingerprint: tb.ca.Fingerprint(), StateDir: state, Role: certs.RoleWorker}); err != nil {
		t.Fatal(err)
	}
	crt, key, ca := Paths(state)
	r, err := certs.NewReloader(crt, key, ca)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(tb.addr, grpc.WithTransportCredentials(credentials.NewTLS(r.ClientConfig(""))))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	rn := NewRenewer(state, r, nil, time.Hour)
	old := r.Leaf()
	if did, err := rn.Check(context.Background(), cc); err != nil || did {
		t.Fatalf("fresh certificate renewed: %v %v", did, err)
	}
	rn.now = func() time.Time { return time.Now().Add(65 * time.Second) }
	did, err := rn.Check(context.Background(), cc)
	if err != nil || !did {
		t.Fatalf("due certificate not renewed: %v %v", did, err)
	}
	if r.Leaf().SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatal("reloader still holds the old certificate")
	}
	if role, name, _ := certs.IdentityOf(r.Leaf()); role != certs.RoleWorker || name != "w-renew" {
		t.Fatalf("renewed as %s/%s", role, name)
	}
	if _, err := os.Stat(key + nextSuffix); err == nil {
		t.Fatal("leftover key.pem.next")
	}
	// The renewed pair on disk works for a new connection.
	if _, err := certs.NewReloader(crt, key, ca); err != nil {
		t.Fatal(err)
	}

	// The next renewal comes when the connection's own certificate is no
	// longer accepted (expired, here: revoked). The renewer falls back to a
	// new connection with the current certificate.
	if _, err := tb.ca.RevokeSerialOrName(certs.SerialOf(old), "superseded"); err != nil {
		t.Fatal(err)
	}
	if err := tb.b.Reload(); err != nil {
		t.Fatal(err)
	}
	second := r.Leaf()
	rn.now = func() time.Time { return time.Now().Add(130 * time.Second) }
	if did, err := rn.Check(context.Background(), cc); err != nil || !did {
		t.Fatalf("second renewal: %v %v", did, err)
	}
	if r.Leaf().SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Fatal("second renewal did not replace the certificate")
	}
}

func TestRecoverFinishesInterruptedRenewal(t *testing.T) {
	ca, err := certs.InitCA(t.TempDir(), certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldCert, oldKey, _ := ca.IssueClient(certs.RoleWorker, "w", time.Hour)
	newCert, newKey, _ := ca.IssueClient(certs.RoleWorker, "w", time.Hour)
	for _, tc := range []struct {
		name     string
		setup    func(dir string)
		wantCert []byte
	}{
		{"both pending", func(dir string) {
			write(t, filepath.Join(dir, KeyFile+nextSuffix), newKey)
			write(t, filepath.Join(dir, CertFile+nextSuffix), newCert)
		}, newCert},
		{"key renamed", func(dir string) {
			write(t, filepath.Join(dir, KeyFile), newKey)
			write(t, filepath.Join(dir, CertFile+nextSuffix), newCert)
		}, newCert},
		{"only key written", func(dir string) {
			write(t, filepath.Join(dir, KeyFile+nextSuffix), newKey)
		}, oldCert},
		{"nothing pending", func(string) {}, oldCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, CertFile), oldCert)
			write(t, filepath.Join(dir, KeyFile), oldKey)
			tc.setup(dir)
			if err := Recover(dir); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(dir, CertFile))
			if !bytes.Equal(got, tc.wantCert) {
				t.Fatal("unexpected certificate after recovery")
			}
			k, _ := os.ReadFile(filepath.Join(dir, KeyFile))
			c, _ := os.ReadFile(filepath.Join(dir, CertFile))
			if _, err := tlsPair(c, k); err != nil {
				t.Fatalf("pair does not match after recovery: %v", err)
			}
			for _, f := range []string{KeyFile + nextSuffix, CertFile + nextSuffix} {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					t.Fatalf("%s left behind", f)
				}
			}
		})
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := certs.WriteFileAtomic(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRenewerRenewsIssuedFiles: a certificate from certs issue, kept in
// files of the operator's choice, renews like an enrolled one: the new key
// and certificate replace the files, the lock sits beside them, and the
// CA file is only read.
func TestRenewerRenewsIssuedFiles(t *testing.T) {
	tb := startBridge(t, 90*time.Second)
	dir := t.TempDir()
	crtPEM, keyPEM, err := tb.ca.IssueClient(certs.RoleWorker, "issued-1", 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	files := IssuedFiles(filepath.Join(dir, "issued-1.crt"), filepath.Join(dir, "issued-1.key"), filepath.Join(tb.caDir, certs.CACertFile))
	write(t, files.Cert, crtPEM)
	write(t, files.Key, keyPEM)
	caBefore, _ := os.ReadFile(files.CA)
	if err := files.CheckWritable(); err != nil {
		t.Fatal(err)
	}
	r, err := OpenFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(tb.addr, grpc.WithTransportCredentials(credentials.NewTLS(r.ClientConfig(""))))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	rn := NewFilesRenewer(files, r, nil, time.Hour)
	old := r.Leaf()
	rn.now = func() time.Time { return time.Now().Add(65 * time.Second) }
	if did, err := rn.Check(context.Background(), cc); err != nil || !did {
		t.Fatalf("due certificate not renewed: %v %v", did, err)
	}
	if r.Leaf().SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatal("reloader still holds the old certificate")
	}
	onDisk, err := certs.NewReloader(files.Cert, files.Key, files.CA)
	if err != nil {
		t.Fatal(err)
	}
	if onDisk.Leaf().SerialNumber.Cmp(r.Leaf().SerialNumber) != 0 {
		t.Fatal("the files do not hold the renewed certificate")
	}
	if role, name, _ := certs.IdentityOf(onDisk.Leaf()); role != certs.RoleWorker || name != "issued-1" {
		t.Fatalf("renewed as %s/%s", role, name)
	}
	if fi, err := os.Stat(files.Key); err != nil || fi.Mode().Perm() != certs.KeyFileMode {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if _, err := os.Stat(files.Cert + ".lock"); err != nil {
		t.Fatalf("no lock beside the certificate: %v", err)
	}
	if caAfter, _ := os.ReadFile(files.CA); !bytes.Equal(caAfter, caBefore) {
		t.Fatal("the CA file was changed")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), nextSuffix) || strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

// TestCheckWritable: renewal needs to replace the files, which takes a
// writable directory.
func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	missing := IssuedFiles(filepath.Join(dir, "nope", "w.crt"), filepath.Join(dir, "w.key"), filepath.Join(dir, "ca.crt"))
	if err := missing.CheckWritable(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "nope")) {
		t.Errorf("missing directory: %v", err)
	}
	if os.Geteuid() == 0 {
		t.Skip("root writes to read-only directories")
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	files := IssuedFiles(filepath.Join(ro, "w.crt"), filepath.Join(ro, "w.key"), filepath.Join(dir, "ca.crt"))
	if err := files.CheckWritable(); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("read-only directory: %v", err)
	}
}

// TestEnrollRetriesWhenRateLimited: after a burst of refused attempts from
// this address the bridge answers ResourceExhausted; enrolling waits and
// asks again instead of failing, and the token still works.
func TestEnrollRetriesWhenRateLimited(t *testing.T) {
	tb := startBridge(t, 0)
	limited := false
	for range 30 {
		cc, err := grpc.NewClient(tb.addr, grpc.WithTransportCredentials(credentials.NewTLS(mustPinned(t, tb))))
		if err != nil {
			t.Fatal(err)
		}
		_, err = pb.NewEnrollServiceClient(cc).Enroll(context.Background(), &pb.EnrollRequest{Token: "bad", CsrPem: []byte("x")})
		cc.Close()
		if status.Code(err) == codes.ResourceExhausted {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("the bridge never rate-limited this address")
	}
	state := filepath.Join(t.TempDir(), "state")
	opts := Options{Bridge: tb.addr, Token: tb.token(t, certs.RoleWorker, "site-r"), CAFingerprint: tb.ca.Fingerprint(), StateDir: state, Role: certs.RoleWorker, Timeout: 10 * time.Second}
	if _, err := Enroll(context.Background(), opts); err != nil {
		t.Fatalf("enroll while rate-limited: %v", err)
	}
}

func mustPinned(t *testing.T, tb *testBridge) *tls.Config {
	t.Helper()
	tc, err := certs.PinnedClientTLSConfig(tb.ca.Fingerprint(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return tc
}
