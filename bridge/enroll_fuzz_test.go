package bridge

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/certs"
)

// FuzzEnroll feeds arbitrary tokens and CSRs to the enrollment path. It
// must never panic, and it may issue a certificate only for the one valid
// token, only once, and only for the token's identity.
func FuzzEnroll(f *testing.F) {
	dir := f.TempDir()
	ca, err := certs.InitCA(dir, certs.CAOptions{})
	if err != nil {
		f.Fatal(err)
	}
	crt, key, err := ca.IssueServer([]string{"bridge.test"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for name, data := range map[string][]byte{"bridge.crt": crt, "bridge.key": key} {
		if err := certs.WriteFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			f.Fatal(err)
		}
	}
	r, err := certs.NewReloader(filepath.Join(dir, "bridge.crt"), filepath.Join(dir, "bridge.key"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		f.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Key = testKey
	cfg.CertsDir = dir
	b, err := New(cfg, Deps{Gearman: newFakeGearman(), TLS: r, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	_, csr, err := certs.NewKeyAndCSR()
	if err != nil {
		f.Fatal(err)
	}
	f.Add("gbt_"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", csr)
	f.Add("", []byte(nil))
	f.Add("gbt_", csr[:len(csr)/2])
	used := map[string]bool{}
	f.Fuzz(func(t *testing.T, token string, csrPEM []byte) {
		// A fresh valid token per run, so that the fuzzer can reach the
		// signing path by mutating towards it only through the CSR.
		valid, _, err := ca.Tokens().Create(certs.TokenSpec{Role: certs.RoleWorker, Name: "fuzz"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{token, valid} {
			certPEM, spec, err := b.enroll(tok, csrPEM)
			if err != nil {
				if tok != valid && !errors.Is(err, certs.ErrTokenInvalid) && certs.CheckCSR(csrPEM) == nil {
					t.Fatalf("token %q with a good CSR: %v, want a token error", tok, err)
				}
				continue
			}
			if tok != valid || used[tok] {
				t.Fatalf("issued a certificate for token %q", tok)
			}
			used[tok] = true
			c, err := certs.ParseCertificatePEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			if role, name, _ := certs.IdentityOf(c); role != certs.RoleWorker || name != "fuzz" || spec.Name != "fuzz" {
				t.Fatalf("issued %s/%s", role, name)
			}
			if _, _, err := b.enroll(tok, csrPEM); !errors.Is(err, certs.ErrTokenUsed) {
				t.Fatalf("second use: %v, want ErrTokenUsed", err)
			}
		}
	})
}
