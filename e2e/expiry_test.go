package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWorkerWithExpiredCertificateExits: a worker started with a
// certificate that has expired exits at once with a non-zero status and
// says how to get a new certificate, instead of retrying the bridge.
func TestWorkerWithExpiredCertificateExits(t *testing.T) {
	c := newCluster(t)
	_, baddr := c.startBridge("bridge", "127.0.0.1:0")

	now := time.Now()
	notAfter := now.Add(-time.Hour)
	pair := mintCert(t, c.ca, "w-expired", now.Add(-48*time.Hour), notAfter)
	keyDER, err := x509.MarshalPKCS8PrivateKey(pair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(c.dir, "w-expired.crt"), filepath.Join(c.dir, "w-expired.key")
	writeFile(t, crt, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Certificate[0]})), 0o644)
	writeFile(t, key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})), 0o600)

	// A worker that kept retrying would run until this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, gbBin, "worker", "--bridge", baddr, "--identifier", "w-expired", "--services",
		"--tls-ca", filepath.Join(c.ca, "ca.crt"), "--tls-cert", crt, "--tls-key", key).CombinedOutput()
	took := time.Since(start)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || ctx.Err() != nil {
		t.Fatalf("worker did not exit by itself (err %v after %v):\n%s", err, took, out)
	}
	if exit.ExitCode() == 0 {
		t.Fatalf("exit 0:\n%s", out)
	}
	if took > 10*time.Second {
		t.Errorf("took %v to give up", took)
	}
	for _, want := range []string{
		"certificate " + crt + " (worker w-expired) expired on " + notAfter.UTC().Format("2006-01-02 15:04 UTC"),
		`issue a new one with "gearbridge certs issue --role worker --name w-expired"`,
		`re-enroll with "gearbridge worker enroll"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "worker starting") {
		t.Errorf("the worker started before giving up:\n%s", out)
	}
}
