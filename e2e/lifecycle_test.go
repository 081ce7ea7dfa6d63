package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// caFingerprint is the cluster CA's fingerprint, as certs list prints it.
func (c *cluster) caFingerprint() string {
	c.t.Helper()
	fp := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(c.gb("certs", "list", "--dir", c.ca))
	if fp == "" {
		c.t.Fatal("certs list printed no fingerprint")
	}
	return fp
}

// dialBridge connects to the bridge at addr with cert, trusting the CA by
// fingerprint.
func dialBridge(t *testing.T, addr, fingerprint string, cert tls.Certificate) *grpc.ClientConn {
	t.Helper()
	host, _, _ := net.SplitHostPort(addr)
	tc, err := certs.PinnedClientTLSConfig(fingerprint, host)
	if err != nil {
		t.Fatal(err)
	}
	tc.Certificates = []tls.Certificate{cert}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// trySession opens a worker session with cert and reports whether the
// bridge welcomed it, or the status it refused it with.
func trySession(t *testing.T, addr, fingerprint string, cert tls.Certificate) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := pb.NewWorkerServiceClient(dialBridge(t, addr, fingerprint, cert)).Work(ctx)
	if err != nil {
		return err
	}
	_ = st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Hello{Hello: &pb.Hello{Queues: []string{"service"}, Slots: 1, Capacity: 1}}})
	m, err := st.Recv()
	if err != nil {
		return err
	}
	if m.GetWelcome() == nil {
		t.Fatalf("first message %v, want a welcome", m)
	}
	return nil
}

// copyPair copies NAME.crt and NAME.key from the CA directory to dir.
func (c *cluster) copyPair(name, dir string) tls.Certificate {
	c.t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	for _, ext := range []string{".crt", ".key"} {
		data, err := os.ReadFile(filepath.Join(c.ca, name+ext))
		if err != nil {
			c.t.Fatal(err)
		}
		writeFile(c.t, filepath.Join(dir, name+ext), string(data), 0o600)
	}
	return loadPair(c.t, dir, name)
}

// TestRevokeIdentity revokes a worker by name while it is connected with a
// certificate renewed from its first one, in both bridge modes: with the CA
// directory (--certs-dir) and with --tls-* files plus --revocations. Within
// 2 s its session is closed; afterwards the original certificate, the
// renewed one and one the CA key signs with an earlier NotBefore are all
// refused, a renewal after the revocation is refused, and only an explicit
// re-enrollment gives the name a working certificate again.
func TestRevokeIdentity(t *testing.T) {
	for _, mode := range []string{"certs-dir", "tls-files"} {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t)
			c.gb("certs", "issue", "--dir", c.ca, "--role", "worker", "--name", "w-rev")
			original := c.copyPair("w-rev", filepath.Join(c.dir, "original"))
			c.gb("certs", "renew", "--dir", c.ca, "--name", "w-rev") // renewed before the revocation
			renewed := loadPair(t, c.ca, "w-rev")

			var bp *proc
			var baddr string
			if mode == "certs-dir" {
				bp, baddr = c.startEnrollingBridge()
			} else {
				bp, baddr = c.startBridge("bridge", "127.0.0.1:0", "--revocations", filepath.Join(c.ca, certs.RevocationsFile))
			}
			fp := c.caFingerprint()
			w := c.startWorker("w-rev", baddr, "--services", "--hosts")
			c.waitLog(bp, `worker session started.*identity=w-rev`, 10*time.Second)

			out := c.gb("certs", "revoke", "--dir", c.ca, "--reason", "stolen", "w-rev")
			revoked := time.Now()
			if !strings.Contains(out, `revoked worker "w-rev"`) {
				t.Fatalf("certs revoke:\n%s", out)
			}
			c.waitLog(bp, `session closed.*identity=w-rev.*reason="certificate revoked"`, 2*time.Second)
			if d := time.Since(revoked); d > 2*time.Second {
				t.Fatalf("session closed %v after the revocation", d)
			}
			// The worker's own attempts to come back are refused.
			c.waitLog(bp, `refused unauthenticated call.*w-rev.*certificate revoked`, 10*time.Second)
			w.stop(syscall.SIGTERM)

			now := time.Now()
			for _, tc := range []struct {
				what string
				cert tls.Certificate
			}{
				{"original", original},
				{"renewed before the revocation", renewed},
				{"signed after the revocation, valid from before it", mintCert(t, c.ca, "w-rev", now.Add(-time.Minute), now.Add(time.Hour))},
			} {
				err := trySession(t, baddr, fp, tc.cert)
				if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
					t.Fatalf("%s: err = %v, want Unauthenticated, revoked", tc.what, err)
				}
			}
			// Renewed after the revocation: the CA refuses, and so does the
			// bridge that renews for its workers.
			if out := c.gbFail("certs", "renew", "--dir", c.ca, "--name", "w-rev"); !strings.Contains(out, "--reenroll") {
				t.Fatalf("certs renew of a revoked name:\n%s", out)
			}
			if mode == "certs-dir" {
				_, csr, err := certs.NewKeyAndCSR()
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err = pb.NewEnrollServiceClient(dialBridge(t, baddr, fp, renewed)).Renew(ctx, &pb.RenewRequest{CsrPem: csr})
				if status.Code(err) != codes.Unauthenticated {
					t.Fatalf("renewal over the bridge after the revocation: err = %v, want Unauthenticated", err)
				}
			}

			// Re-enrolled explicitly: the new certificate works, the old
			// ones stay refused.
			c.gb("certs", "issue", "--dir", c.ca, "--role", "worker", "--name", "w-rev", "--force", "--reenroll")
			deadline := time.Now().Add(5 * time.Second)
			for {
				err := trySession(t, baddr, fp, loadPair(t, c.ca, "w-rev"))
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("re-enrolled certificate refused: %v", err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := trySession(t, baddr, fp, renewed); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("old certificate after re-enrollment: err = %v", err)
			}
		})
	}
}

