package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/internal/certwatch"
)

// syncBuffer is a bytes.Buffer that a running command may write to while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// workerPKI is a CA with a worker certificate for w1 of the given
// lifetime, written as w1.crt and w1.key beside the CA directory.
type workerPKI struct {
	ca                        *certs.CA
	certFile, keyFile, caFile string
}

func newWorkerPKI(t *testing.T, lifetime time.Duration) workerPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.InitCA(filepath.Join(dir, "ca"), certs.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.IssueClient(certs.RoleWorker, "w1", lifetime)
	if err != nil {
		t.Fatal(err)
	}
	p := workerPKI{ca: ca, certFile: filepath.Join(dir, "w1.crt"), keyFile: filepath.Join(dir, "w1.key"),
		caFile: filepath.Join(ca.Dir(), certs.CACertFile)}
	writeTestFile(t, p.certFile, string(crt))
	writeTestFile(t, p.keyFile, string(key))
	return p
}

func (p workerPKI) flags() []string {
	return []string{"--tls-ca", p.caFile, "--tls-cert", p.certFile, "--tls-key", p.keyFile}
}

// TestWorkerWarnsBeforeItsCertificateExpires: a worker whose certificate
// has 10 days left says so at start and exports the expiry of its
// certificate and of its CA.
func TestWorkerWarnsBeforeItsCertificateExpires(t *testing.T) {
	p := newWorkerPKI(t, 10*24*time.Hour)
	opts, _, cfg, err := parseWorkerFlags(t, append([]string{"--bridge", "127.0.0.1:1", "--identifier", "w1", "--services"}, p.flags()...)...)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runWorkerWith(ctx, opts, cfg, log, reg) }()

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "certificate expires soon") || gatheredExpiry(t, reg) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no expiry warning and metric; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l := logs.String(); !strings.Contains(l, "identity=w1") || !strings.Contains(l, "days_left=9") {
		t.Errorf("warning lacks identity or days left:\n%s", l)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop")
	}
}

// gatheredExpiry is the number of expiry series in reg.
func gatheredExpiry(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == certwatch.MetricName {
			return len(mf.GetMetric())
		}
	}
	return 0
}
