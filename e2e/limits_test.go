package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startWorkerAs starts a worker process named proc with the certificate of
// identity cert (issued once) and that identity as its identifier, so that
// several processes can share one certificate.
func (c *cluster) startWorkerAs(proc, cert, bridgeAddr string, extra ...string) *proc {
	c.t.Helper()
	if _, err := os.Stat(filepath.Join(c.ca, cert+".crt")); err != nil {
		c.gb("certs", "issue", "--dir", c.ca, "--role", "worker", "--name", cert)
	}
	args := append([]string{"worker", "--bridge", bridgeAddr, "--identifier", cert,
		"--tls-ca", filepath.Join(c.ca, "ca.crt"), "--tls-cert", filepath.Join(c.ca, cert+".crt"),
		"--tls-key", filepath.Join(c.ca, cert+".key"), "--log-level", "debug"}, extra...)
	return c.start(proc, args...)
}

// countLog waits until re matches at least n times in p's log.
func (c *cluster) countLog(p *proc, re string, n int, timeout time.Duration) {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.log)
		if len(rx.FindAll(b, -1)) >= n {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not log %q %d times within %v:\n%s", p.name, re, n, timeout, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSessionLimitPerIdentityEndToEnd runs the real bridge with
// --max-sessions-per-identity 2 and three worker processes sharing one
// certificate: two get sessions, and check_gearman's ping on their status
// queue says so; the third is refused with ResourceExhausted (logged by
// the bridge once per interval however often the worker retries), while
// a worker of another identity still gets its session.
func TestSessionLimitPerIdentityEndToEnd(t *testing.T) {
	c := newCluster(t)
	bp, baddr := c.startBridge("bridge", "127.0.0.1:0", "--max-sessions-per-identity", "2")
	c.startWorkerAs("w1-a", "w1", baddr, "--services", "--max-workers", "3")
	c.startWorkerAs("w1-b", "w1", baddr, "--services", "--max-workers", "2")
	c.countLog(bp, `worker session started.* identity=w1 .*peer=127\.0\.0\.1:\d+`, 2, 20*time.Second)

	out := c.gb("check", "-H", c.gm.Addr(), "-q", "worker_w1", "-s", "check", "-t", "10")
	if want := "check_gearman OK - w1 has 5 worker and is working on 0 jobs. Version: "; !strings.HasPrefix(out, want) ||
		!strings.Contains(out, " (2 sessions)|worker=5;;;5;5 jobs=0c") {
		t.Errorf("check -q worker_w1:\n%s\nwant both sessions summed", out)
	}

	third := c.startWorkerAs("w1-c", "w1", baddr, "--services")
	c.waitLog(bp, `refused worker session" identity=w1 identifier=w1 peer=127\.0\.0\.1:\d+ reason=identity_limit .*ResourceExhausted.*already has 2 sessions.*max-sessions-per-identity`, 20*time.Second)
	c.waitLog(third, `cannot open a session with the bridge.*ResourceExhausted`, 20*time.Second)
	// The worker retries; the bridge does not log every attempt.
	c.countLog(third, `cannot open a session with the bridge`, 3, 30*time.Second)
	b, _ := os.ReadFile(bp.log)
	if n := strings.Count(string(b), `msg="refused worker session"`); n > 2 {
		t.Errorf("%d refusal lines for a few retries within seconds; want them rate-limited:\n%s", n, b)
	}

	w2 := c.startWorkerAs("w2", "w2", baddr, "--services")
	c.waitLog(bp, `worker session started.* identity=w2 `, 20*time.Second)
	c.waitLog(w2, "session started", 10*time.Second)
	if n := strings.Count(mustRead(t, bp.log), "worker session started"); n != 3 {
		t.Fatalf("%d sessions started, want 3 (two of w1, one of w2)", n)
	}
}

// TestBridgeRefusesAWorkerCertificateEndToEnd: the real bridge, started with
// a worker's certificate as its own, exits with a usage error naming the
// file instead of serving a certificate every worker would refuse.
func TestBridgeRefusesAWorkerCertificateEndToEnd(t *testing.T) {
	c := newCluster(t)
	c.gb("certs", "issue", "--dir", c.ca, "--role", "worker", "--name", "w-not-bridge")
	crt := filepath.Join(c.ca, "w-not-bridge.crt")
	cmd := exec.Command(gbBin, "bridge", "--listen", "127.0.0.1:0", "--server", c.gm.Addr(), "--key", testKey,
		"--tls-ca", filepath.Join(c.ca, "ca.crt"), "--tls-cert", crt,
		"--tls-key", filepath.Join(c.ca, "w-not-bridge.key"), "--authz", c.authz)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the bridge started with a worker certificate and kept running:\n%s", out)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2:\n%s", err, out)
	}
	if !strings.Contains(string(out), crt) || !strings.Contains(string(out), `role "worker"`) {
		t.Fatalf("output does not name %s and its role:\n%s", crt, out)
	}
}
