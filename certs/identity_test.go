package certs

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"strings"
	"testing"
)

func TestParseIdentityURI(t *testing.T) {
	tests := []struct {
		in       string
		wantRole Role
		wantName string
		wantErr  string
	}{
		{in: "gearbridge://worker/w1", wantRole: RoleWorker, wantName: "w1"},
		{in: "gearbridge://sender/nagios.example.com", wantRole: RoleSender, wantName: "nagios.example.com"},
		{in: "gearbridge://admin/Alice_2", wantRole: RoleAdmin, wantName: "Alice_2"},
		{in: "gearbridge://bridge/bridge", wantRole: RoleBridge, wantName: "bridge"},
		{in: "gearbridge://worker/" + strings.Repeat("a", 64), wantRole: RoleWorker, wantName: strings.Repeat("a", 64)},

		{in: "", wantErr: "want prefix"},
		{in: "https://worker/w1", wantErr: "want prefix"},
		{in: "GEARBRIDGE://worker/w1", wantErr: "want prefix"},
		{in: "gearbridge:worker/w1", wantErr: "want prefix"},
		{in: "gearbridge://worker", wantErr: "missing /<name>"},
		{in: "gearbridge://worker/", wantErr: "empty name"},
		{in: "gearbridge:///w1", wantErr: "unknown role"},
		{in: "gearbridge://root/w1", wantErr: "unknown role"},
		{in: "gearbridge://Worker/w1", wantErr: "unknown role"},
		{in: "gearbridge://worker:443/w1", wantErr: "unknown role"},
		{in: "gearbridge://x@worker/w1", wantErr: "unknown role"},
		{in: "gearbridge://worker/a/b", wantErr: "not allowed"},
		{in: "gearbridge://worker/w1?x=1", wantErr: "not allowed"},
		{in: "gearbridge://worker/w1#f", wantErr: "not allowed"},
		{in: "gearbridge://worker/w%31", wantErr: "not allowed"},
		{in: "gearbridge://worker/..", wantErr: "not allowed"},
		{in: "gearbridge://worker/-w1", wantErr: "not allowed"},
		{in: "gearbridge://worker/w 1", wantErr: "not allowed"},
		{in: "gearbridge://worker/wörker", wantErr: "not allowed"},
		{in: "gearbridge://worker/" + strings.Repeat("a", 65), wantErr: "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			role, name, err := ParseIdentityURI(tt.in)
			checkErr(t, "ParseIdentityURI", err, tt.wantErr)
			if role != tt.wantRole || name != tt.wantName {
				t.Errorf("got (%q, %q), want (%q, %q)", role, name, tt.wantRole, tt.wantName)
			}
		})
	}
}

func TestIdentityURIRoundTrip(t *testing.T) {
	for _, role := range []Role{RoleWorker, RoleSender, RoleAdmin, RoleBridge} {
		u, err := IdentityURI(role, "host-1.example.com")
		if err != nil {
			t.Fatalf("IdentityURI(%s): %v", role, err)
		}
		gotRole, gotName, err := ParseIdentityURI(u.String())
		if err != nil || gotRole != role || gotName != "host-1.example.com" {
			t.Errorf("ParseIdentityURI(%q) = (%q, %q, %v)", u, gotRole, gotName, err)
		}
	}
	if _, err := IdentityURI("root", "x"); err == nil {
		t.Error("IdentityURI accepted an unknown role")
	}
	if _, err := IdentityURI(RoleWorker, "a/b"); err == nil {
		t.Error("IdentityURI accepted a name with a slash")
	}
}

func TestIdentityOf(t *testing.T) {
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name     string
		cert     *x509.Certificate
		wantRole Role
		wantName string
		wantErr  string
	}{
		{
			name:     "one identity",
			cert:     &x509.Certificate{URIs: []*url.URL{mustURL("gearbridge://worker/w1")}},
			wantRole: RoleWorker, wantName: "w1",
		},
		{
			name:     "CN is not consulted",
			cert:     &x509.Certificate{Subject: pkix.Name{CommonName: "admin"}, URIs: []*url.URL{mustURL("gearbridge://sender/s1")}},
			wantRole: RoleSender, wantName: "s1",
		},
		{name: "nil", cert: nil, wantErr: "no certificate"},
		{name: "no URI SAN", cert: &x509.Certificate{DNSNames: []string{"w1"}}, wantErr: "no URI SAN"},
		{
			name: "two identities",
			cert: &x509.Certificate{URIs: []*url.URL{
				mustURL("gearbridge://worker/w1"), mustURL("gearbridge://admin/w1"),
			}},
			wantErr: "2 URI SANs",
		},
		{
			name: "identity plus another URI",
			cert: &x509.Certificate{URIs: []*url.URL{
				mustURL("gearbridge://worker/w1"), mustURL("spiffe://example.org/w1"),
			}},
			wantErr: "2 URI SANs",
		},
		{name: "other scheme", cert: &x509.Certificate{URIs: []*url.URL{mustURL("spiffe://worker/w1")}}, wantErr: "want prefix"},
		{name: "escaped slash", cert: &x509.Certificate{URIs: []*url.URL{mustURL("gearbridge://worker/a%2Fb")}}, wantErr: "not allowed"},
		{name: "upper-case scheme", cert: &x509.Certificate{URIs: []*url.URL{mustURL("GEARBRIDGE://worker/w1")}}, wantRole: RoleWorker, wantName: "w1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role, name, err := IdentityOf(tt.cert)
			checkErr(t, "IdentityOf", err, tt.wantErr)
			if role != tt.wantRole || name != tt.wantName {
				t.Errorf("got (%q, %q), want (%q, %q)", role, name, tt.wantRole, tt.wantName)
			}
		})
	}
}

// FuzzParseIdentityURI checks that ParseIdentityURI never panics and that
// whatever it accepts is canonical: IdentityURI gives back the same string,
// and so does the net/url round trip that x509 applies to URI SANs, so a
// certificate cannot carry an identity that reads differently in
// IdentityOf.
func FuzzParseIdentityURI(f *testing.F) {
	for _, s := range []string{"gearbridge://worker/w1", "gearbridge://bridge/", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		role, name, err := ParseIdentityURI(s)
		if err != nil {
			if role != "" || name != "" {
				t.Fatalf("ParseIdentityURI(%q) returned (%q, %q) with error %v", s, role, name, err)
			}
			return
		}
		if !role.Valid() {
			t.Fatalf("ParseIdentityURI(%q) accepted role %q", s, role)
		}
		u, err := IdentityURI(role, name)
		if err != nil {
			t.Fatalf("IdentityURI(%q, %q) rejects what ParseIdentityURI(%q) accepted: %v", role, name, s, err)
		}
		if u.String() != s {
			t.Fatalf("ParseIdentityURI(%q) accepted a non-canonical form of %q", s, u)
		}
		parsed, err := url.Parse(s)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", s, err)
		}
		r2, n2, err := IdentityOf(&x509.Certificate{URIs: []*url.URL{parsed}})
		if err != nil || r2 != role || n2 != name {
			t.Fatalf("IdentityOf(URI %q) = (%q, %q, %v), want (%q, %q)", s, r2, n2, err, role, name)
		}
	})
}
