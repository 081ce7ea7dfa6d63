package certs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTokenLifecycle(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(dir, CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokens := ca.Tokens()
	tok, rec, err := tokens.Create(TokenSpec{Role: RoleWorker, Name: "w1", Queues: []string{"service"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseToken(tok); err != nil {
		t.Fatalf("own token: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, TokensFile))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimPrefix(tok, tokenPrefix)
	if strings.Contains(string(data), secret) {
		t.Fatal("tokens.json holds the token itself")
	}
	if !strings.Contains(string(data), rec.Hash) {
		t.Fatal("tokens.json lacks the hash")
	}
	if fi, _ := os.Stat(filepath.Join(dir, TokensFile)); fi.Mode().Perm() != KeyFileMode {
		t.Fatalf("tokens.json mode %v", fi.Mode().Perm())
	}

	// A failing issue leaves the token usable.
	if _, err := tokens.Consume(tok, func(TokenRecord) (string, error) { return "", errors.New("boom") }); err == nil {
		t.Fatal("issue error not returned")
	}
	spec, err := tokens.Consume(tok, func(s TokenRecord) (string, error) { return "abc", nil })
	if err != nil || spec.Name != "w1" {
		t.Fatalf("consume: %v %+v", err, spec)
	}
	if _, err := tokens.Consume(tok, func(TokenRecord) (string, error) { return "x", nil }); !errors.Is(err, ErrTokenUsed) {
		t.Fatalf("second use: %v", err)
	}

	now := time.Now()
	tokens.now = func() time.Time { return now }
	tok2, _, _ := tokens.Create(TokenSpec{Role: RoleSender, Name: "s1", Hosts: []string{"*"}}, time.Minute)
	tokens.now = func() time.Time { return now.Add(time.Minute) }
	if _, err := tokens.Consume(tok2, func(TokenRecord) (string, error) { return "x", nil }); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := tokens.Consume(tokenPrefix+strings.Repeat("A", 43), nil); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestTokenSingleUseUnderConcurrency(t *testing.T) {
	ca, err := InitCA(t.TempDir(), CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := ca.Tokens().Create(TokenSpec{Role: RoleWorker, Name: "w1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			// A separate Tokens value, as another process would have.
			if _, err := OpenTokens(ca.Dir()).Consume(tok, func(TokenRecord) (string, error) { return "1", nil }); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("token used %d times", wins)
	}
}

func TestTokenSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec TokenSpec
	}{
		{"admin role", TokenSpec{Role: RoleAdmin, Name: "a"}},
		{"bridge role", TokenSpec{Role: RoleBridge, Name: "b"}},
		{"bad name", TokenSpec{Role: RoleWorker, Name: "../x"}},
		{"hosts on worker", TokenSpec{Role: RoleWorker, Name: "w", Hosts: []string{"h"}}},
		{"queues on sender", TokenSpec{Role: RoleSender, Name: "s", Queues: []string{"q"}}},
		{"empty pattern", TokenSpec{Role: RoleWorker, Name: "w", Queues: []string{""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.spec.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, _, err := OpenTokens(t.TempDir()).Create(TokenSpec{Role: RoleWorker, Name: "w"}, 30*24*time.Hour); err == nil {
		t.Fatal("a 30-day token was created")
	}
}

func TestRevokeByNameAndList(t *testing.T) {
	ca, err := InitCA(t.TempDir(), CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c1, _, _ := ca.IssueClient(RoleWorker, "w1", time.Hour)
	c2, _, _ := ca.IssueClient(RoleWorker, "w1", time.Hour)
	c3, _, _ := ca.IssueClient(RoleWorker, "w2", time.Hour)
	issued, err := ca.Issued()
	if err != nil || len(issued) != 3 {
		t.Fatalf("issued: %v %d", err, len(issued))
	}
	serials, err := ca.RevokeSerialOrName("w1", "test")
	if err != nil || len(serials) != 2 {
		t.Fatalf("revoke by name: %v %v", err, serials)
	}
	x3, _ := ParseCertificatePEM(c3)
	if _, err := ca.RevokeSerialOrName(SerialOf(x3), ""); err != nil {
		t.Fatal(err)
	}
	rv, _ := ca.Revocations()
	for _, c := range [][]byte{c1, c2, c3} {
		x, _ := ParseCertificatePEM(c)
		if !rv.IsRevoked(x.SerialNumber) || !rv.IsRevokedSerial(SerialOf(x)) {
			t.Fatalf("%s not revoked", SerialOf(x))
		}
	}
	if _, err := ca.RevokeSerialOrName("nobody", ""); err == nil {
		t.Fatal("revoked an unknown name")
	}
}

func TestNeedsRenewal(t *testing.T) {
	ca, err := InitCA(t.TempDir(), CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, _, _ := ca.IssueClient(RoleWorker, "w", 90*time.Second)
	c, _ := ParseCertificatePEM(p)
	issued := c.NotBefore.Add(clockSkew)
	if NeedsRenewal(c, issued.Add(50*time.Second)) {
		t.Fatal("renewal due with 40s of 90s left")
	}
	if !NeedsRenewal(c, issued.Add(61*time.Second)) {
		t.Fatal("renewal not due with 29s of 90s left")
	}
}

// FuzzParseToken: ParseToken never panics, and what it accepts is exactly
// the canonical encoding of its result.
func FuzzParseToken(f *testing.F) {
	f.Add("gbt_" + strings.Repeat("A", 43))
	f.Add("gbt_")
	f.Add("")
	f.Add("gbt_" + strings.Repeat("_", 43))
	f.Add("gbt_" + strings.Repeat("A", 42) + "B")
	f.Fuzz(func(t *testing.T, s string) {
		secret, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("error %v does not wrap ErrTokenInvalid", err)
			}
			return
		}
		if got := tokenPrefix + encodeSecret(secret[:]); got != s {
			t.Fatalf("accepted %q, canonical form %q", s, got)
		}
	})
}

// FuzzCheckCSR: arbitrary bytes never panic the CSR check, and a CSR it
// accepts can be signed.
func FuzzCheckCSR(f *testing.F) {
	_, csr, err := NewKeyAndCSR()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(csr)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	ca, err := InitCA(f.TempDir(), CAOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if CheckCSR(data) != nil {
			return
		}
		if _, err := ca.SignCSR(data, RoleWorker, "fuzz", time.Hour); err != nil {
			t.Fatalf("CheckCSR accepted what SignCSR refuses: %v", err)
		}
	})
}
