package certs

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// snapshot is the content of every regular file below dir, so that a test
// can check that a refused command changed nothing.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			m[path] = string(b)
		} else if d.Type()&fs.ModeSymlink != 0 {
			m[path] = "symlink"
		} else if d.IsDir() {
			m[path] = "dir"
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return m
}

func TestIssueFilesRefusals(t *testing.T) {
	long := strings.Repeat("a", 65)
	tests := []struct {
		name    string
		setup   func(t *testing.T, ca *CA, out string)
		req     IssueRequest
		wantErr string
		is      error
	}{
		{name: "empty name", req: IssueRequest{Role: RoleWorker, Name: ""}, wantErr: "empty name"},
		{name: "slash", req: IssueRequest{Role: RoleWorker, Name: "a/b"}, wantErr: "not allowed"},
		{name: "dot dot", req: IssueRequest{Role: RoleWorker, Name: ".."}, wantErr: "not allowed"},
		{name: "traversal", req: IssueRequest{Role: RoleWorker, Name: "../evil"}, wantErr: "not allowed"},
		{name: "absolute", req: IssueRequest{Role: RoleWorker, Name: "/etc/evil"}, wantErr: "not allowed"},
		{name: "leading dot", req: IssueRequest{Role: RoleWorker, Name: ".hidden"}, wantErr: "not allowed"},
		{name: "backslash", req: IssueRequest{Role: RoleWorker, Name: `a\b`}, wantErr: "not allowed"},
		{name: "space", req: IssueRequest{Role: RoleWorker, Name: "a b"}, wantErr: "not allowed"},
		{name: "control character", req: IssueRequest{Role: RoleSender, Name: "a\nb"}, wantErr: "not allowed"},
		{name: "too long", req: IssueRequest{Role: RoleAdmin, Name: long}, wantErr: "at most 64"},
		{name: "reserved ca", req: IssueRequest{Role: RoleWorker, Name: "ca"}, wantErr: "reserved", is: ErrNameReserved},
		{name: "reserved CA", req: IssueRequest{Role: RoleAdmin, Name: "CA"}, wantErr: "reserved", is: ErrNameReserved},
		{name: "bridge traversal", req: IssueRequest{Role: RoleBridge, Name: "../bridge"}, wantErr: "not allowed"},
		{name: "bridge reserved", req: IssueRequest{Role: RoleBridge, Name: "ca", SANs: []string{"localhost"}}, is: ErrNameReserved},
		{name: "bridge bad SAN", req: IssueRequest{Role: RoleBridge, Name: "b", SANs: []string{"*.example.com"}}, wantErr: "valid DNS name"},
		{name: "SAN on a worker", req: IssueRequest{Role: RoleWorker, Name: "w", SANs: []string{"localhost"}}, wantErr: "bridge"},
		{name: "unknown role", req: IssueRequest{Role: "root", Name: "w"}, wantErr: "role"},
		{name: "negative lifetime", req: IssueRequest{Role: RoleWorker, Name: "w", Lifetime: -time.Hour}, wantErr: "negative"},
		{
			name: "name of a worker taken by a sender",
			setup: func(t *testing.T, ca *CA, out string) {
				mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "shared"})
			},
			req: IssueRequest{Role: RoleSender, Name: "shared", Force: true},
			is:  ErrNameTaken,
		},
		{
			name: "name of the bridge taken by a worker",
			setup: func(t *testing.T, ca *CA, out string) {
				mustIssue(t, ca, IssueRequest{Role: RoleBridge, Name: "bridge", SANs: []string{"localhost"}})
			},
			req: IssueRequest{Role: RoleWorker, Name: "bridge", Force: true},
			is:  ErrNameTaken,
		},
		{
			name: "name of the bridge, other directory",
			setup: func(t *testing.T, ca *CA, out string) {
				mustIssue(t, ca, IssueRequest{Role: RoleBridge, Name: "bridge", SANs: []string{"localhost"}})
			},
			req: IssueRequest{Role: RoleAdmin, Name: "bridge", OutDir: "elsewhere"},
			is:  ErrNameTaken,
		},
		{
			name:  "existing files",
			setup: func(t *testing.T, ca *CA, out string) { mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "w1"}) },
			req:   IssueRequest{Role: RoleWorker, Name: "w1"},
			is:    fs.ErrExist, wantErr: "--force",
		},
		{
			name: "existing key only",
			setup: func(t *testing.T, ca *CA, out string) {
				writeTest(t, filepath.Join(out, "w2.key"), "precious")
			},
			req: IssueRequest{Role: RoleWorker, Name: "w2"},
			is:  fs.ErrExist,
		},
		{
			name: "symlink to a file outside",
			setup: func(t *testing.T, ca *CA, out string) {
				target := filepath.Join(filepath.Dir(out), "victim")
				writeTest(t, target, "precious")
				if err := os.Symlink(target, filepath.Join(out, "w3.crt")); err != nil {
					t.Fatal(err)
				}
			},
			req: IssueRequest{Role: RoleWorker, Name: "w3"},
			is:  fs.ErrExist,
		},
		{
			name: "force over a directory",
			setup: func(t *testing.T, ca *CA, out string) {
				if err := os.Mkdir(filepath.Join(out, "w4.crt"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			req:     IssueRequest{Role: RoleWorker, Name: "w4", Force: true},
			wantErr: "not a regular file",
		},
		{
			name: "output directory is a file",
			setup: func(t *testing.T, ca *CA, out string) {
				writeTest(t, filepath.Join(out, "plain"), "x")
			},
			req:     IssueRequest{Role: RoleWorker, Name: "w5", OutDir: "plain"},
			wantErr: "not a directory",
		},
		{
			name: "revoked identity",
			setup: func(t *testing.T, ca *CA, out string) {
				mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "gone"})
				if _, err := ca.RevokeName("gone", "test"); err != nil {
					t.Fatal(err)
				}
			},
			req: IssueRequest{Role: RoleWorker, Name: "gone", Force: true},
			is:  ErrIdentityRevoked, wantErr: "reenroll",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newTestCA(t)
			out := ca.Dir()
			if tt.setup != nil {
				tt.setup(t, ca, out)
			}
			if tt.req.OutDir != "" {
				tt.req.OutDir = filepath.Join(ca.Dir(), tt.req.OutDir)
			}
			parent := filepath.Dir(ca.Dir())
			before := snapshot(t, parent)
			caKey := readFile(t, filepath.Join(ca.Dir(), CAKeyFile))
			_, err := ca.IssueFiles(tt.req)
			if err == nil {
				t.Fatal("IssueFiles succeeded")
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if got := readFile(t, filepath.Join(ca.Dir(), CAKeyFile)); !bytes.Equal(got, caKey) {
				t.Fatal("ca.key changed")
			}
			after := snapshot(t, parent)
			for p, v := range after {
				if w, ok := before[p]; !ok {
					t.Errorf("refusal created %s", p)
				} else if w != v {
					t.Errorf("refusal changed %s", p)
				}
			}
			for p := range before {
				if _, ok := after[p]; !ok {
					t.Errorf("refusal removed %s", p)
				}
			}
		})
	}
}

