package certs

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testPKI is a CA with a bridge certificate, all minted in a temporary
// directory for one test.
type testPKI struct {
	ca                    *CA
	caFile                string
	serverCert, serverKey string
	serverNames           []string
}

func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := InitCA(filepath.Join(t.TempDir(), "ca"), CAOptions{})
	if err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	return ca
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{ca: newTestCA(t), serverNames: []string{"localhost", "127.0.0.1"}}
	p.caFile = filepath.Join(p.ca.Dir(), CACertFile)
	certPEM, keyPEM, err := p.ca.IssueServer(p.serverNames, 0)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	p.serverCert, p.serverKey = writePair(t, "bridge", certPEM, keyPEM)
	return p
}

// clientFiles issues a client certificate and returns its file names.
func (p *testPKI) clientFiles(t *testing.T, role Role, name string) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := p.ca.IssueClient(role, name, 0)
	if err != nil {
		t.Fatalf("IssueClient(%s, %s): %v", role, name, err)
	}
	return writePair(t, name, certPEM, keyPEM)
}

// clientConfig is the config a client of role and name uses to dial the
// bridge as "localhost".
func (p *testPKI) clientConfig(t *testing.T, role Role, name string) *tls.Config {
	t.Helper()
	certFile, keyFile := p.clientFiles(t, role, name)
	cfg, err := ClientTLSConfig(certFile, keyFile, p.caFile, "localhost")
	if err != nil {
		t.Fatalf("ClientTLSConfig: %v", err)
	}
	return cfg
}

func (p *testPKI) serverReloader(t *testing.T) *Reloader {
	t.Helper()
	r, err := NewReloader(p.serverCert, p.serverKey, p.caFile)
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	return r
}

// writePair writes a certificate and key into a new directory as
// <name>.crt (0644) and <name>.key (0600).
func writePair(t *testing.T, name string, certPEM, keyPEM []byte) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := WriteFileAtomic(certFile, certPEM, CertFileMode); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(keyFile, keyPEM, KeyFileMode); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// firstCert parses the first certificate of a PEM bundle.
func firstCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	certs, err := parseCertsPEM(pemData)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return certs[0]
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handshakeTimeout bounds every loopback handshake so a bug fails the test
// instead of hanging it.
const handshakeTimeout = 10 * time.Second

// tlsServer accepts loopback connections one at a time, runs the server side
// of the handshake with a fixed *tls.Config and reports each outcome.
type tlsServer struct {
	addr    string
	results chan handshakeResult
}

type handshakeResult struct {
	state tls.ConnectionState
	err   error
}

// startTLSServer listens on 127.0.0.1:0. Cleanup closes the listener and
// waits for the accept loop to end.
func startTLSServer(t *testing.T, cfg *tls.Config) *tlsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &tlsServer{addr: ln.Addr().String(), results: make(chan handshakeResult)}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // listener closed by Cleanup
			}
			res := serveOne(c, cfg)
			select {
			case s.results <- res:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		<-done
	})
	return s
}

// serveOne completes the handshake on c, answers "ok" on success and closes
// c before the result is reported, so a client never waits on a server that
// waits on the test.
func serveOne(c net.Conn, cfg *tls.Config) handshakeResult {
	tc := tls.Server(c, cfg)
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		return handshakeResult{err: err}
	}
	_, err := tc.Write([]byte("ok"))
	return handshakeResult{state: tc.ConnectionState(), err: err}
}

// dialResult is the outcome of one connection from both sides.
type dialResult struct {
	client, server       tls.ConnectionState
	clientErr, serverErr error
}

// dial connects to s with cfg, completes the handshake and reads the server's
// "ok". In TLS 1.3 the server checks the client certificate after the
// client's side of the handshake is done, so a rejection of the client shows
// up as the read error.
func (s *tlsServer) dial(t *testing.T, cfg *tls.Config) dialResult {
	t.Helper()
	var res dialResult
	conn, err := net.DialTimeout("tcp", s.addr, handshakeTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	tc := tls.Client(conn, cfg)
	tc.SetDeadline(time.Now().Add(handshakeTimeout))
	res.clientErr = tc.Handshake()
	if res.clientErr == nil {
		buf := make([]byte, 2)
		if _, err := io.ReadFull(tc, buf); err != nil {
			res.clientErr = err
		}
		res.client = tc.ConnectionState()
	}
	tc.Close()
	select {
	case sr := <-s.results:
		res.server, res.serverErr = sr.state, sr.err
	case <-time.After(handshakeTimeout):
		t.Fatal("server did not finish the handshake")
	}
	return res
}
