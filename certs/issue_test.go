package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssueServer(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name     string
		names    []string
		wantDNS  []string
		wantIPs  []string
		wantName string
		wantErr  string
	}{
		{
			name:     "DNS names and IPs",
			names:    []string{"Bridge.Example.com", "127.0.0.1", "::1", "bridge.example.com", "localhost", "127.0.0.1"},
			wantDNS:  []string{"bridge.example.com", "localhost"},
			wantIPs:  []string{"127.0.0.1", "::1"},
			wantName: "bridge.example.com",
		},
		{
			name:     "IPs only",
			names:    []string{"192.0.2.10"},
			wantIPs:  []string{"192.0.2.10"},
			wantName: "bridge",
		},
		{name: "no names", wantErr: "no DNS names or IP addresses"},
		{name: "wildcard", names: []string{"*.example.com"}, wantErr: "neither an IP address nor a valid DNS name"},
		{name: "space", names: []string{"bridge example"}, wantErr: "neither an IP address nor a valid DNS name"},
		{name: "empty label", names: []string{"bridge..example"}, wantErr: "neither an IP address nor a valid DNS name"},
		{name: "IPv6 zone", names: []string{"fe80::1%eth0"}, wantErr: "neither an IP address nor a valid DNS name"},
		{name: "empty", names: []string{""}, wantErr: "empty DNS name"},
		{name: "first DNS name too long for a name", names: []string{strings.Repeat("a", 60) + ".example.com"}, wantErr: "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := ca.IssueServer(tt.names, 0)
			checkErr(t, "IssueServer", err, tt.wantErr)
			if err != nil {
				return
			}
			chain, err := parseCertsPEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 2 || !chain[1].Equal(ca.Certificate()) {
				t.Fatalf("certificate file holds %d certificates, want leaf and CA", len(chain))
			}
			leaf := chain[0]
			checkLeaf(t, ca, leaf, RoleBridge, tt.wantName, x509.ExtKeyUsageServerAuth)
			if !slices.Equal(leaf.DNSNames, tt.wantDNS) {
				t.Errorf("DNS SANs %q, want %q", leaf.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("IP SANs %q, want %q", ips, tt.wantIPs)
			}
			key, err := parseKeyPEM(keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			if !key.Public().(*ecdsa.PublicKey).Equal(leaf.PublicKey) {
				t.Error("key does not belong to the certificate")
			}
			for _, n := range tt.names {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: caPool(ca), DNSName: n}); err != nil {
					t.Errorf("verify for %q: %v", n, err)
				}
			}
		})
	}
}

func TestIssueClient(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name     string
		role     Role
		cn       string
		lifetime time.Duration
		wantLife time.Duration
		wantErr  string
	}{
		{name: "worker default lifetime", role: RoleWorker, cn: "w1", wantLife: DefaultLeafLifetime},
		{name: "sender one day", role: RoleSender, cn: "s1", lifetime: 24 * time.Hour, wantLife: 24 * time.Hour},
		{name: "admin", role: RoleAdmin, cn: "alice", wantLife: DefaultLeafLifetime},
		{name: "bridge role", role: RoleBridge, cn: "b", wantErr: "cannot be a client"},
		{name: "unknown role", role: "root", cn: "b", wantErr: "cannot be a client"},
		{name: "bad name", role: RoleWorker, cn: "w/1", wantErr: "not allowed"},
		{name: "negative lifetime", role: RoleWorker, cn: "w1", lifetime: -time.Hour, wantErr: "negative"},
		{name: "beyond CA", role: RoleWorker, cn: "w1", lifetime: 20 * 365 * 24 * time.Hour, wantErr: "after the CA certificate expires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := ca.IssueClient(tt.role, tt.cn, tt.lifetime)
			checkErr(t, "IssueClient", err, tt.wantErr)
			if err != nil {
				return
			}
			leaf := firstCert(t, certPEM)
			checkLeaf(t, ca, leaf, tt.role, tt.cn, x509.ExtKeyUsageClientAuth)
			if got := leaf.NotAfter.Sub(leaf.NotBefore) - clockSkew; got != tt.wantLife {
				t.Errorf("lifetime %v, want %v", got, tt.wantLife)
			}
			if len(leaf.DNSNames)+len(leaf.IPAddresses) != 0 {
				t.Errorf("client certificate has DNS or IP SANs: %v %v", leaf.DNSNames, leaf.IPAddresses)
			}
			if _, err := parseKeyPEM(keyPEM); err != nil {
				t.Errorf("key: %v", err)
			}
		})
	}
}

func TestIssueSerialsAreUnique(t *testing.T) {
	ca := newTestCA(t)
	seen := make(map[string]bool)
	for range 20 {
		certPEM, _, err := ca.IssueClient(RoleWorker, "w1", 0)
		if err != nil {
			t.Fatal(err)
		}
		s := firstCert(t, certPEM).SerialNumber
		if s.BitLen() > 128 || seen[s.String()] {
			t.Fatalf("serial %x repeated or longer than 128 bits", s)
		}
		seen[s.String()] = true
	}
}

