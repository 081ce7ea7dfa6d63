package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBridgeExportsCertificateExpiry: the real bridge exports the expiry
// of its own certificate and of the CA, and the earliest expiry among the
// certificates of attached workers.
func TestBridgeExportsCertificateExpiry(t *testing.T) {
	c := newCluster(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := lis.Addr().String()
	_ = lis.Close()
	_, addr := c.startBridge("bridge", "127.0.0.1:0", "--metrics-listen", metricsAddr)
	c.gb("certs", "issue", "--dir", c.ca, "--role", "worker", "--name", "w1", "--lifetime", "20d")
	w := c.startWorker("w1", addr, "--services")
	c.waitLog(w, `session started`, 20*time.Second)

	want := []string{
		`gearbridge_certificate_expiry_timestamp_seconds{identity="bridge",role="bridge"}`,
		`gearbridge_certificate_expiry_timestamp_seconds{identity=`,
		`role="ca"}`,
		`gearbridge_bridge_session_cert_expiry_earliest_timestamp_seconds`,
	}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		body = scrape(t, "http://"+metricsAddr+"/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if missing == "" && !strings.Contains(body, "gearbridge_bridge_session_cert_expiry_earliest_timestamp_seconds 0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %s (or no session expiry):\n%s", missing, grepLines(body, "expiry"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
