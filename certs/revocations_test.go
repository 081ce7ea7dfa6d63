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
		{name: "identity", in: `{"revoked": [], "identities": [{"role": "worker", "name": "site-a", "revoked_at": "2030-01-01T00:00:00.5Z", "reason": "lost"}]}`, wantLen: 1},
		{name: "re-enrolled identity", in: `{"identities": [{"role": "sender", "name": "ci", "revoked_at": "2030-01-01T00:00:00Z", "reenrolled_at": "2030-01-02T00:00:00Z", "generation": 3}]}`, wantLen: 1},
		{name: "identity and serial", in: `{"revoked": [{"serial": "1f", "name": "w", "revoked_at": "2030-01-01T00:00:00Z"}], "identities": [{"role": "worker", "name": "w", "revoked_at": "2030-01-01T00:00:00Z"}]}`, wantLen: 2},
		{name: "identity with unknown role", in: `{"identities": [{"role": "root", "name": "x", "revoked_at": "2030-01-01T00:00:00Z"}]}`, wantErr: "role"},
		{name: "bridge identity", in: `{"identities": [{"role": "bridge", "name": "x", "revoked_at": "2030-01-01T00:00:00Z"}]}`, wantErr: "role"},
		{name: "identity with bad name", in: `{"identities": [{"role": "worker", "name": "../x", "revoked_at": "2030-01-01T00:00:00Z"}]}`, wantErr: "not allowed"},
		{name: "identity without time", in: `{"identities": [{"role": "worker", "name": "x"}]}`, wantErr: "revoked_at"},
		{name: "identity twice", in: `{"identities": [{"role": "worker", "name": "x", "revoked_at": "2030-01-01T00:00:00Z"}, {"role": "worker", "name": "x", "revoked_at": "2031-01-01T00:00:00Z"}]}`, wantErr: "listed twice"},
		{name: "negative generation", in: `{"identities": [{"role": "worker", "name": "x", "revoked_at": "2030-01-01T00:00:00Z", "generation": -1}]}`, wantErr: "generation"},
		{name: "unknown identity field", in: `{"identities": [{"role": "worker", "name": "x", "revoked_at": "2030-01-01T00:00:00Z", "serial": "1"}]}`, wantErr: "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parseRevocations([]byte(tt.in))
			checkErr(t, "parseRevocations", err, tt.wantErr)
			if n := len(st.bySerial) + len(st.byIdentity); err == nil && n != tt.wantLen {
				t.Errorf("got %d entries, want %d", n, tt.wantLen)
			}
		})
	}
}

// FuzzParseRevocations checks that the revocation list parser never panics
// and that what it accepts survives a save and load unchanged. Seeds are in
// testdata/fuzz/FuzzParseRevocations.
func FuzzParseRevocations(f *testing.F) {
	f.Add([]byte(`{"revoked": [{"serial": "1f", "name": "w1", "reason": "lost", "revoked_at": "2030-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"revoked": []}`))
	f.Add([]byte(`{"revoked": [{"serial": "a"}, {"serial": "a"}]}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseRevocations(data)
		if err != nil {
			return
		}
		r := &Revocations{state: st}
		out, err := json.Marshal(r.doc())
		if err != nil {
			t.Fatalf("marshal accepted list: %v", err)
		}
		again, err := parseRevocations(out)
		if err != nil {
			t.Fatalf("parse of saved list %s: %v", out, err)
		}
		if len(again.bySerial) != len(st.bySerial) || len(again.byIdentity) != len(st.byIdentity) {
			t.Fatalf("round trip changed the list from %d/%d to %d/%d entries",
				len(st.bySerial), len(st.byIdentity), len(again.bySerial), len(again.byIdentity))
		}
		for k, v := range st.bySerial {
			w, ok := again.bySerial[k]
			if !ok || w.Name != v.Name || w.Reason != v.Reason || !w.RevokedAt.Equal(v.RevokedAt) {
				t.Fatalf("round trip changed entry %s: %+v -> %+v", k, v, w)
			}
		}
		for k, v := range st.byIdentity {
			w, ok := again.byIdentity[k]
			if !ok || w.Reason != v.Reason || !w.RevokedAt.Equal(v.RevokedAt) || w.Generation != v.Generation ||
				(w.ReenrolledAt == nil) != (v.ReenrolledAt == nil) || (w.ReenrolledAt != nil && !w.ReenrolledAt.Equal(*v.ReenrolledAt)) {
				t.Fatalf("round trip changed identity %v: %+v -> %+v", k, v, w)
			}
		}
	})
}

// TestOldRevocationsFile: a revoked.json written before identities were
// revoked by name still loads and is enforced.
func TestOldRevocationsFile(t *testing.T) {
	r, err := LoadRevocations(filepath.Join("testdata", "revoked-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.IsRevokedSerial("1f") || !r.IsRevokedSerial("2a") || r.IsRevokedSerial("3") {
		t.Fatal("old list not enforced")
	}
	if len(r.Identities()) != 0 {
		t.Fatal("identities out of nowhere")
	}
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
