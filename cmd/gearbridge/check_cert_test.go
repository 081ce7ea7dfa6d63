package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/certs"
)

// certCA is a CA directory for the certificate checks.
type certCA struct {
	t   *testing.T
	ca  *certs.CA
	dir string // where the test writes its files
}

func newCertCA(t *testing.T) *certCA {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.InitCA(filepath.Join(dir, "ca"), certs.CAOptions{CommonName: "check CA"})
	if err != nil {
		t.Fatal(err)
	}
	return &certCA{t: t, ca: ca, dir: dir}
}

func (c *certCA) caFile() string { return filepath.Join(c.ca.Dir(), certs.CACertFile) }

// mint signs a worker certificate for name valid from notBefore to
// notAfter (the CA itself refuses to backdate) and returns its file; the
// key is beside it as name.key.
func (c *certCA) mint(name string, notBefore, notAfter time.Time) string {
	c.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		c.t.Fatal(err)
	}
	uri, _ := url.Parse("gearbridge://worker/" + name)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{uri},
	}
	pair, err := tls.LoadX509KeyPair(c.caFile(), filepath.Join(c.ca.Dir(), certs.CAKeyFile))
	if err != nil {
		c.t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pair.Leaf, key.Public(), pair.PrivateKey.(crypto.Signer))
	if err != nil {
		c.t.Fatal(err)
	}
	file := filepath.Join(c.dir, name+".crt")
	writeTestFile(c.t, file, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		c.t.Fatal(err)
	}
	writeTestFile(c.t, filepath.Join(c.dir, name+".key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return file
}

// expiring is a certificate for name that expires in left.
func (c *certCA) expiring(name string, left time.Duration) (file string, notAfter time.Time) {
	c.t.Helper()
	// Whole minutes keep the printed date stable; a minute of slack keeps
	// the whole days.
	notAfter = time.Now().Add(left + time.Minute).Truncate(time.Minute)
	return c.mint(name, time.Now().Add(-time.Hour), notAfter), notAfter
}

func TestCheckCertThresholds(t *testing.T) {
	c := newCertCA(t)
	ok, okAfter := c.expiring("w-ok", 84*24*time.Hour)
	warn, _ := c.expiring("w-warn", 20*24*time.Hour)
	crit, _ := c.expiring("w-crit", 5*24*time.Hour)
	hours, _ := c.expiring("w-hours", 5*time.Hour)
	expired := c.mint("w-expired", time.Now().Add(-10*24*time.Hour), time.Now().Add(-3*24*time.Hour-time.Hour))
	garbage := filepath.Join(c.dir, "garbage.crt")
	writeTestFile(t, garbage, "not a certificate\n")
	missing := filepath.Join(c.dir, "missing.crt")

	tests := []struct {
		name string
		args []string
		code int
		want string // the whole output line, or its start when it ends in "…"
	}{
		{"ok", []string{"--cert", ok, "-w", "30d", "-c", "7d"}, 0,
			"check_gearman OK - certificate w-ok (worker) expires in 84 days (" + okAfter.UTC().Format("2006-01-02 15:04") + " UTC)|expiry_days=84;30;7"},
		{"default thresholds are 30 and 7 days", []string{"--cert", ok}, 0, "check_gearman OK - certificate w-ok (worker) expires in 84 days (…"},
		{"warning", []string{"--cert", warn, "-w", "30d", "-c", "7d"}, 1,
			"check_gearman WARNING - certificate w-warn (worker) expires in 20 days (…"},
		{"critical", []string{"--cert", crit, "-w", "30d", "-c", "7d"}, 2,
			"check_gearman CRITICAL - certificate w-crit (worker) expires in 5 days (…"},
		{"hours", []string{"--cert", hours, "-w", "2d", "-c", "12h"}, 2,
			"check_gearman CRITICAL - certificate w-hours (worker) expires in 5 hours (…"},
		{"half-day threshold in perfdata", []string{"--cert", hours, "-w", "2d", "-c", "1h"}, 1, "…|expiry_days=0;2;0.041667"},
		{"plain numbers are days", []string{"--cert", ok, "-w", "90", "-c", "60"}, 1,
			"check_gearman WARNING - certificate w-ok (worker) expires in 84 days (…"},
		{"expired", []string{"--cert", expired, "-w", "30d", "-c", "7d"}, 2,
			"check_gearman CRITICAL - certificate w-expired (worker) expired 3 days ago (…"},
		{"expired perfdata", []string{"--cert", expired}, 2, "…|expiry_days=-3;30;7"},
		{"the CA", []string{"--cert", c.caFile(), "-w", "30d"}, 0, "check_gearman OK - certificate check CA (ca) expires in …"},
		{"unreadable", []string{"--cert", missing}, 3, "check_gearman UNKNOWN - cannot read certificate " + missing + ": open …"},
		{"not a certificate", []string{"--cert", garbage}, 3, "check_gearman UNKNOWN - cannot read certificate " + garbage + ": …"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "gearbridge", append([]string{"check"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout %q stderr %q", code, tt.code, out, errOut)
			}
			line, rest, _ := strings.Cut(out, "\n")
			if rest != "" {
				t.Errorf("more than one line: %q", out)
			}
			if !matchLine(line, tt.want) {
				t.Errorf("output\n got %q\nwant %q", line, tt.want)
			}
		})
	}
}

// matchLine compares line with want, where each "…" in want matches
// anything.
func matchLine(line, want string) bool {
	parts := strings.Split(want, "…")
	if len(parts) == 1 {
		return line == want
	}
	rest, ok := strings.CutPrefix(line, parts[0])
	if !ok {
		return false
	}
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return strings.HasSuffix(rest, parts[len(parts)-1])
}

func TestCheckCertUsageErrors(t *testing.T) {
	c := newCertCA(t)
	ok, _ := c.expiring("w-ok", 84*24*time.Hour)
	tests := []struct {
		name      string
		args      []string
		wantFirst string
	}{
		{"duration for a queue check", []string{"-H", "localhost", "-w", "30d"}, "Error - -w 30d: a time left applies to --cert and --cert-of-server; queue thresholds are job counts"},
		{"bad duration", []string{"--cert", ok, "-w", "30x"}, `Error - invalid argument "30x" for "-w, --jobs-warning" flag: must be an integer, or a time left such as 30d or 12h`},
		{"critical above warning", []string{"--cert", ok, "-w", "7d", "-c", "30d"}, "Error - -c (30d) must not be more than -w (7d)"},
		{"both modes", []string{"--cert", ok, "--cert-of-server", "--bridge", "127.0.0.1:1"}, "Error - --cert FILE and --cert-of-server exclude each other"},
		{"server without bridge", []string{"--cert-of-server"}, "Error - --cert-of-server needs --bridge HOST[:PORT]"},
		{"bridge without admin certificate", []string{"--bridge", "127.0.0.1:1"}, "Error - --bridge needs --tls-ca, --tls-cert and --tls-key (an admin certificate), or --cert-of-server"},
		{"bad bridge", []string{"--cert-of-server", "--bridge", "b:http"}, `Error - bridge "b:http": port "http" is not a number 1..65535`},
		{"queue flags with --cert", []string{"--cert", ok, "-q", "service"}, "Error - --cert and --cert-of-server take only -w, -c, -t and --tls-ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, _ := runCmd(t, "gearbridge", append([]string{"check"}, tt.args...)...)
			if code != 3 {
				t.Errorf("exit %d, want 3", code)
			}
			if first, _, _ := strings.Cut(out, "\n"); first != tt.wantFirst {
				t.Errorf("first line\n got %q\nwant %q", first, tt.wantFirst)
			}
		})
	}
}

