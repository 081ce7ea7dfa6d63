package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMetricsListener: every daemon's metrics listener answers /healthz
// while the process runs, /readyz as its readiness check says (not ready
// until one is set), and /metrics with gearbridge_build_info.
func TestMetricsListener(t *testing.T) {
	ready := &readiness{}
	srv := httptest.NewServer(metricsMux(processRegistry(), ready))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name      string
		set       func()
		path      string
		wantCode  int
		wantInBod string
	}{
		{"liveness", nil, "/healthz", 200, "ok"},
		{"not ready before the daemon sets its check", nil, "/readyz", 503, "not ready: starting"},
		{"not ready with the check's reason", func() { ready.set(func() error { return errors.New("no gearmand reachable") }) }, "/readyz", 503, "no gearmand reachable"},
		{"live while not ready", nil, "/healthz", 200, "ok"},
		{"ready", func() { ready.set(func() error { return nil }) }, "/readyz", 200, "ready"},
		{"build info", nil, "/metrics", 200, "gearbridge_build_info{commit="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.set != nil {
				tt.set()
			}
			code, body := get(tt.path)
			if code != tt.wantCode || !strings.Contains(body, tt.wantInBod) {
				t.Fatalf("GET %s: %d %q, want %d with %q", tt.path, code, body, tt.wantCode, tt.wantInBod)
			}
		})
	}
}