func mustIssue(t *testing.T, ca *CA, req IssueRequest) IssuedFiles {
	t.Helper()
	f, err := ca.IssueFiles(req)
	if err != nil {
		t.Fatalf("IssueFiles(%+v): %v", req, err)
	}
	return f
}

func writeTest(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestIssueFilesWrites(t *testing.T) {
	ca := newTestCA(t)
	out := filepath.Join(t.TempDir(), "new", "dir")
	f := mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "w1", OutDir: out})
	if f.CertFile != filepath.Join(out, "w1.crt") || f.KeyFile != filepath.Join(out, "w1.key") {
		t.Fatalf("files %s %s", f.CertFile, f.KeyFile)
	}
	checkMode(t, f.KeyFile, KeyFileMode)
	checkMode(t, f.CertFile, CertFileMode)
	if _, err := NewReloader(f.CertFile, f.KeyFile, filepath.Join(ca.Dir(), CACertFile)); err != nil {
		t.Fatalf("issued pair: %v", err)
	}
	issued, _ := ca.Issued()
	if len(issued) != 1 || issued[0].Serial != SerialOf(f.Cert) || issued[0].Name != "w1" {
		t.Fatalf("issued.json %+v", issued)
	}

	// --force replaces the pair and records the new certificate.
	g := mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "w1", OutDir: out, Force: true})
	if g.Cert.SerialNumber.Cmp(f.Cert.SerialNumber) == 0 {
		t.Fatal("--force kept the certificate")
	}
	if issued, _ := ca.Issued(); len(issued) != 2 {
		t.Fatalf("issued.json has %d entries, want 2", len(issued))
	}

	// The bridge's identity is its name, whatever its SANs are.
	b := mustIssue(t, ca, IssueRequest{Role: RoleBridge, Name: "bridge", SANs: []string{"localhost", "127.0.0.1"}})
	checkLeaf(t, ca, b.Cert, RoleBridge, "bridge", x509.ExtKeyUsageServerAuth)
	if !slices.Equal(b.Cert.DNSNames, []string{"localhost"}) || len(b.Cert.IPAddresses) != 1 {
		t.Fatalf("SANs %v %v", b.Cert.DNSNames, b.Cert.IPAddresses)
	}
	chain, _ := parseCertsPEM(readFile(t, b.CertFile))
	if len(chain) != 2 || !chain[1].Equal(ca.Certificate()) {
		t.Fatal("bridge certificate file does not end with the CA")
	}
	d := mustIssue(t, ca, IssueRequest{Role: RoleBridge, Name: "gw.example.com"})
	if !slices.Contains(d.Cert.DNSNames, "gw.example.com") || !slices.Contains(d.Cert.DNSNames, "localhost") {
		t.Fatalf("default SANs %v", d.Cert.DNSNames)
	}
}

