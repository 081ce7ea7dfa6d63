package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/gearbridge/gearbridge/certs"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// gbFail runs a gearbridge command that must fail and returns its output.
func (c *cluster) gbFail(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, gbBin, args...).CombinedOutput()
	if err == nil {
		c.t.Fatalf("gearbridge %s succeeded, want a failure:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

// token runs certs token and returns the token and the CA fingerprint it
// printed.
func (c *cluster) token(args ...string) (token, fingerprint string) {
	c.t.Helper()
	out := c.gb(append([]string{"certs", "token", "--dir", c.ca}, args...)...)
	m := regexp.MustCompile(`token: (gbt_\S+)\nCA fingerprint: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		c.t.Fatalf("certs token printed no token and fingerprint:\n%s", out)
	}
	return m[1], m[2]
}

// startEnrollingBridge starts a bridge that enrolls with the cluster's CA.
func (c *cluster) startEnrollingBridge(extra ...string) (*proc, string) {
	c.t.Helper()
	return c.startBridge("bridge", "127.0.0.1:0", append([]string{"--certs-dir", c.ca}, extra...)...)
}

// runOneCheck submits one check and waits for its result.
func (c *cluster) runOneCheck(check string, id int) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	queue, j := checkJob(id, check, 1, "", time.Now())
	c.submit(ctx, queue, j)
	r := c.collect("check_results", 1, time.Minute)[0]
	if r.HostName != j.HostName || r.ReturnCode != 1 || !strings.HasPrefix(r.Output, "STATE 1") {
		c.t.Fatalf("result %+v for %s", r.Result, j.HostName)
	}
	return r
}

// TestEnrollEndToEnd: certs init → certs token → worker enroll on a fresh
// state dir → worker runs with --state-dir only and runs a check. The token
// is refused on its second use and after it expires.
func TestEnrollEndToEnd(t *testing.T) {
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	bp, baddr := c.startEnrollingBridge()

	// The token's queues become the identity's rule: the cluster's authz
	// file only knows "w*".
	tok, fp := c.token("--role", "worker", "--name", "remote-1", "--ttl", "1h", "--queues", "service,host")
	state := filepath.Join(c.dir, "remote-1")
	out := c.gb("worker", "enroll", "--bridge", baddr, "--token", tok, "--ca-fingerprint", fp, "--state-dir", state)
	if !strings.Contains(out, `enrolled as worker "remote-1"`) {
		t.Fatalf("enroll output:\n%s", out)
	}
	if fi, err := os.Stat(filepath.Join(state, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	c.waitLog(bp, `msg=enrolled .*identity=remote-1`, 5*time.Second)

	c.start("remote-1", "worker", "--bridge", baddr, "--state-dir", state, "--services", "--hosts", "--log-level", "debug")
	c.waitLog(bp, `worker session started.*identity=remote-1`, 10*time.Second)
	c.runOneCheck(check, 1)

	// Second use of the token.
	out = c.gbFail("worker", "enroll", "--bridge", baddr, "--token", tok, "--ca-fingerprint", fp, "--state-dir", filepath.Join(c.dir, "again"))
	if !strings.Contains(out, "Unauthenticated") {
		t.Fatalf("second use:\n%s", out)
	}
	c.waitLog(bp, `refused enrollment.*token already used`, 5*time.Second)

	// After it expires.
	tok2, _ := c.token("--role", "worker", "--name", "late", "--ttl", "1s")
	time.Sleep(1500 * time.Millisecond)
	out = c.gbFail("worker", "enroll", "--bridge", baddr, "--token", tok2, "--ca-fingerprint", fp, "--state-dir", filepath.Join(c.dir, "late"))
	if !strings.Contains(out, "Unauthenticated") {
		t.Fatalf("expired token:\n%s", out)
	}
	c.waitLog(bp, `refused enrollment.*token expired`, 5*time.Second)

	// A wrong fingerprint is refused by the client before it sends the token.
	tok3, _ := c.token("--role", "worker", "--name", "pinned", "--ttl", "1h")
	out = c.gbFail("worker", "enroll", "--bridge", baddr, "--token", tok3, "--ca-fingerprint", "sha256:"+strings.Repeat("ab", 32), "--state-dir", filepath.Join(c.dir, "pinned"))
	if !strings.Contains(out, "fingerprint") {
		t.Fatalf("wrong fingerprint:\n%s", out)
	}
	if list := c.gb("certs", "list", "--dir", c.ca); !strings.Contains(list, "remote-1") || !strings.Contains(list, "unused") {
		t.Fatalf("certs list:\n%s", list)
	}
}

// TestRenewalKeepsSession: with 30 s certificates the enrolled worker
// renews after 20 s over its connection, and again after the first
// certificate has expired; its session is never dropped and it keeps
// running checks.
func TestRenewalKeepsSession(t *testing.T) {
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	bp, baddr := c.startEnrollingBridge("--cert-lifetime", "30s")
	tok, fp := c.token("--role", "worker", "--name", "short", "--queues", "service,host")
	state := filepath.Join(c.dir, "short")
	c.gb("worker", "enroll", "--bridge", baddr, "--token", tok, "--ca-fingerprint", fp, "--state-dir", state)
	first, err := os.ReadFile(filepath.Join(state, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	w := c.start("short", "worker", "--bridge", baddr, "--state-dir", state, "--services", "--hosts",
		"--renew-check-interval", "1s", "--log-level", "debug")
	c.waitLog(bp, `worker session started.*identity=short`, 10*time.Second)
	c.runOneCheck(check, 1)

	c.waitLog(w, `renewed certificate`, 30*time.Second)
	c.waitLog(bp, `renewed certificate.*identity=short`, time.Second)
	renewed, _ := os.ReadFile(filepath.Join(state, "cert.pem"))
	if string(renewed) == string(first) {
		t.Fatal("cert.pem unchanged after the renewal")
	}
	// The second renewal is due after the certificate the connection was
	// opened with has expired: the worker renews over a new connection
	// with its current certificate, and the session stays.
	deadline := time.Now().Add(40 * time.Second)
	for strings.Count(mustRead(t, w.log), "renewed certificate") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no second renewal:\n%s", mustRead(t, w.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.runOneCheck(check, 2)
	for _, p := range []*proc{w, bp} {
		b, _ := os.ReadFile(p.log)
		if strings.Contains(string(b), "worker disconnected") || strings.Contains(string(b), "session closed") {
			t.Fatalf("%s: the session was dropped:\n%s", p.name, b)
		}
	}
	if n := strings.Count(mustRead(t, bp.log), "worker session started"); n != 1 {
		t.Fatalf("%d sessions started, want 1", n)
	}
}

// TestRevokeEndsSession: revoking a connected worker ends its session
// within 5 s, and its unfinished check is requeued and run by another
// worker.
func TestRevokeEndsSession(t *testing.T) {
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	bp, baddr := c.startEnrollingBridge("--resume-grace", "30s")
	c.startWorker("w-bad", baddr, "--services", "--hosts")
	c.waitLog(bp, `worker session started.*identity=w-bad`, 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	queue, j := checkJob(7, check, 0, "8", time.Now())
	c.submit(ctx, queue, j)
	// The check runs on w-bad (it logs its id when it starts).
	deadline := time.Now().Add(10 * time.Second)
	for runs(t, filepath.Join(c.dir, "runs.log"))["7"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the check did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	c.gb("certs", "revoke", "--dir", c.ca, "--reason", "test", "w-bad")
	c.waitLog(bp, `session closed.*identity=w-bad.*reason="certificate revoked".*requeued=1`, 5*time.Second)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("session closed after %v", d)
	}
	// The revoked worker cannot come back.
	c.waitLog(bp, `refused unauthenticated call.*certificate revoked`, 10*time.Second)

	// Its check went back to gearmand: another worker runs it.
	c.startWorker("w-good", baddr, "--services", "--hosts")
	r := c.collect("check_results", 1, time.Minute)[0]
	if r.HostName != j.HostName || !strings.HasSuffix(r.Source, "w-good") {
		t.Fatalf("result %s from %q, want %s from w-good", r.HostName, r.Source, j.HostName)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mintCert signs a worker certificate for name with the CA key in caDir,
// or self-signs it (copying subject and identity) when caDir is empty,
// valid from notBefore to notAfter: certificates the certs command
// refuses to make.
func mintCert(t *testing.T, caDir, name string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := url.Parse("gearbridge://worker/" + name)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
	}
	parent, signer := tmpl, crypto.Signer(key)
	if caDir != "" {
		ca, err := tls.LoadX509KeyPair(filepath.Join(caDir, "ca.crt"), filepath.Join(caDir, "ca.key"))
		if err != nil {
			t.Fatal(err)
		}
		parent, signer = ca.Leaf, ca.PrivateKey.(crypto.Signer)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// loadPair loads a certificate that certs issue wrote.
func loadPair(t *testing.T, dir, name string) tls.Certificate {
	t.Helper()
	p, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// openSession opens a worker session to the bridge at addr with cert and
// returns the status the bridge answers the hello with.
func openSession(t *testing.T, addr, fingerprint string, cert tls.Certificate, queues ...string) error {
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
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := pb.NewWorkerServiceClient(cc).Work(ctx)
	if err != nil {
		return err
	}
	_ = st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Hello{Hello: &pb.Hello{Identifier: "matrix", Queues: queues, Slots: 1, Capacity: 1}}})
	m, err := st.Recv()
	if err != nil {
		return err
	}
	t.Fatalf("session accepted: %v", m)
	return nil
}

// TestCertMatrix opens worker sessions to a real bridge process with each
// kind of bad certificate. Each is refused with Unauthenticated or
// PermissionDenied, and the bridge log says why.
func TestCertMatrix(t *testing.T) {
	c := newCluster(t)
	bp, baddr := c.startEnrollingBridge()
	fp := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(c.gb("certs", "list", "--dir", c.ca))
	now := time.Now()

	c.gb("certs", "issue", "--dir", c.ca, "--role", "worker", "--name", "w-revoked")
	c.gb("certs", "revoke", "--dir", c.ca, "w-revoked")
	c.gb("certs", "issue", "--dir", c.ca, "--role", "sender", "--name", "s1")
	c.gb("certs", "issue", "--dir", c.ca, "--role", "worker", "--name", "w-ok")
	other := filepath.Join(c.dir, "other-ca")
	c.gb("certs", "init", "--dir", other)
	c.gb("certs", "issue", "--dir", other, "--role", "worker", "--name", "w-ok")
	// The bridge picks up revoked.json by itself.
	c.waitLog(bp, `reloaded after a file changed`, 5*time.Second)

	for _, tc := range []struct {
		name   string
		cert   tls.Certificate
		queues []string
		code   codes.Code
		log    string
	}{
		{"expired", mintCert(t, c.ca, "w-expired", now.Add(-2*time.Hour), now.Add(-time.Hour)), []string{"service"},
			codes.Unauthenticated, `client certificate refused: client certificate \\"w-expired\\".*expired`},
		{"not yet valid", mintCert(t, c.ca, "w-future", now.Add(time.Hour), now.Add(2*time.Hour)), []string{"service"},
			codes.Unauthenticated, `client certificate refused: client certificate \\"w-future\\".*not yet valid`},
		{"revoked", loadPair(t, c.ca, "w-revoked"), []string{"service"},
			codes.Unauthenticated, `client certificate refused: client worker \\"w-revoked\\".*certificate revoked`},
		{"signed by another CA", loadPair(t, other, "w-ok"), []string{"service"},
			codes.Unauthenticated, `client certificate refused: client certificate \\"w-ok\\".*unknown authority`},
		{"wrong role", loadPair(t, c.ca, "s1"), []string{"service"},
			codes.PermissionDenied, `refused call" identity=s1 .*has role \\"sender\\", this service needs role \\"worker\\"`},
		{"queue not allowed", loadPair(t, c.ca, "w-ok"), []string{"servicegroup_secret"},
			codes.PermissionDenied, `refused worker session" identity=w-ok .*not allowed to work on queue \\"servicegroup_secret\\"`},
		{"self-signed copy", mintCert(t, "", "w-ok", now.Add(-time.Hour), now.Add(time.Hour)), []string{"service"},
			codes.Unauthenticated, `client certificate refused: client certificate \\"w-ok\\".*unknown authority`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx := regexp.MustCompile(tc.log)
			before := len(rx.FindAllString(mustRead(t, bp.log), -1))
			err := openSession(t, baddr, fp, tc.cert, tc.queues...)
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
			// A new log line with the reason, not one of an earlier case.
			deadline := time.Now().Add(5 * time.Second)
			for len(rx.FindAllString(mustRead(t, bp.log), -1)) == before {
				if time.Now().After(deadline) {
					t.Fatalf("bridge did not log %q", tc.log)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	// The healthy certificate with an allowed queue works, as a control.
	cc := loadPair(t, c.ca, "w-ok")
	host, _, _ := net.SplitHostPort(baddr)
	tcfg, _ := certs.PinnedClientTLSConfig(fp, host)
	tcfg.Certificates = []tls.Certificate{cc}
	conn, err := grpc.NewClient(baddr, grpc.WithTransportCredentials(credentials.NewTLS(tcfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := pb.NewWorkerServiceClient(conn).Work(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.WorkRequest{Msg: &pb.WorkRequest_Hello{Hello: &pb.Hello{Queues: []string{"service"}, Slots: 1, Capacity: 1}}}); err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.GetWelcome() == nil {
		t.Fatalf("control session: %v %v", m, err)
	}
}

// TestSendEnroll: a sender enrolls with a token limited to some hosts and
// then sends over the bridge with nothing but its state directory.
func TestSendEnroll(t *testing.T) {
	c := newCluster(t)
	bp, baddr := c.startEnrollingBridge()
	tok, fp := c.token("--role", "sender", "--name", "ci-runner", "--ttl", "1h", "--hosts", "ci-*")
	state := filepath.Join(c.dir, "ci-runner")
	out := c.gb("send", "enroll", "--bridge", baddr, "--token", tok, "--ca-fingerprint", fp, "--state-dir", state)
	if !strings.Contains(out, `enrolled as sender "ci-runner"`) {
		t.Fatalf("enroll output:\n%s", out)
	}
	c.waitLog(bp, `msg=enrolled .*identity=ci-runner`, 5*time.Second)
	c.gb("send", "--bridge", baddr, "--state-dir", state, "--host", "ci-web", "--service", "build", "-r", "2", "-m", "BROKEN")
	r := c.collect("check_results", 1, 30*time.Second)[0]
	if r.HostName != "ci-web" || r.ServiceDescription != "build" || r.ReturnCode != 2 || r.Output != "BROKEN" || r.Type != "passive" {
		t.Fatalf("result %+v", r.Result)
	}
	// The token's hosts are the limit.
	out = c.gbFail("send", "--bridge", baddr, "--state-dir", state, "--no-spool", "--host", "db1", "-r", "0", "-m", "OK")
	if !strings.Contains(out, "not allowed") {
		t.Fatalf("a host outside the token's list was not refused:\n%s", out)
	}
}

// TestSendRenews: an enrolled sender renews its certificate itself once
// less than a third of the lifetime is left. Four sends started at once
// when it is due renew it once (the state directory is locked and the
// others find the new certificate), every result arrives, and the renewed
// pair works for the next send.
func TestSendRenews(t *testing.T) {
	c := newCluster(t)
	bp, baddr := c.startEnrollingBridge("--cert-lifetime", "15s")
	tok, fp := c.token("--role", "sender", "--name", "cron-sender", "--ttl", "1h", "--hosts", "*")
	state := filepath.Join(c.dir, "cron-sender")
	c.gb("send", "enroll", "--bridge", baddr, "--token", tok, "--ca-fingerprint", fp, "--state-dir", state)
	enrolled := time.Now()
	certPath := filepath.Join(state, "cert.pem")
	first := mustRead(t, certPath)

	send := func(host string) string {
		return c.gb("send", "--bridge", baddr, "--state-dir", state, "--host", host, "-r", "0", "-m", "OK")
	}
	send("fresh")
	if mustRead(t, certPath) != first {
		t.Fatal("a fresh certificate was renewed")
	}
	// Due after two thirds of 15 s; the sends have 4.5 s before it expires.
	time.Sleep(time.Until(enrolled.Add(10500 * time.Millisecond)))
	var wg sync.WaitGroup
	outs := make([]string, 4)
	errs := make([]error, 4)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command(gbBin, "send", "--bridge", baddr, "--state-dir", state,
				"--host", fmt.Sprintf("due%d", i), "-r", "0", "-m", "OK").CombinedOutput()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("send %d: %v\n%s", i, err, outs[i])
		}
	}
	c.waitLog(bp, `renewed certificate.*identity=cron-sender`, 5*time.Second)
	if n := strings.Count(mustRead(t, bp.log), "renewed certificate"); n != 1 {
		t.Fatalf("%d renewals for 4 concurrent sends, want 1:\n%s", n, strings.Join(outs, "\n"))
	}
	if mustRead(t, certPath) == first {
		t.Fatal("cert.pem unchanged after the renewal")
	}
	// The renewed pair on disk is the one the next run uses.
	send("after")
	got := map[string]bool{}
	for _, r := range c.collect("check_results", 6, 30*time.Second) {
		got[r.HostName] = true
	}
	for _, h := range []string{"fresh", "due0", "due1", "due2", "due3", "after"} {
		if !got[h] {
			t.Fatalf("no result for %s; got %v", h, got)
		}
	}
}