// tlsBridge is an in-process TLS listener that serves a bridge
// certificate and, like the bridge, requires a client certificate.
func tlsBridge(t *testing.T, c *certCA, lifetime time.Duration) string {
	t.Helper()
	crt, key, err := c.ca.IssueServer([]string{"localhost", "127.0.0.1"}, lifetime)
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
	lis, err := tls.Listen("tcp", "127.0.0.1:0", rl.ServerConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_ = conn.(*tls.Conn).Handshake() // fails: no client certificate
			})
		}
	})
	t.Cleanup(func() {
		lis.Close()
		wg.Wait()
	})
	return lis.Addr().String()
}

func TestCheckCertOfServer(t *testing.T) {
	c := newCertCA(t)
	addr := tlsBridge(t, c, 20*24*time.Hour+time.Hour)
	other := newCertCA(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"warning", []string{"--cert-of-server", "--bridge", addr, "-w", "30d", "-c", "7d"}, 1,
			"check_gearman WARNING - certificate localhost (bridge) of " + addr + " expires in 20 days (…|expiry_days=20;30;7"},
		{"verified", []string{"--cert-of-server", "--bridge", addr, "--tls-ca", c.caFile(), "-w", "10d"}, 0,
			"check_gearman OK - certificate localhost (bridge) of " + addr + " expires in 20 days (…"},
		{"another CA", []string{"--cert-of-server", "--bridge", addr, "--tls-ca", other.caFile(), "-w", "10d"}, 2,
			"check_gearman CRITICAL - certificate localhost (bridge) of " + addr + " does not verify against " + other.caFile() + ": …"},
		{"unreadable CA", []string{"--cert-of-server", "--bridge", addr, "--tls-ca", filepath.Join(c.dir, "nope.crt")}, 3,
			"check_gearman UNKNOWN - cannot read CA " + filepath.Join(c.dir, "nope.crt") + ": …"},
		{"unreachable", []string{"--cert-of-server", "--bridge", "127.0.0.1:1"}, 2,
			"check_gearman CRITICAL - cannot read the certificate of 127.0.0.1:1: …"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "gearbridge", append([]string{"check"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout %q stderr %q", code, tt.code, out, errOut)
			}
			if line, _, _ := strings.Cut(out, "\n"); !matchLine(line, tt.want) {
				t.Errorf("output\n got %q\nwant %q", line, tt.want)
			}
		})
	}
}

// The help says how to check certificates.
func TestCheckCertHelp(t *testing.T) {
	_, out, _ := runCmd(t, "gearbridge", "check", "--help")
	for _, want := range []string{"--cert FILE", "--cert-of-server", "30d"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}
