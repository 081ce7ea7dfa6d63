package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestInitCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	before := time.Now()
	ca, err := InitCA(dir, CAOptions{})
	if err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	c := ca.Certificate()

	if !c.BasicConstraintsValid || !c.IsCA {
		t.Error("not a CA certificate")
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("MaxPathLen = %d, MaxPathLenZero = %v; want 0, true", c.MaxPathLen, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; c.KeyUsage != want {
		t.Errorf("KeyUsage = %b, want %b", c.KeyUsage, want)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if c.Subject.CommonName != DefaultCACommonName {
		t.Errorf("CN = %q, want %q", c.Subject.CommonName, DefaultCACommonName)
	}
	if got := c.NotAfter.Sub(before); got < DefaultCALifetime-time.Minute || got > DefaultCALifetime+time.Minute {
		t.Errorf("CA valid for %v from now, want about %v", got, DefaultCALifetime)
	}
	if !c.NotBefore.Before(before.Add(-clockSkew + time.Minute)) {
		t.Errorf("NotBefore %v is not backdated by %v", c.NotBefore, clockSkew)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %x is not a positive 128-bit number", c.SerialNumber)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}

	for file, want := range map[string]os.FileMode{CAKeyFile: KeyFileMode, CACertFile: CertFileMode} {
		checkMode(t, filepath.Join(dir, file), want)
	}
	checkMode(t, dir, 0o700|fs.ModeDir)

	fp := ca.Fingerprint()
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(fp) {
		t.Errorf("Fingerprint() = %q, want sha256:<64 lower-case hex digits>", fp)
	}
	sum := sha256.Sum256(firstCert(t, readFile(t, filepath.Join(dir, CACertFile))).Raw)
	if want := "sha256:" + hex.EncodeToString(sum[:]); fp != want {
		t.Errorf("Fingerprint() = %q, want SHA-256 of ca.crt's DER %q", fp, want)
	}

	loaded, err := LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if loaded.Fingerprint() != fp {
		t.Errorf("LoadCA fingerprint %q, want %q", loaded.Fingerprint(), fp)
	}
	// The loaded CA can issue certificates that chain to the original.
	certPEM, _, err := loaded.IssueClient(RoleWorker, "w1", 0)
	if err != nil {
		t.Fatalf("IssueClient with loaded CA: %v", err)
	}
	if err := firstCert(t, certPEM).CheckSignatureFrom(c); err != nil {
		t.Errorf("certificate from loaded CA does not chain to the CA: %v", err)
	}
}

func TestInitCAOptions(t *testing.T) {
	ca, err := InitCA(t.TempDir(), CAOptions{CommonName: "Example Monitoring CA", Lifetime: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate()
	if c.Subject.CommonName != "Example Monitoring CA" {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if got := c.NotAfter.Sub(c.NotBefore) - clockSkew; got != 365*24*time.Hour {
		t.Errorf("lifetime %v, want 8760h", got)
	}
	// A leaf may not outlive its CA.
	if _, _, err := ca.IssueClient(RoleWorker, "w1", 2*365*24*time.Hour); err == nil || !strings.Contains(err.Error(), "after the CA certificate expires") {
		t.Errorf("IssueClient beyond CA expiry: err = %v", err)
	}
}

func TestCAOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    CAOptions
		wantErr string
	}{
		{"zero value", CAOptions{}, ""},
		{"custom", CAOptions{CommonName: "x", Lifetime: time.Hour}, ""},
		{"negative lifetime", CAOptions{Lifetime: -time.Hour}, "negative"},
		{"long CN", CAOptions{CommonName: strings.Repeat("c", 65)}, "at most 64"},
		{"control character in CN", CAOptions{CommonName: "a\nb"}, "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, "Validate", tt.opts.Validate(), tt.wantErr)
			if tt.wantErr != "" {
				_, err := InitCA(t.TempDir(), tt.opts)
				checkErr(t, "InitCA", err, tt.wantErr)
			}
		})
	}
}

func TestInitCARefusesToOverwrite(t *testing.T) {
	tests := []struct {
		name     string
		existing []string
		wantPath string
	}{
		{"complete CA", []string{CACertFile, CAKeyFile}, CACertFile},
		{"only key", []string{CAKeyFile}, CAKeyFile},
		{"only certificate", []string{CACertFile}, CACertFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.existing {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("precious "+f), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := InitCA(dir, CAOptions{})
			var exists *CAExistsError
			if !errors.As(err, &exists) {
				t.Fatalf("InitCA error = %v, want *CAExistsError", err)
			}
			if want := filepath.Join(dir, tt.wantPath); exists.Path != want {
				t.Errorf("CAExistsError.Path = %q, want %q", exists.Path, want)
			}
			if !errors.Is(err, fs.ErrExist) {
				t.Errorf("errors.Is(%v, fs.ErrExist) = false", err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(tt.existing) {
				t.Errorf("directory holds %d entries after refusal, want %d", len(entries), len(tt.existing))
			}
			for _, f := range tt.existing {
				if got := string(readFile(t, filepath.Join(dir, f))); got != "precious "+f {
					t.Errorf("%s was changed to %q", f, got)
				}
			}
		})
	}
}

func TestInitCATwice(t *testing.T) {
	ca := newTestCA(t)
	keyBefore := readFile(t, filepath.Join(ca.Dir(), CAKeyFile))
	if _, err := InitCA(ca.Dir(), CAOptions{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second InitCA: err = %v, want fs.ErrExist", err)
	}
	if string(readFile(t, filepath.Join(ca.Dir(), CAKeyFile))) != string(keyBefore) {
		t.Error("second InitCA changed ca.key")
	}
}

func TestLoadCAErrors(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	leafPEM, leafKey, err := ca.IssueClient(RoleWorker, "w1", 0)
	if err != nil {
		t.Fatal(err)
	}
	caCert := readFile(t, filepath.Join(ca.Dir(), CACertFile))
	caKey := readFile(t, filepath.Join(ca.Dir(), CAKeyFile))

	tests := []struct {
		name      string
		cert, key []byte
		wantErr   string
		skipCert  bool
		skipKey   bool
	}{
		{name: "missing directory", skipCert: true, skipKey: true, wantErr: "no such file"},
		{name: "missing key", cert: caCert, skipKey: true, wantErr: "no such file"},
		{name: "key of another CA", cert: caCert, key: readFile(t, filepath.Join(other.Dir(), CAKeyFile)), wantErr: "does not belong"},
		{name: "leaf instead of CA", cert: leafPEM, key: leafKey, wantErr: "not a CA certificate"},
		{name: "two certificates", cert: append(append([]byte{}, caCert...), caCert...), key: caKey, wantErr: "holds 2 certificates"},
		{name: "garbage certificate", cert: []byte("hello"), key: caKey, wantErr: "trailing data"},
		{name: "certificate in key file", cert: caCert, key: caCert, wantErr: "unexpected PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			if !tt.skipCert || !tt.skipKey {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.skipCert {
				if err := os.WriteFile(filepath.Join(dir, CACertFile), tt.cert, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.skipKey {
				if err := os.WriteFile(filepath.Join(dir, CAKeyFile), tt.key, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadCA(dir)
			checkErr(t, "LoadCA", err, tt.wantErr)
		})
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != want {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), got, want)
	}
}
