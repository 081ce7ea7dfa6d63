package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMutualTLS(t *testing.T) {
	p := newTestPKI(t)
	foreign := newTestPKI(t)

	revokedCert, revokedKey := p.clientFiles(t, RoleWorker, "stolen")
	revs, err := p.ca.Revocations()
	if err != nil {
		t.Fatal(err)
	}
	if err := revs.Revoke(firstCert(t, readFile(t, revokedCert)).SerialNumber, "stolen", "key compromise"); err != nil {
		t.Fatal(err)
	}
	if err := revs.Save(); err != nil {
		t.Fatal(err)
	}
	// The server reads the list from disk, as the bridge would.
	serverRevs, err := LoadRevocations(filepath.Join(p.ca.Dir(), RevocationsFile))
	if err != nil {
		t.Fatal(err)
	}

	clientFromFiles := func(t *testing.T, certFile, keyFile, caFile, serverName string) *tls.Config {
		t.Helper()
		cfg, err := ClientTLSConfig(certFile, keyFile, caFile, serverName)
		if err != nil {
			t.Fatalf("ClientTLSConfig: %v", err)
		}
		return cfg
	}

	tests := []struct {
		name   string
		client func(t *testing.T) *tls.Config
		// wantServerErr and wantClientErr are substrings of the expected
		// errors; empty means the side must succeed.
		wantServerErr string
		wantClientErr string
		wantRole      Role
		wantName      string
	}{
		{
			name:     "worker accepted",
			client:   func(t *testing.T) *tls.Config { return p.clientConfig(t, RoleWorker, "worker-01.example.com") },
			wantRole: RoleWorker, wantName: "worker-01.example.com",
		},
		{
			name:     "sender accepted",
			client:   func(t *testing.T) *tls.Config { return p.clientConfig(t, RoleSender, "nagios_01") },
			wantRole: RoleSender, wantName: "nagios_01",
		},
		{
			name:     "admin accepted",
			client:   func(t *testing.T) *tls.Config { return p.clientConfig(t, RoleAdmin, "alice") },
			wantRole: RoleAdmin, wantName: "alice",
		},
		{
			name: "dial by IP",
			client: func(t *testing.T) *tls.Config {
				certFile, keyFile := p.clientFiles(t, RoleWorker, "w1")
				return clientFromFiles(t, certFile, keyFile, p.caFile, "127.0.0.1")
			},
			wantRole: RoleWorker, wantName: "w1",
		},
		{
			name: "no client certificate",
			client: func(t *testing.T) *tls.Config {
				return &tls.Config{MinVersion: tls.VersionTLS13, ServerName: "localhost", RootCAs: loadPool(t, p.caFile)}
			},
			wantServerErr: "didn't provide a certificate",
			wantClientErr: "certificate required",
		},
		{
			name: "client certificate from a foreign CA",
			client: func(t *testing.T) *tls.Config {
				certFile, keyFile := foreign.clientFiles(t, RoleWorker, "w1")
				return clientFromFiles(t, certFile, keyFile, p.caFile, "localhost")
			},
			wantServerErr: "unknown authority",
			wantClientErr: "unknown certificate authority",
		},
		{
			name: "TLS 1.2 only client",
			client: func(t *testing.T) *tls.Config {
				cfg := p.clientConfig(t, RoleWorker, "w1")
				cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
				return cfg
			},
			wantServerErr: "unsupported versions",
			wantClientErr: "protocol version",
		},
		{
			name: "expired client certificate",
			client: func(t *testing.T) *tls.Config {
				past := *p.ca
				past.now = func() time.Time { return time.Now().Add(-48 * time.Hour) }
				certPEM, keyPEM, err := past.IssueClient(RoleWorker, "late", time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				certFile, keyFile := writePair(t, "late", certPEM, keyPEM)
				return clientFromFiles(t, certFile, keyFile, p.caFile, "localhost")
			},
			wantServerErr: "expired",
			wantClientErr: "expired certificate",
		},
		{
			name: "revoked client certificate",
			client: func(t *testing.T) *tls.Config {
				return clientFromFiles(t, revokedCert, revokedKey, p.caFile, "localhost")
			},
			wantServerErr: "certificate revoked",
			wantClientErr: "bad certificate",
		},
		{
			name: "bridge certificate used as client",
			client: func(t *testing.T) *tls.Config {
				return clientFromFiles(t, p.serverCert, p.serverKey, p.caFile, "localhost")
			},
			wantServerErr: "incompatible key usage",
			wantClientErr: "bad certificate",
		},
		{
			name: "bridge certificate from a foreign CA",
			client: func(t *testing.T) *tls.Config {
				certFile, keyFile := p.clientFiles(t, RoleWorker, "w1")
				return clientFromFiles(t, certFile, keyFile, foreign.caFile, "localhost")
			},
			wantServerErr: "bad certificate",
			wantClientErr: "unknown authority",
		},
		{
			name: "bridge dialled by a name not in its certificate",
			client: func(t *testing.T) *tls.Config {
				certFile, keyFile := p.clientFiles(t, RoleWorker, "w1")
				return clientFromFiles(t, certFile, keyFile, p.caFile, "bridge.example.org")
			},
			wantServerErr: "bad certificate",
			wantClientErr: "not bridge.example.org",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startTLSServer(t, p.serverReloader(t).ServerConfig(serverRevs.VerifyPeer))
			res := srv.dial(t, tt.client(t))
			checkErr(t, "server", res.serverErr, tt.wantServerErr)
			checkErr(t, "client", res.clientErr, tt.wantClientErr)
			if tt.wantServerErr != "" {
				return
			}
			if v := res.server.Version; v != tls.VersionTLS13 {
				t.Errorf("negotiated version %s, want TLS 1.3", tls.VersionName(v))
			}
			role, name, err := PeerIdentity(res.server)
			if err != nil || role != tt.wantRole || name != tt.wantName {
				t.Errorf("server sees client as (%q, %q, %v), want (%q, %q, nil)", role, name, err, tt.wantRole, tt.wantName)
			}
			role, _, err = PeerIdentity(res.client)
			if err != nil || role != RoleBridge {
				t.Errorf("client sees server as (%q, %v), want bridge", role, err)
			}
		})
	}
}