// TestIssueFilesRecordsAfterWriting: a certificate whose files cannot be
// written is not in issued.json.
func TestIssueFilesRecordsAfterWriting(t *testing.T) {
	ca := newTestCA(t)
	var wrote bool
	ca.afterWrite = func() {
		wrote = true
		if issued, _ := ca.Issued(); len(issued) != 0 {
			t.Error("recorded before the files were written")
		}
	}
	mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "w1"})
	if !wrote {
		t.Fatal("hook not called")
	}
	if issued, _ := ca.Issued(); len(issued) != 1 {
		t.Fatalf("issued.json has %d entries after writing", len(issued))
	}
}

// renew renews cur through the CA as the bridge does for a peer.
func renew(ca *CA, cur *x509.Certificate) (*x509.Certificate, error) {
	_, csr, err := NewKeyAndCSR()
	if err != nil {
		return nil, err
	}
	p, err := ca.RenewCSR(csr, cur, time.Hour)
	if err != nil {
		return nil, err
	}
	return ParseCertificatePEM(p)
}

// TestRevokeNameRevokesTheIdentity: revoking a name refuses every
// certificate of the identity issued up to then, including ones renewed
// from it before the revocation, and refuses renewals and enrollments after
// it, until the operator re-enrolls the name.
func TestRevokeNameRevokesTheIdentity(t *testing.T) {
	ca := newTestCA(t)
	orig := mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "site-a"}).Cert
	renewedBefore, err := renew(ca, orig)
	if err != nil {
		t.Fatal(err)
	}
	other := mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "site-b"}).Cert
	// A certificate of the identity that no list knows: signed with the CA
	// key, but never recorded (as by a renewal that raced the revocation).
	unlisted := mintUnrecorded(t, ca, RoleWorker, "site-a", time.Now().Add(-time.Minute))
	oldToken, _, err := ca.CreateToken(TokenSpec{Role: RoleWorker, Name: "site-a"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}

	// The bridge's view, loaded before the revocation, sees both
	// certificates (it learns their identities on verification).
	bridgeView, err := ca.Revocations()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*x509.Certificate{orig, renewedBefore} {
		if err := bridgeView.VerifyPeer(c); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
	}

	res, err := ca.RevokeName("site-a", "stolen laptop")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Identities) != 1 || res.Identities[0].Role != RoleWorker || res.Identities[0].Name != "site-a" {
		t.Fatalf("revoked %+v", res.Identities)
	}
	if res.File != filepath.Join(ca.Dir(), RevocationsFile) {
		t.Fatalf("file %s", res.File)
	}
	if err := bridgeView.Reload(); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(bridgeView.List(), func(r Revocation) bool { return r.Serial == SerialOf(unlisted) }) {
		t.Fatal("setup: the unlisted certificate is on the serial list")
	}
	for what, c := range map[string]*x509.Certificate{"original": orig, "renewed before": renewedBefore, "unlisted": unlisted} {
		if err := bridgeView.VerifyPeer(c); !errors.Is(err, ErrRevoked) {
			t.Errorf("%s certificate: VerifyPeer = %v, want ErrRevoked", what, err)
		}
		// A session's serial is enough to find it revoked.
		if !bridgeView.IsRevokedSerial(SerialOf(c)) {
			t.Errorf("%s certificate: serial not revoked", what)
		}
	}
	if err := bridgeView.VerifyPeer(other); err != nil {
		t.Errorf("another identity was revoked too: %v", err)
	}

	// Renewed after the revocation: refused.
	if _, err := renew(ca, renewedBefore); !errors.Is(err, ErrRevoked) {
		t.Errorf("renewal after revocation: %v, want ErrRevoked", err)
	}
	if _, _, err := ca.IssueClient(RoleWorker, "site-a", 0); !errors.Is(err, ErrIdentityRevoked) {
		t.Errorf("IssueClient after revocation: %v", err)
	}
	_, csr, _ := NewKeyAndCSR()
	if _, err := ca.SignCSR(csr, RoleWorker, "site-a", 0); !errors.Is(err, ErrIdentityRevoked) {
		t.Errorf("SignCSR after revocation: %v", err)
	}
	// A token made before the revocation does not enroll.
	if _, err := ca.Tokens().Consume(oldToken, func(rec TokenRecord) (string, error) {
		p, err := ca.SignEnrollCSR(csr, rec, 0)
		return string(p), err
	}); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("enrollment with a token from before the revocation: %v", err)
	}
	// A new token needs the explicit re-enrollment.
	if _, _, err := ca.CreateToken(TokenSpec{Role: RoleWorker, Name: "site-a"}, time.Hour, false); !errors.Is(err, ErrIdentityRevoked) {
		t.Errorf("token after revocation: %v", err)
	}
	// A certificate the CA would mint now, with an old NotBefore (as a
	// backdated certificate from another tool), is refused as well.
	ca.now = func() time.Time { return time.Now().Add(-time.Hour) }
	if _, _, err := ca.IssueClient(RoleWorker, "site-a", 0); err == nil {
		t.Error("backdated issue succeeded")
	}
	ca.now = nil

	// Re-enrolling is explicit and starts a new generation; the old
	// certificates stay refused.
	re := mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "site-a", Force: true, Reenroll: true}).Cert
	if err := bridgeView.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := bridgeView.VerifyPeer(re); err != nil {
		t.Fatalf("re-enrolled certificate: %v", err)
	}
	if ir, ok := bridgeView.Identity(RoleWorker, "site-a"); !ok || ir.Generation != 1 || ir.ReenrolledAt == nil {
		t.Fatalf("identity record %+v", ir)
	}
	for _, c := range []*x509.Certificate{orig, renewedBefore} {
		if err := bridgeView.VerifyPeer(c); !errors.Is(err, ErrRevoked) {
			t.Errorf("old certificate accepted after re-enrollment: %v", err)
		}
	}
	renewedAfter, err := renew(ca, re)
	if err != nil {
		t.Fatalf("renewal of the re-enrolled certificate: %v", err)
	}
	if err := bridgeView.VerifyPeer(renewedAfter); err != nil {
		t.Fatal(err)
	}
	// Once re-enrolled, the name takes new tokens without the flag.
	if _, _, err := ca.CreateToken(TokenSpec{Role: RoleWorker, Name: "site-a"}, time.Hour, false); err != nil {
		t.Fatal(err)
	}

	// A second revocation catches the new generation.
	if _, err := ca.RevokeName("site-a", ""); err != nil {
		t.Fatal(err)
	}
	if err := bridgeView.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*x509.Certificate{re, renewedAfter} {
		if err := bridgeView.VerifyPeer(c); !errors.Is(err, ErrRevoked) {
			t.Errorf("second generation accepted after the second revocation: %v", err)
		}
	}
	if _, err := ca.RevokeName("nobody", ""); err == nil {
		t.Error("revoked a name that was never issued")
	}
}

