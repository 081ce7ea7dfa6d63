package logging

import (
	"bytes"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name, level, format string
		wantErr             string
		wantOut             string
	}{
		{name: "text info", level: "info", format: "text", wantOut: "msg=hello"},
		{name: "json", level: "debug", format: "json", wantOut: `"msg":"hello"`},
		{name: "bad level", level: "loud", format: "text", wantErr: `log level "loud"`},
		{name: "bad format", level: "info", format: "xml", wantErr: `log format "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := New(&buf, tt.level, tt.format)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello")
			if !strings.Contains(buf.String(), tt.wantOut) {
				t.Fatalf("output %q does not contain %q", buf.String(), tt.wantOut)
			}
		})
	}
}

func TestLevelFilters(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "warn", "text")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Fatalf("unexpected output %q", buf.String())
	}
}