// bridgeSerial completes a TLS handshake with the bridge at addr and
// returns the serial of the certificate it presents.
func bridgeSerial(t *testing.T, addr, fingerprint string, cert tls.Certificate) string {
	t.Helper()
	host, _, _ := net.SplitHostPort(addr)
	tc, err := certs.PinnedClientTLSConfig(fingerprint, host)
	if err != nil {
		t.Fatal(err)
	}
	tc.Certificates = []tls.Certificate{cert}
	tc.NextProtos = []string{"h2"}
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, tc)
	if err != nil {
		t.Fatalf("handshake with the bridge: %v", err)
	}
	defer conn.Close()
	return certs.SerialOf(conn.ConnectionState().PeerCertificates[0])
}

// TestBridgeCertRenewalKeepsSession renews the running bridge's own
// certificate with certs renew: new TLS handshakes see the new serial
// within seconds, while the attached worker keeps its session (no
// reconnect, no resume) and runs checks before and after.
func TestBridgeCertRenewalKeepsSession(t *testing.T) {
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	bp, baddr := c.startBridge("bridge", "127.0.0.1:0")
	fp := c.caFingerprint()
	w := c.startWorker("w-stay", baddr, "--services", "--hosts")
	c.waitLog(bp, `worker session started.*identity=w-stay`, 10*time.Second)
	c.runOneCheck(check, 1)

	probe := loadPair(t, c.ca, "w-stay")
	before := bridgeSerial(t, baddr, fp, probe)
	out := c.gb("certs", "renew", "--dir", c.ca, "--name", "bridge")
	if !strings.Contains(out, `renewed bridge certificate for "bridge"`) {
		t.Fatalf("certs renew:\n%s", out)
	}
	data, err := os.ReadFile(filepath.Join(c.ca, "bridge.crt"))
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := certs.ParseCertificatePEM(data[:strings.Index(string(data), "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----\n")])
	if err != nil {
		t.Fatal(err)
	}
	want := certs.SerialOf(renewed)
	if want == before {
		t.Fatal("certs renew kept the serial")
	}
	c.waitLog(bp, `reloaded after a file changed`, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for got := bridgeSerial(t, baddr, fp, probe); got != want; got = bridgeSerial(t, baddr, fp, probe) {
		if time.Now().After(deadline) {
			t.Fatalf("new handshakes see serial %s, want the renewed %s", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.runOneCheck(check, 2)

	wlog, blog := mustRead(t, w.log), mustRead(t, bp.log)
	if n := strings.Count(wlog, "session started"); n != 1 {
		t.Fatalf("worker started %d sessions, want 1:\n%s", n, wlog)
	}
	for _, s := range []string{"lost the bridge", "session resumed"} {
		if strings.Contains(wlog, s) {
			t.Fatalf("worker log says %q:\n%s", s, wlog)
		}
	}
	if n := strings.Count(blog, "worker session started"); n != 1 {
		t.Fatalf("bridge started %d sessions, want 1", n)
	}
	for _, s := range []string{"session closed", `msg="reload after a file changed"`} {
		if strings.Contains(blog, s) {
			t.Fatalf("bridge log says %q:\n%s", s, blog)
		}
	}
}
