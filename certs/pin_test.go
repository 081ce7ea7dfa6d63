package certs

import (
	"crypto/tls"
	"strings"
	"testing"
)

func TestPinnedClientTLSConfig(t *testing.T) {
	p := newTestPKI(t)
	foreign := newTestPKI(t)

	// bridgeConfig is an enrollment endpoint: it presents certPEM (leaf
	// first) and asks for no client certificate.
	bridgeConfig := func(t *testing.T, certPEM, keyPEM []byte) *tls.Config {
		t.Helper()
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	}
	bridge := func(t *testing.T) *tls.Config {
		return bridgeConfig(t, readFile(t, p.serverCert), readFile(t, p.serverKey))
	}

	tests := []struct {
		name        string
		server      func(t *testing.T) *tls.Config
		fingerprint string
		serverName  string
		wantErr     string
	}{
		{
			name:   "right CA",
			server: bridge, fingerprint: p.ca.Fingerprint(), serverName: "localhost",
		},
		{
			name:   "right CA, dialled by IP",
			server: bridge, fingerprint: p.ca.Fingerprint(), serverName: "127.0.0.1",
		},
		{
			name:   "right CA, upper-case fingerprint",
			server: bridge, fingerprint: "sha256:" + strings.ToUpper(strings.TrimPrefix(p.ca.Fingerprint(), "sha256:")), serverName: "localhost",
		},
		{
			name:   "wrong CA",
			server: bridge, fingerprint: foreign.ca.Fingerprint(), serverName: "localhost",
			wantErr: "no certificate in the server's chain matches",
		},
		{
			name: "pinned CA in the chain but leaf signed by another CA",
			server: func(t *testing.T) *tls.Config {
				leaf := firstCert(t, readFile(t, foreign.serverCert))
				chain := append(encodePEM(pemCertificate, leaf.Raw), p.ca.CertPEM()...)
				return bridgeConfig(t, chain, readFile(t, foreign.serverKey))
			},
			fingerprint: p.ca.Fingerprint(), serverName: "localhost",
			wantErr: "verify bridge certificate",
		},
		{
			name: "server does not send its CA",
			server: func(t *testing.T) *tls.Config {
				leaf := firstCert(t, readFile(t, p.serverCert))
				return bridgeConfig(t, encodePEM(pemCertificate, leaf.Raw), readFile(t, p.serverKey))
			},
			fingerprint: p.ca.Fingerprint(), serverName: "localhost",
			wantErr: "no certificate in the server's chain matches",
		},
		{
			name:   "name not in the bridge certificate",
			server: bridge, fingerprint: p.ca.Fingerprint(), serverName: "evil.example.com",
			wantErr: "not evil.example.com",
		},
		{
			name: "worker certificate posing as the bridge",
			server: func(t *testing.T) *tls.Config {
				certPEM, keyPEM, err := p.ca.IssueClient(RoleWorker, "localhost", 0)
				if err != nil {
					t.Fatal(err)
				}
				return bridgeConfig(t, append(certPEM, p.ca.CertPEM()...), keyPEM)
			},
			fingerprint: p.ca.Fingerprint(), serverName: "localhost",
			wantErr: "verify bridge certificate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := PinnedClientTLSConfig(tt.fingerprint, tt.serverName)
			if err != nil {
				t.Fatalf("PinnedClientTLSConfig: %v", err)
			}
			srv := startTLSServer(t, tt.server(t))
			res := srv.dial(t, cfg)
			checkErr(t, "client", res.clientErr, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			ca, err := PinnedCA(res.client, tt.fingerprint)
			if err != nil {
				t.Fatalf("PinnedCA: %v", err)
			}
			if !ca.Equal(p.ca.Certificate()) {
				t.Errorf("PinnedCA returned %q, want the test CA", ca.Subject.CommonName)
			}
		})
	}
}

func TestCertificateFingerprintPinArguments(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	tests := []struct {
		name, fingerprint, serverName, wantErr string
	}{
		{"valid", "sha256:" + hex64, "localhost", ""},
		{"no prefix", hex64, "localhost", "want prefix"},
		{"other hash", "sha1:" + hex64[:40], "localhost", "want prefix"},
		{"too short", "sha256:" + hex64[:62], "localhost", "want 64 hex digits"},
		{"too long", "sha256:" + hex64 + "ab", "localhost", "want 64 hex digits"},
		{"not hex", "sha256:" + strings.Repeat("zz", 32), "localhost", "invalid byte"},
		{"colon separated", "sha256:" + strings.Repeat("ab:", 31) + "ab", "localhost", "want 64 hex digits"},
		{"no server name", "sha256:" + hex64, "", "server name required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CertificateFingerprintPin(tt.fingerprint, tt.serverName)
			checkErr(t, "CertificateFingerprintPin", err, tt.wantErr)
		})
	}
}
