package certs

import (
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRevocations(t *testing.T) {
	path := filepath.Join(t.TempDir(), RevocationsFile)
	r, err := LoadRevocations(path)
	if err != nil {
		t.Fatalf("LoadRevocations of a missing file: %v", err)
	}
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	r.now = func() time.Time { clock = clock.Add(time.Minute); return clock }

	a, b := big.NewInt(0xabc), new(big.Int).Lsh(big.NewInt(1), 127)
	if r.IsRevoked(a) {
		t.Fatal("empty list reports a serial as revoked")
	}
	for _, rv := range []struct {
		serial       *big.Int
		name, reason string
	}{{a, "w1", "key compromise"}, {b, "w2", "retired"}, {a, "w1", "again"}} {
		if err := r.Revoke(rv.serial, rv.name, rv.reason); err != nil {
			t.Fatalf("Revoke(%x): %v", rv.serial, err)
		}
	}
	if err := r.Revoke(nil, "x", ""); err == nil {
		t.Error("Revoke(nil) succeeded")
	}
	if err := r.Revoke(big.NewInt(0), "x", ""); err == nil {
		t.Error("Revoke(0) succeeded")
	}
	if !r.IsRevoked(a) || !r.IsRevoked(b) || r.IsRevoked(big.NewInt(1)) || r.IsRevoked(nil) {
		t.Error("IsRevoked does not match what was revoked")
	}
	want := []Revocation{
		{Serial: "abc", Name: "w1", Reason: "key compromise", RevokedAt: time.Date(2030, 1, 2, 3, 5, 5, 0, time.UTC)},
		{Serial: b.Text(16), Name: "w2", Reason: "retired", RevokedAt: time.Date(2030, 1, 2, 3, 6, 5, 0, time.UTC)},
	}
	checkList(t, r.List(), want)

	if err := r.Save(); err != nil {
		t.Fatalf("Save: %v", err)
	}
	checkMode(t, path, CertFileMode)
	loaded, err := LoadRevocations(path)
	if err != nil {
		t.Fatalf("LoadRevocations: %v", err)
	}
	checkList(t, loaded.List(), want)

	// Reload keeps the old list when the file is broken.
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := loaded.Reload(); err == nil {
		t.Error("Reload of a broken file succeeded")
	}
	if !loaded.IsRevoked(a) {
		t.Error("failed Reload dropped the known revocations")
	}
}

func TestRevocationsVerifyPeer(t *testing.T) {
	ca := newTestCA(t)
	r, err := ca.Revocations()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.IssueClient(RoleWorker, "w1", 0)
	if err != nil {
		t.Fatal(err)
	}
	cert := firstCert(t, certPEM)
	if err := r.VerifyPeer(cert); err != nil {
		t.Errorf("VerifyPeer before revocation: %v", err)
	}
	if err := r.Revoke(cert.SerialNumber, "w1", "test"); err != nil {
		t.Fatal(err)
	}
	if err := r.VerifyPeer(cert); !errors.Is(err, ErrRevoked) {
		t.Errorf("VerifyPeer after revocation = %v, want ErrRevoked", err)
	}
}

func TestParseRevocations(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
		wantLen           int
	}{
		{name: "empty file", in: "", wantLen: 0},
		{name: "empty list", in: `{"revoked": []}`, wantLen: 0},
		{name: "null list", in: `{"revoked": null}`, wantLen: 0},
		{name: "two entries", in: `{"revoked": [{"serial": "1f", "revoked_at": "2030-01-01T00:00:00Z"}, {"serial": "20", "name": "w", "reason": "r", "revoked_at": "2030-01-01T00:00:00Z"}]}`, wantLen: 2},
		{name: "unknown field", in: `{"revoked": [], "crl": 1}`, wantErr: "unknown field"},
		{name: "unknown entry field", in: `{"revoked": [{"serial": "1", "by": "x"}]}`, wantErr: "unknown field"},
		{name: "not hex", in: `{"revoked": [{"serial": "xyz"}]}`, wantErr: "not a positive lower-case hex number"},
		{name: "upper case", in: `{"revoked": [{"serial": "ABC"}]}`, wantErr: "not a positive lower-case hex number"},
		{name: "leading zero", in: `{"revoked": [{"serial": "0abc"}]}`, wantErr: "not a positive lower-case hex number"},
		{name: "zero", in: `{"revoked": [{"serial": "0"}]}`, wantErr: "not a positive lower-case hex number"},
		{name: "negative", in: `{"revoked": [{"serial": "-1"}]}`, wantErr: "not a positive lower-case hex number"},
		{name: "duplicate", in: `{"revoked": [{"serial": "a"}, {"serial": "a"}]}`, wantErr: "listed twice"},
		{name: "trailing data", in: `{"revoked": []} {}`, wantErr: "trailing data"},
		{name: "not JSON", in: `serial=1`, wantErr: "parse"},
		{name: "array at top level", in: `[]`, wantErr: "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseRevocations([]byte(tt.in))
			checkErr(t, "parseRevocations", err, tt.wantErr)
			if err == nil && len(m) != tt.wantLen {
				t.Errorf("got %d entries, want %d", len(m), tt.wantLen)
			}
		})
	}
}

// FuzzParseRevocations checks that the revocation list parser never panics
// and that what it accepts survives a save and load unchanged.
func FuzzParseRevocations(f *testing.F) {
	f.Add([]byte(`{"revoked": [{"serial": "1f", "name": "w1", "reason": "lost", "revoked_at": "2030-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"revoked": []}`))
	f.Add([]byte(`{"revoked": [{"serial": "a"}, {"serial": "a"}]}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseRevocations(data)
		if err != nil {
			return
		}
		r := &Revocations{bySerial: m}
		out, err := json.Marshal(revocationsDoc{Revoked: r.List()})
		if err != nil {
			t.Fatalf("marshal accepted list: %v", err)
		}
		again, err := parseRevocations(out)
		if err != nil {
			t.Fatalf("parse of saved list %s: %v", out, err)
		}
		if len(again) != len(m) {
			t.Fatalf("round trip changed the list from %d to %d entries", len(m), len(again))
		}
		for k, v := range m {
			w, ok := again[k]
			if !ok || w.Name != v.Name || w.Reason != v.Reason || !w.RevokedAt.Equal(v.RevokedAt) {
				t.Fatalf("round trip changed entry %s: %+v -> %+v", k, v, w)
			}
		}
	})
}

func checkList(t *testing.T, got, want []Revocation) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("list has %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		if got[i].Serial != want[i].Serial || got[i].Name != want[i].Name || got[i].Reason != want[i].Reason || !got[i].RevokedAt.Equal(want[i].RevokedAt) {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