// TestRevokeNameWithTokenOnly: a name that has only an enrollment token can
// be revoked; the token then no longer enrolls.
func TestRevokeNameWithTokenOnly(t *testing.T) {
	ca := newTestCA(t)
	tok, _, err := ca.CreateToken(TokenSpec{Role: RoleSender, Name: "ci"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.RevokeName("ci", ""); err != nil {
		t.Fatal(err)
	}
	_, csr, _ := NewKeyAndCSR()
	if _, err := ca.Tokens().Consume(tok, func(rec TokenRecord) (string, error) {
		p, err := ca.SignEnrollCSR(csr, rec, 0)
		return string(p), err
	}); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("consume: %v", err)
	}
	// With --reenroll, a new token works.
	tok2, _, err := ca.CreateToken(TokenSpec{Role: RoleSender, Name: "ci"}, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Tokens().Consume(tok2, func(rec TokenRecord) (string, error) {
		p, err := ca.SignEnrollCSR(csr, rec, 0)
		return string(p), err
	}); err != nil {
		t.Fatalf("consume after re-enrollment: %v", err)
	}
}

// TestRevokeSerialRevokesOneCertificate: --serial leaves the identity and
// its other certificates alone.
func TestRevokeSerialRevokesOneCertificate(t *testing.T) {
	ca := newTestCA(t)
	a := mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "w"}).Cert
	b, err := renew(ca, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.RevokeSerial(SerialOf(a), "superseded"); err != nil {
		t.Fatal(err)
	}
	rv, _ := ca.Revocations()
	if err := rv.VerifyPeer(a); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked serial accepted: %v", err)
	}
	if err := rv.VerifyPeer(b); err != nil {
		t.Fatalf("other certificate refused: %v", err)
	}
	if _, err := renew(ca, a); !errors.Is(err, ErrRevoked) {
		t.Fatalf("renewal with a revoked serial: %v", err)
	}
	if _, err := renew(ca, b); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.RevokeSerial("zz", ""); err == nil {
		t.Fatal("revoked a malformed serial")
	}
}