func TestSignCSR(t *testing.T) {
	ca := newTestCA(t)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// greedy asks for more than the caller will grant.
	greedy := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "root", Organization: []string{"evil"}},
		DNSNames:       []string{"bridge.example.com"},
		IPAddresses:    []net.IP{net.ParseIP("127.0.0.1")},
		EmailAddresses: []string{"root@example.com"},
		URIs:           []*url.URL{{Scheme: "gearbridge", Host: "admin", Path: "/root"}},
	}

	tests := []struct {
		name    string
		csr     func(t *testing.T) []byte
		role    Role
		cn      string
		wantKey crypto.PublicKey
		wantErr string
	}{
		{
			name: "P-256, requested SANs ignored",
			csr:  func(t *testing.T) []byte { return makeCSR(t, greedy, p256) },
			role: RoleWorker, cn: "w1", wantKey: p256.Public(),
		},
		{
			name: "Ed25519",
			csr:  func(t *testing.T) []byte { return makeCSR(t, greedy, ed) },
			role: RoleSender, cn: "s1", wantKey: ed.Public(),
		},
		{
			name: "from GenerateKeyAndCSR",
			csr: func(t *testing.T) []byte {
				_, csrPEM, err := GenerateKeyAndCSR(RoleAdmin, "other-name")
				if err != nil {
					t.Fatal(err)
				}
				return csrPEM
			},
			role: RoleWorker, cn: "w2",
		},
		{
			name: "bad signature",
			csr: func(t *testing.T) []byte {
				der := csrDER(t, greedy, p256)
				der[len(der)-1] ^= 0xff // last byte of the signature
				return encodePEM(pemCSR, der)
			},
			role: RoleWorker, cn: "w1", wantErr: "bad request signature",
		},
		{
			name: "RSA key",
			csr:  func(t *testing.T) []byte { return makeCSR(t, greedy, rsaKey) },
			role: RoleWorker, cn: "w1", wantErr: "unsupported key type *rsa.PublicKey",
		},
		{
			name: "P-384 key",
			csr:  func(t *testing.T) []byte { return makeCSR(t, greedy, p384) },
			role: RoleWorker, cn: "w1", wantErr: "want P-256",
		},
		{
			name: "not PEM",
			csr:  func(t *testing.T) []byte { return []byte("hello") },
			role: RoleWorker, cn: "w1", wantErr: "no PEM certificate request",
		},
		{
			name: "certificate instead of CSR",
			csr:  func(t *testing.T) []byte { return ca.CertPEM() },
			role: RoleWorker, cn: "w1", wantErr: `unexpected PEM block "CERTIFICATE"`,
		},
		{
			name: "trailing data",
			csr:  func(t *testing.T) []byte { return append(makeCSR(t, greedy, p256), "junk"...) },
			role: RoleWorker, cn: "w1", wantErr: "trailing data",
		},
		{
			name: "bridge role",
			csr:  func(t *testing.T) []byte { return makeCSR(t, greedy, p256) },
			role: RoleBridge, cn: "b", wantErr: "cannot be a client",
		},
		{
			name: "bad name",
			csr:  func(t *testing.T) []byte { return makeCSR(t, greedy, p256) },
			role: RoleWorker, cn: "", wantErr: "empty name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, err := ca.SignCSR(tt.csr(t), tt.role, tt.cn, 0)
			checkErr(t, "SignCSR", err, tt.wantErr)
			if err != nil {
				return
			}
			leaf := firstCert(t, certPEM)
			checkLeaf(t, ca, leaf, tt.role, tt.cn, x509.ExtKeyUsageClientAuth)
			if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
				t.Errorf("requested SANs were copied: DNS %v, IP %v, email %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
			}
			if len(leaf.Subject.Organization) != 0 {
				t.Errorf("requested subject was copied: %v", leaf.Subject)
			}
			if tt.wantKey != nil && !tt.wantKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
				t.Error("certificate is not for the CSR's key")
			}
		})
	}
}

func TestGenerateKeyAndCSR(t *testing.T) {
	keyPEM, csrPEM, err := GenerateKeyAndCSR(RoleWorker, "w1")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := parseCSRPEM(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CSR signature: %v", err)
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != "gearbridge://worker/w1" || csr.Subject.CommonName != "w1" {
		t.Errorf("CSR identity: URIs %v, CN %q", csr.URIs, csr.Subject.CommonName)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().(*ecdsa.PublicKey).Equal(csr.PublicKey) {
		t.Error("key does not belong to the CSR")
	}

	for _, bad := range []struct {
		role Role
		name string
	}{{RoleBridge, "b"}, {"root", "x"}, {RoleWorker, "a b"}} {
		if _, _, err := GenerateKeyAndCSR(bad.role, bad.name); err == nil {
			t.Errorf("GenerateKeyAndCSR(%q, %q) succeeded", bad.role, bad.name)
		}
	}
}

// checkLeaf verifies leaf against ca for usage and checks its identity.
func checkLeaf(t *testing.T, ca *CA, leaf *x509.Certificate, role Role, name string, usage x509.ExtKeyUsage) {
	t.Helper()
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: caPool(ca), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Errorf("verify against CA: %v", err)
	}
	gotRole, gotName, err := IdentityOf(leaf)
	if err != nil || gotRole != role || gotName != name {
		t.Errorf("identity (%q, %q, %v), want (%q, %q)", gotRole, gotName, err, role, name)
	}
	if leaf.Subject.CommonName != name {
		t.Errorf("CN %q, want %q", leaf.Subject.CommonName, name)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Error("leaf must have CA:FALSE basic constraints")
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage %b, want DigitalSignature", leaf.KeyUsage)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{usage}) {
		t.Errorf("ExtKeyUsage %v, want [%v]", leaf.ExtKeyUsage, usage)
	}
	if d := time.Since(leaf.NotBefore); d < clockSkew-time.Minute || d > clockSkew+time.Minute {
		t.Errorf("NotBefore is %v ago, want about %v (clock skew margin)", d, clockSkew)
	}
}

func caPool(ca *CA) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	return pool
}

func csrDER(t *testing.T, tmpl *x509.CertificateRequest, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func makeCSR(t *testing.T, tmpl *x509.CertificateRequest, key crypto.Signer) []byte {
	t.Helper()
	return encodePEM(pemCSR, csrDER(t, tmpl, key))
}
