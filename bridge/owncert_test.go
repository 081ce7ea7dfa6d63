package bridge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/certs"
)

// mintServer signs a certificate for the bridge's name "bridge.test" with
// the CA in caDir, with the role and extended key usage given, so that a
// test can hand the bridge certificates the CA would never issue for it.
func mintServer(t *testing.T, caDir string, role certs.Role, eku x509.ExtKeyUsage, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := url.Parse("gearbridge://" + string(role) + "/bridge.test")
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "bridge.test"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{eku},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
		DNSNames:              []string{"bridge.test"},
	}
	parent, signer := loadCA(t, caDir)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestNewRefusesACertificateItMustNotServe: the bridge starts only with a
// certificate of the bridge role, for server authentication, that chains
// to its CA file and is valid now; otherwise New fails naming the file.
func TestNewRefusesACertificateItMustNotServe(t *testing.T) {
	dir := t.TempDir()
	ca := newBridgeCA(t, dir)
	otherDir := t.TempDir()
	newBridgeCA(t, otherDir)
	now := time.Now()
	workerCrt, workerKey, err := ca.IssueClient(certs.RoleWorker, "w1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	valid := func(caDir string, eku x509.ExtKeyUsage) func() ([]byte, []byte) {
		return func() ([]byte, []byte) {
			return mintServer(t, caDir, certs.RoleBridge, eku, now.Add(-time.Hour), now.Add(time.Hour))
		}
	}
	tests := []struct {
		name      string
		files     func() (crt, key []byte)
		wantInErr string // "" means it starts
	}{
		{"a worker certificate", func() ([]byte, []byte) { return workerCrt, workerKey }, `role "worker"`},
		{"no server authentication", valid(dir, x509.ExtKeyUsageClientAuth), "server authentication"},
		{"another CA", valid(otherDir, x509.ExtKeyUsageServerAuth), "does not chain to"},
		{"expired", func() ([]byte, []byte) {
			return mintServer(t, dir, certs.RoleBridge, x509.ExtKeyUsageServerAuth, now.Add(-2*time.Hour), now.Add(-time.Hour))
		}, "expired"},
		{"the bridge's own", valid(dir, x509.ExtKeyUsageServerAuth), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			crtFile, keyFile := filepath.Join(t.TempDir(), "served.crt"), filepath.Join(t.TempDir(), "served.key")
			crt, key := tt.files()
			writeFile(t, crtFile, crt, 0o644)
			writeFile(t, keyFile, key, 0o600)
			r, err := certs.NewReloader(crtFile, keyFile, filepath.Join(dir, "ca.crt"))
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Key = testKey
			_, err = New(cfg, Deps{Gearman: newFakeGearman(), TLS: r})
			switch {
			case tt.wantInErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantInErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantInErr) || !strings.Contains(err.Error(), crtFile)):
				t.Fatalf("err = %v, want one naming %s and saying %q", err, crtFile, tt.wantInErr)
			}
		})
	}
}

// servedSerial is the serial of the certificate the bridge presents now.
func (e *testEnv) servedSerial() *big.Int {
	e.t.Helper()
	raw, err := e.lis.Dial()
	if err != nil {
		e.t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	var got *big.Int
	c := tls.Client(raw, &tls.Config{
		InsecureSkipVerify: true, // only looking at what is served
		MinVersion:         tls.VersionTLS13,
		VerifyConnection: func(cs tls.ConnectionState) error {
			got = cs.PeerCertificates[0].SerialNumber
			return nil
		},
	})
	_ = c.HandshakeContext(context.Background())
	if got == nil {
		e.t.Fatal("no certificate served")
	}
	return got
}

// TestReloadRefusesACertificateItMustNotServe: a reload that would make the
// bridge serve a certificate it must not is refused and logged naming the
// file, and the bridge keeps serving the previous one; a proper one is
// taken at the next reload.
func TestReloadRefusesACertificateItMustNotServe(t *testing.T) {
	e, logs := newLoggedEnv(t, nil)
	before := e.servedSerial()
	crtFile, keyFile := filepath.Join(e.caDir, "bridge.crt"), filepath.Join(e.caDir, "bridge.key")
	workerCrt, workerKey, err := e.ca.IssueClient(certs.RoleWorker, "w1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyFile, workerKey, 0o600)
	writeFile(t, crtFile, workerCrt, 0o644)
	if err := e.b.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := e.servedSerial(); got.Cmp(before) != 0 {
		t.Fatalf("serving %v after the refused reload, want the previous %v", got, before)
	}
	eventually(t, 5*time.Second, "refusal logged", func() bool {
		return strings.Contains(logs.String(), `msg="refused the reloaded bridge certificate; keeping the previous one"`) &&
			strings.Contains(logs.String(), crtFile) && strings.Contains(logs.String(), `role \"worker\"`)
	})
	// Clients still get in with the old certificate.
	if _, w, _ := e.session(e.dial(certs.RoleWorker, "w1"), hello(1, "service")); w == nil {
		t.Fatalf("session refused after the refused reload:\n%s", logs)
	}

	newCrt, newKey, err := e.ca.IssueServer([]string{"bridge.test"}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want, err := certs.ParseCertificatePEM(newCrt[:strings.Index(string(newCrt), "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----\n")])
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyFile, newKey, 0o600)
	writeFile(t, crtFile, newCrt, 0o644)
	if err := e.b.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := e.servedSerial(); got.Cmp(want.SerialNumber) != 0 {
		t.Fatalf("serving %v, want the new certificate %v", got, want.SerialNumber)
	}
}