func TestServerConfigRevocationError(t *testing.T) {
	p := newTestPKI(t)
	revs, err := p.ca.Revocations()
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := p.clientFiles(t, RoleWorker, "w1")
	if err := revs.Revoke(firstCert(t, readFile(t, certFile)).SerialNumber, "w1", "retired"); err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, p.serverReloader(t).ServerConfig(revs.VerifyPeer))
	cfg, err := ClientTLSConfig(certFile, keyFile, p.caFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	res := srv.dial(t, cfg)
	if !errors.Is(res.serverErr, ErrRevoked) {
		t.Errorf("server error = %v, want one wrapping ErrRevoked", res.serverErr)
	}
}

func TestReloaderPicksUpNewCertificates(t *testing.T) {
	p := newTestPKI(t)
	serverReloader := p.serverReloader(t)
	srv := startTLSServer(t, serverReloader.ServerConfig(nil))

	clientCert, clientKey := p.clientFiles(t, RoleWorker, "w1")
	clientReloader, err := NewReloader(clientCert, clientKey, p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	clientCfg := clientReloader.ClientConfig("localhost")

	// connect checks that one handshake presents the given certificates.
	connect := func(t *testing.T, wantServer, wantClient *x509.Certificate) {
		t.Helper()
		res := srv.dial(t, clientCfg)
		if res.serverErr != nil || res.clientErr != nil {
			t.Fatalf("handshake: server error %v, client error %v", res.serverErr, res.clientErr)
		}
		if got := res.client.PeerCertificates[0]; !got.Equal(wantServer) {
			t.Errorf("server presented serial %x, want %x", got.SerialNumber, wantServer.SerialNumber)
		}
		if got := res.server.PeerCertificates[0]; !got.Equal(wantClient) {
			t.Errorf("client presented serial %x, want %x", got.SerialNumber, wantClient.SerialNumber)
		}
	}
	// renew issues new certificates and writes them over the old files.
	renew := func(t *testing.T) (server, client *x509.Certificate) {
		t.Helper()
		certPEM, keyPEM, err := p.ca.IssueServer(p.serverNames, 0)
		if err != nil {
			t.Fatal(err)
		}
		writeOver(t, p.serverCert, certPEM, p.serverKey, keyPEM)
		server = firstCert(t, certPEM)
		certPEM, keyPEM, err = p.ca.IssueClient(RoleWorker, "w1", 0)
		if err != nil {
			t.Fatal(err)
		}
		writeOver(t, clientCert, certPEM, clientKey, keyPEM)
		return server, firstCert(t, certPEM)
	}

	oldServer, oldClient := serverReloader.Leaf(), clientReloader.Leaf()
	connect(t, oldServer, oldClient)

	newServer, newClient := renew(t)
	connect(t, oldServer, oldClient) // files changed, not yet reloaded

	if err := serverReloader.Reload(); err != nil {
		t.Fatalf("server Reload: %v", err)
	}
	if err := clientReloader.Reload(); err != nil {
		t.Fatalf("client Reload: %v", err)
	}
	connect(t, newServer, newClient)

	// A broken file is reported and the running material is kept.
	if err := WriteFileAtomic(p.serverKey, []byte("not a key"), KeyFileMode); err != nil {
		t.Fatal(err)
	}
	if err := serverReloader.Reload(); err == nil {
		t.Fatal("Reload with a broken key file succeeded")
	}
	connect(t, newServer, newClient)
}

func writeOver(t *testing.T, certFile string, certPEM []byte, keyFile string, keyPEM []byte) {
	t.Helper()
	if err := WriteFileAtomic(certFile, certPEM, CertFileMode); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(keyFile, keyPEM, KeyFileMode); err != nil {
		t.Fatal(err)
	}
}

func TestNewReloaderErrors(t *testing.T) {
	p := newTestPKI(t)
	other := newTestPKI(t)
	workerCert, workerKey := p.clientFiles(t, RoleWorker, "w1")
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := WriteFileAtomic(garbage, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), CertFileMode); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")

	tests := []struct {
		name                      string
		certFile, keyFile, caFile string
		wantErr                   string
	}{
		{"missing certificate", missing, p.serverKey, p.caFile, "no such file"},
		{"missing key", p.serverCert, missing, p.caFile, "no such file"},
		{"missing CA file", p.serverCert, p.serverKey, missing, "no such file"},
		{"key of another certificate", p.serverCert, other.serverKey, p.caFile, "private key does not match"},
		{"CA file holds a leaf", p.serverCert, p.serverKey, workerCert, "not a CA certificate"},
		{"CA file is not DER", p.serverCert, p.serverKey, garbage, "parse certificate"},
		{"CA file is a key", p.serverCert, p.serverKey, workerKey, "unexpected PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReloader(tt.certFile, tt.keyFile, tt.caFile)
			checkErr(t, "NewReloader", err, tt.wantErr)
			_, err = ServerTLSConfig(tt.certFile, tt.keyFile, tt.caFile)
			checkErr(t, "ServerTLSConfig", err, tt.wantErr)
			_, err = ClientTLSConfig(tt.certFile, tt.keyFile, tt.caFile, "localhost")
			checkErr(t, "ClientTLSConfig", err, tt.wantErr)
		})
	}
}

func TestServerConfigSettings(t *testing.T) {
	p := newTestPKI(t)
	cfg, err := ServerTLSConfig(p.serverCert, p.serverKey, p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	perHandshake, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*tls.Config{"outer": cfg, "per handshake": perHandshake} {
		if c.MinVersion != tls.VersionTLS13 {
			t.Errorf("%s: MinVersion = %x, want TLS 1.3", name, c.MinVersion)
		}
		if c.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Errorf("%s: ClientAuth = %v, want RequireAndVerifyClientCert", name, c.ClientAuth)
		}
		if c.ClientCAs == nil {
			t.Errorf("%s: ClientCAs is nil, which would mean the system roots", name)
		}
	}
}

// checkErr fails unless err contains want, or is nil when want is empty.
func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error: %v", what, err)
	case want != "" && err == nil:
		t.Errorf("%s: no error, want one containing %q", what, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s: error %q, want one containing %q", what, err, want)
	}
}

func loadPool(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	pool, err := loadCAPool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}
