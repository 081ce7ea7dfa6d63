package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/bridge"
	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

// startRenewingBridge runs a real bridge in-process for certificates of c's
// CA, renewing for an hour, with gearmand behind it; w1 may serve the
// service queue.
func startRenewingBridge(t *testing.T, c *certCA) string {
	t.Helper()
	gm := gearmantest.Start(t)
	crt, key, err := c.ca.IssueServer([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crtFile, keyFile := filepath.Join(c.dir, "bridge.crt"), filepath.Join(c.dir, "bridge.key")
	writeTestFile(t, crtFile, string(crt))
	writeTestFile(t, keyFile, string(key))
	rl, err := certs.NewReloader(crtFile, keyFile, c.caFile())
	if err != nil {
		t.Fatal(err)
	}
	az, err := bridge.ParseAuthz([]byte("rules:\n  - {identity: w1, role: worker, queues: [service]}\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := bridge.DefaultConfig()
	cfg.Servers = []string{gm.Addr()}
	cfg.Key = "test_key_test_key"
	cfg.CertsDir = c.ca.Dir()
	cfg.CertLifetime = time.Hour
	cfg.Authz = az
	cfg.DrainTimeout = time.Second
	b, err := bridge.New(cfg, bridge.Deps{TLS: rl})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := b.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, lis, tc) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return lis.Addr().String()
}

// TestWorkerRenewsIssuedCertificate: with --renew, a worker running from
// files of `certs issue` renews them over its bridge connection like an
// enrolled worker renews its state directory.
func TestWorkerRenewsIssuedCertificate(t *testing.T) {
	c := newCertCA(t)
	addr := startRenewingBridge(t, c)
	// Ten minutes of a lifetime of an hour left: renewal is due.
	now := time.Now()
	crtFile := c.mint("w1", now.Add(-55*time.Minute), now.Add(10*time.Minute))
	keyFile := strings.TrimSuffix(crtFile, ".crt") + ".key"
	before, err := os.ReadFile(crtFile)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errOut syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, "gearbridge", []string{"worker", "--bridge", addr, "--identifier", "w1", "--services",
			"--tls-ca", c.caFile(), "--tls-cert", crtFile, "--tls-key", keyFile,
			"--renew", "--renew-check-interval", "100ms"}, strings.NewReader(""), &syncBuffer{}, &errOut)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		after, _ := os.ReadFile(crtFile)
		if string(after) != string(before) {
			break
		}
		select {
		case c := <-code:
			t.Fatalf("worker exited %d: %s", c, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate not renewed:\n%s", errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r, err := certs.NewReloader(crtFile, keyFile, c.caFile())
	if err != nil {
		t.Fatalf("the renewed files do not make a pair: %v", err)
	}
	if left := time.Until(r.Leaf().NotAfter); left < 50*time.Minute {
		t.Errorf("renewed certificate has %v left, want about an hour", left)
	}
	if _, name, _ := certs.IdentityOf(r.Leaf()); name != "w1" {
		t.Errorf("renewed for %q", name)
	}
	cancel()
	select {
	case c := <-code:
		if c != exitOK {
			t.Fatalf("exit %d: %s", c, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop")
	}
	if !strings.Contains(errOut.String(), "renewed certificate") {
		t.Errorf("no renewal logged:\n%s", errOut.String())
	}
}

// TestWorkerRenewNeedsFiles: --renew renews the files of --tls-cert and
// --tls-key; without them there is nothing to renew.
func TestWorkerRenewNeedsFiles(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	code, _, errOut := runCmd(t, "gearbridge", "worker", "--services", "--renew", "--tls-ca", "ca.crt",
		"--tls-cert", filepath.Join(dir, "missing", "w.crt"), "--tls-key", "w.key")
	if code != exitUsage || !strings.Contains(errOut, "--renew") || !strings.Contains(errOut, filepath.Join(dir, "missing")) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// TestWorkerRefusesExpiredCertificate: a worker whose certificate has
// expired exits at once and says how to get a new one, instead of trying
// the bridge every second.
func TestWorkerRefusesExpiredCertificate(t *testing.T) {
	c := newCertCA(t)
	now := time.Now()
	crtFile := c.mint("w1", now.Add(-48*time.Hour), now.Add(-time.Hour))
	keyFile := strings.TrimSuffix(crtFile, ".crt") + ".key"
	expiredOn := now.Add(-time.Hour).UTC().Format("2006-01-02 15:04 UTC")

	state := filepath.Join(c.dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{crtFile: "cert.pem", keyFile: "key.pem", c.caFile(): "ca.pem"} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(state, to), string(b))
	}

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"issued", []string{"--tls-ca", c.caFile(), "--tls-cert", crtFile, "--tls-key", keyFile},
			[]string{"certificate " + crtFile + " (worker w1) expired on " + expiredOn,
				`issue a new one with "gearbridge certs issue --role worker --name w1"`, `or re-enroll with "gearbridge worker enroll`}},
		{"issued with --renew", []string{"--tls-ca", c.caFile(), "--tls-cert", crtFile, "--tls-key", keyFile, "--renew"},
			[]string{"expired on " + expiredOn, "gearbridge certs issue"}},
		{"enrolled", []string{"--state-dir", state},
			[]string{"certificate " + filepath.Join(state, "cert.pem") + " (worker w1) expired on " + expiredOn,
				`re-enroll with "gearbridge worker enroll --state-dir NEW_DIR --bridge HOST:PORT --token TOKEN --ca-fingerprint sha256:…"`,
				`"gearbridge certs token --role worker --name w1"`, "instead of " + state}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			// A worker that does not give up runs until this deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var out, stderr syncBuffer
			code := run(ctx, "gearbridge", append([]string{"worker", "--bridge", "127.0.0.1:1", "--services"}, tt.args...),
				strings.NewReader(""), &out, &stderr)
			errOut := stderr.String()
			if code == exitOK {
				t.Fatalf("exit 0: %s", errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %v to give up", d)
			}
		})
	}
}