// TestRenewRaceLeavesNoValidCertificate renews in loops while the identity
// is revoked: afterwards not one of the certificates is accepted.
func TestRenewRaceLeavesNoValidCertificate(t *testing.T) {
	ca := newTestCA(t)
	first := mustIssue(t, ca, IssueRequest{Role: RoleWorker, Name: "racer"}).Cert
	var (
		mu  sync.Mutex
		all = []*x509.Certificate{first}
		wg  sync.WaitGroup
	)
	started := make(chan struct{}, 4)
	for range 3 {
		wg.Go(func() {
			cur := first
			for i := 0; ; i++ {
				next, err := renew(ca, cur)
				if err != nil {
					if !errors.Is(err, ErrRevoked) {
						t.Errorf("renew: %v", err)
					}
					return
				}
				mu.Lock()
				all = append(all, next)
				mu.Unlock()
				cur = next
				if i == 2 {
					started <- struct{}{}
				}
			}
		})
	}
	for range 3 {
		<-started
	}
	if _, err := ca.RevokeName("racer", "race"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	rv, err := ca.Revocations()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 10 {
		t.Fatalf("only %d renewals", len(all))
	}
	for _, c := range all {
		if err := rv.VerifyPeer(c); !errors.Is(err, ErrRevoked) {
			t.Fatalf("certificate %s (not before %v) survived the revocation: %v", SerialOf(c), c.NotBefore, err)
		}
	}
	issued, _ := ca.Issued()
	for _, ic := range issued {
		if !rv.IsRevokedIssued(ic) {
			t.Fatalf("issued.json lists %s as not revoked", ic.Serial)
		}
	}
}

func TestRenewFiles(t *testing.T) {
	ca := newTestCA(t)
	b := mustIssue(t, ca, IssueRequest{Role: RoleBridge, Name: "bridge", SANs: []string{"gw.example.com", "localhost", "192.0.2.1"}})
	oldKey := readFile(t, b.KeyFile)
	r, err := NewReloader(b.CertFile, b.KeyFile, filepath.Join(ca.Dir(), CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	n, err := ca.RenewFiles(b.CertFile, b.KeyFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) == 0 || bytes.Equal(readFile(t, b.KeyFile), oldKey) {
		t.Fatal("renewal kept the certificate or the key")
	}
	checkLeaf(t, ca, n.Cert, RoleBridge, "bridge", x509.ExtKeyUsageServerAuth)
	if !slices.Equal(n.Cert.DNSNames, b.Cert.DNSNames) || len(n.Cert.IPAddresses) != 1 || !n.Cert.IPAddresses[0].Equal(b.Cert.IPAddresses[0]) {
		t.Fatalf("SANs changed: %v %v", n.Cert.DNSNames, n.Cert.IPAddresses)
	}
	checkMode(t, b.KeyFile, KeyFileMode)
	if err := r.Reload(); err != nil {
		t.Fatalf("reload of the renewed pair: %v", err)
	}
	if r.Leaf().SerialNumber.Cmp(n.Cert.SerialNumber) != 0 {
		t.Fatal("reloader serves the old certificate")
	}
	entries, _ := os.ReadDir(ca.Dir())
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}

	w := mustIssue(t, ca, IssueRequest{Role: RoleSender, Name: "s1"})
	ns, err := ca.RenewFiles(w.CertFile, w.KeyFile, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	checkLeaf(t, ca, ns.Cert, RoleSender, "s1", x509.ExtKeyUsageClientAuth)
	if d := ns.Cert.NotAfter.Sub(time.Now()); d < 47*time.Hour || d > 49*time.Hour {
		t.Fatalf("lifetime %v", d)
	}

	// A certificate of another CA is not renewed.
	other := newTestCA(t)
	o := mustIssue(t, other, IssueRequest{Role: RoleWorker, Name: "w9"})
	if _, err := ca.RenewFiles(o.CertFile, o.KeyFile, 0); err == nil {
		t.Fatal("renewed a foreign certificate")
	}
	// Nor one of a revoked identity.
	if _, err := ca.RevokeName("s1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.RenewFiles(w.CertFile, w.KeyFile, 0); !errors.Is(err, ErrIdentityRevoked) {
		t.Fatalf("renewed a revoked identity: %v", err)
	}
}

func TestExpiring(t *testing.T) {
	now := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	ic := func(serial string, role Role, name string, issued, expires time.Duration) IssuedCert {
		return IssuedCert{Serial: serial, Role: role, Name: name, NotBefore: now.Add(issued), NotAfter: now.Add(expires)}
	}
	issued := []IssuedCert{
		ic("1", RoleWorker, "soon", -80*day, 10*day),
		ic("2", RoleWorker, "later", -10*day, 80*day),
		ic("3", RoleWorker, "renewed", -80*day, 5*day), // superseded by 4
		ic("4", RoleWorker, "renewed", -day, 89*day),
		ic("5", RoleWorker, "expired", -100*day, -day),
		ic("6", RoleBridge, "bridge", -70*day, 20*day),
		ic("7", RoleSender, "revoked", -80*day, 3*day),
		ic("8", RoleAdmin, "edge", -60*day, 30*day),
	}
	rv, err := LoadRevocations(filepath.Join(t.TempDir(), RevocationsFile))
	if err != nil {
		t.Fatal(err)
	}
	rv.now = func() time.Time { return now }
	if err := rv.RevokeIdentity(RoleSender, "revoked", "", now); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range Expiring(issued, rv, now, 30*day) {
		got = append(got, c.Serial)
	}
	// Soonest first; not the revoked, the expired, the superseded or the
	// one beyond the window.
	if want := []string{"1", "6", "8"}; !slices.Equal(got, want) {
		t.Fatalf("expiring %v, want %v", got, want)
	}
}

// mintUnrecorded signs a certificate for role and name with the CA's key,
// valid from notBefore, without recording it in issued.json.
func mintUnrecorded(t *testing.T, ca *CA, role Role, name string, notBefore time.Time) *x509.Certificate {
	t.Helper()
	_, csrPEM, err := NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := parseCSRPEM(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	uri, err := IdentityURI(role, name)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := newSerial()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{uri},
	}, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
